"""WGAN-GP pieces shared by the GAN systems (:class:`~pc3d.models.TreeGAN`, :class:`~pc3d.models.LatentGAN`).

Plain functions: each system's ``training_step`` / ``sample`` / ``configure_optimizers`` calls them
and so still states its own rule (what the critic sees, which generator loss, which Adam betas).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn

__all__ = [
    "batched_critic_mean",
    "check_int",
    "check_sample_args",
    "generate_in_batches",
    "gradient_penalty",
    "in_batches",
    "seeded_noise",
    "wgan_gp_iteration",
    "wgan_optimizers",
]


def check_int(owner: str, name: str, value: Any, low: int) -> int:
    """``value`` as an int, or ``ValueError`` ("<owner>: <name> must be an int >= <low>") for a
    bool, a non-int or one below ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return int(value)


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    alpha: torch.Tensor | None = None,
) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017) with one interpolation weight per sample.

    ``x_hat = alpha * real + (1 - alpha) * fake`` with ``alpha ~ U[0, 1]`` drawn once per sample
    (cloud or latent), and ``GP = mean_b (||grad_x D(x_hat_b)||_2 - 1)^2`` where the norm is over
    all non-batch entries of sample ``b`` (the ``N*3`` coordinates of a cloud, the ``D`` entries
    of a latent). Not multiplied by lambda. Differentiable w.r.t. the critic's parameters
    (``create_graph=True``).

    Shapes:
        real, fake: (B, N, 3) clouds or (B, D) latents, both the same shape (the interpolation
            needs equal shapes)
        alpha: optional (B,) or (B, 1, ..., 1) weights; drawn uniformly when ``None``
        returns: scalar
    """
    if real.shape != fake.shape or real.dim() not in (2, 3):
        raise ValueError(
            "gradient_penalty: real and fake must both be (B, N, 3) or both (B, D), "
            f"got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    b = real.shape[0]
    ones = (1,) * (real.dim() - 1)
    if alpha is None:
        alpha = torch.rand(b, *ones, device=real.device, dtype=real.dtype)
    alpha = alpha.reshape(b, *ones).to(real)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.reshape(b, -1).norm(2, dim=1) - 1) ** 2).mean()


# ---------------------------------------------------------------------------- training
def _clipped_step(system: L.LightningModule, opt) -> None:
    """``opt.step()``, after clipping the gradient norm to ``system.gradient_clip_val`` when set."""
    if system.gradient_clip_val is not None:
        system.clip_gradients(opt, gradient_clip_val=system.gradient_clip_val, gradient_clip_algorithm="norm")
    opt.step()


def critic_steps(
    system: L.LightningModule,
    real: torch.Tensor,
    fake: Callable[[], torch.Tensor],
    opt_d,
    step: Callable[[Any], None],
) -> dict[str, torch.Tensor]:
    """``system.n_critic`` WGAN-GP critic steps on one real batch.

    Each step takes ``fake()`` (detached samples: fresh ones, or the same batch every time),
    minimises ``L_D = mean D(fake) - mean D(real) + system.gp_lambda * GP``
    (:func:`gradient_penalty`) with ``opt_d``, and applies the update with ``step(opt_d)``.
    Returns the ``train/`` logs ``d_loss``, ``gp`` and ``wasserstein`` (``mean D(real) - mean
    D(fake)``), each a mean over the steps, detached.

    Shapes:
        real: (B, ...) what the critic scores; fake() -> the same shape
    """
    d_losses, gps, wds = [], [], []
    for _ in range(system.n_critic):
        f = fake()
        d_real = system.critic(real).mean()
        d_fake = system.critic(f).mean()
        gp = gradient_penalty(system.critic, real, f)
        d_loss = d_fake - d_real + system.gp_lambda * gp
        opt_d.zero_grad(set_to_none=True)
        system.manual_backward(d_loss)
        step(opt_d)
        d_losses.append(d_loss.detach())
        gps.append(gp.detach())
        wds.append((d_real - d_fake).detach())
    return {"train/d_loss": torch.stack(d_losses).mean(), "train/gp": torch.stack(gps).mean(),
            "train/wasserstein": torch.stack(wds).mean()}


def wgan_gp_iteration(
    system: L.LightningModule,
    real: torch.Tensor,
    noise_dim: int,
    generator_loss: Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]],
) -> dict[str, torch.Tensor]:
    """One WGAN-GP iteration (Gulrajani et al., NeurIPS 2017) of a manual-optimization GAN system.

    ``system`` has ``generator``, ``critic``, ``n_critic``, ``gp_lambda``, ``gradient_clip_val`` and
    ``optimizers() -> (opt_g, opt_d)``. First ``n_critic`` critic steps, each with fresh noise
    ``z ~ N(0, I)`` (drawn on ``system.device``) and the same ``real`` batch, minimising
    ``L_D = mean D(G(z)) - mean D(real) + gp_lambda * GP`` (:func:`gradient_penalty`); then one
    generator step on ``generator_loss(G(z))`` (fresh noise, the critic's parameters toggled off).
    Each step clips the net's gradient norm to ``gradient_clip_val`` when it is set.

    Returns the ``train/`` logs: ``d_loss``, ``gp``, ``wasserstein`` (``mean D(real) - mean D(G(z))``),
    each a mean over the critic steps, ``g_loss`` and the generator loss's parts, all detached.

    Shapes:
        real: (B, ...) what the critic scores (clouds (B, N, 3) or latents (B, D))
        generator_loss: fake (B, ...) -> (scalar loss, {name: scalar})
    """
    b = real.shape[0]
    opt_g, opt_d = system.optimizers()

    # critic: n_critic steps on the same real batch, fresh noise each time
    @torch.no_grad()
    def fresh_fake() -> torch.Tensor:
        return system.generator(torch.randn(b, noise_dim, device=system.device))

    logs = critic_steps(system, real, fresh_fake, opt_d, lambda opt: _clipped_step(system, opt))

    # generator: one step; the critic's parameters need no gradients here (toggled off and back)
    system.toggle_optimizer(opt_g)
    g_loss, g_parts = generator_loss(system.generator(torch.randn(b, noise_dim, device=system.device)))
    opt_g.zero_grad(set_to_none=True)
    system.manual_backward(g_loss)
    _clipped_step(system, opt_g)
    system.untoggle_optimizer(opt_g)

    return {
        **logs,
        "train/g_loss": g_loss.detach(),
        **{f"train/{k}": v for k, v in g_parts.items()},
    }


def wgan_optimizers(
    generator: nn.Module,
    critic: nn.Module,
    optimizer_g: Callable[..., torch.optim.Optimizer] | None,
    optimizer_d: Callable[..., torch.optim.Optimizer] | None,
    betas: tuple[float, float],
) -> list[torch.optim.Optimizer]:
    """``[opt_g, opt_d]``: each net's optimizer from its factory ``params -> Optimizer``, or Adam
    with lr 1e-4 and ``betas`` when the factory is ``None``."""

    def adam(params):
        return torch.optim.Adam(params, lr=1e-4, betas=betas)

    return [(optimizer_g or adam)(generator.parameters()), (optimizer_d or adam)(critic.parameters())]


# ---------------------------------------------------------------------------- sampling
def check_sample_args(n: Any, batch_size: int) -> None:
    """``ValueError`` unless ``n`` is an int >= 0 and ``batch_size`` >= 1 (the ``sample`` arguments)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"sample: n must be an int >= 0, got {n!r}")
    if batch_size < 1:
        raise ValueError(f"sample: batch_size must be >= 1, got {batch_size}")


def seeded_noise(n: int, dim: int, seed: int | None = None) -> torch.Tensor:
    """``z ~ N(0, I)`` of shape (n, dim), drawn on the CPU all at once from
    ``torch.Generator().manual_seed(seed)`` (the global RNG when ``seed`` is None), so that a
    seed gives the same noise whatever the device or the batch size it is later cut into."""
    gen = None if seed is None else torch.Generator().manual_seed(int(seed))
    return torch.randn(n, dim, generator=gen)


def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    batch_size: int,
    empty_shape: tuple[int, ...],
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """``fn`` on consecutive slices of ``batch_size`` rows of ``x``, concatenated; for an empty ``x``
    an empty ``(0, *empty_shape)`` tensor on ``device``."""
    chunks = [fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, *empty_shape, device=device)


def generate_in_batches(
    generator: nn.Module,
    z: torch.Tensor,
    batch_size: int,
    device: torch.device | str,
    empty_shape: tuple[int, ...],
) -> torch.Tensor:
    """``generator(z)`` in slices of ``batch_size`` (each moved to ``device``), in eval mode and
    without gradients; the generator's train / eval mode is restored afterwards.

    Shapes:
        z: (n, noise_dim)
        returns: (n, *out) with ``out`` the generator's output shape (``empty_shape`` when n = 0)
    """
    was_training = generator.training
    generator.eval()
    try:
        with torch.no_grad():
            return in_batches(lambda chunk: generator(chunk.to(device)), z, batch_size, empty_shape, device)
    finally:
        generator.train(was_training)


@torch.no_grad()
def batched_critic_mean(critic: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Mean critic score of ``x`` (clouds or latents, B >= 1), scored in slices of ``batch_size``
    without gradients. Returns a scalar."""
    return torch.cat([critic(x[i : i + batch_size]).flatten() for i in range(0, len(x), batch_size)]).mean()
