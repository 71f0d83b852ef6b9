"""TreeGAN system: gradient penalty, the n_critic schedule, odd batches, sampling, warm start."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from pc3d.callbacks import GenerationMetrics, SaveGeneratedSamples
from pc3d.models import TreeGAN
from pc3d.models.treegan import gradient_penalty, load_generator_weights
from pc3d.nn import PointCritic, TreeGenerator
from tests.helpers import (
    assert_same_fit,
    assert_same_parameter_grads,
    fit_spying,
    gradient_penalty_reference,
    uniformity_reference,
)

LATENT, N = 8, 16


def tiny_gan(**kw) -> TreeGAN:
    gen = TreeGenerator([LATENT, 16, 8, 3], [2, 2, 4], support=2)
    critic = PointCritic(conv=(8, 16), head=(16, 8))
    kw.setdefault("eval_samples", 6)
    kw.setdefault("n_fixed_samples", 3)
    return TreeGAN(gen, critic, latent_dim=LATENT, **kw)


def loader(n: int, batch_size: int, seed: int = 0) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    items = [{"points": torch.randn(N, 3, generator=g), "category": 0} for _ in range(n)]
    return DataLoader(items, batch_size=batch_size, shuffle=False)


def trainer(**kw) -> L.Trainer:
    kw.setdefault("max_epochs", 1)
    kw.setdefault("limit_val_batches", 0)
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kw)


def test_gradient_penalty_matches_per_sample_autograd_reference():
    torch.manual_seed(0)
    critic = PointCritic(conv=(4, 8), head=(8,), mode="fixed").double()
    real = torch.randn(3, 5, 3, dtype=torch.float64)
    fake = torch.randn(3, 5, 3, dtype=torch.float64)
    alpha = torch.rand(3, dtype=torch.float64)
    gp = gradient_penalty(critic, real, fake, alpha=alpha)

    # hand-written reference: one cloud at a time, its own interpolation weight
    ref = gradient_penalty_reference(critic, real, fake, alpha)
    assert torch.allclose(gp, ref, atol=1e-12)
    # and the same gradient w.r.t. the critic's parameters (the penalty is trained through)
    params = list(critic.parameters())
    grads = assert_same_parameter_grads(gp, ref, params, atol=1e-10)
    assert sum(g is not None for g in grads) == len(params) - 1  # all but the output bias


def test_gradient_penalty_draws_one_weight_per_sample():
    # a linear critic has a constant gradient: any alpha gives the same penalty, so check the
    # drawn alphas instead through the interpolation itself
    seen = []

    def critic(x):
        seen.append(x.detach())
        return x.sum(dim=(1, 2)).unsqueeze(1)

    real, fake = torch.zeros(4, 6, 3), torch.ones(4, 6, 3)
    torch.manual_seed(0)
    gp = gradient_penalty(critic, real, fake)
    x = seen[0]
    per_cloud = x.reshape(4, -1)
    assert torch.allclose(per_cloud, per_cloud[:, :1].expand_as(per_cloud))  # constant within a cloud
    assert len(set(per_cloud[:, 0].tolist())) == 4                           # different across clouds
    assert torch.isclose(gp, torch.tensor((18 ** 0.5 - 1) ** 2))             # ||grad|| = sqrt(6*3)
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(critic, real, fake[:, :3])


@pytest.mark.parametrize("n_critic", [5, 2])
def test_one_iteration_updates_both_nets_and_respects_n_critic(n_critic):
    torch.manual_seed(0)
    model = tiny_gan(n_critic=n_critic)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.critic.parameters()]
    t = trainer(limit_train_batches=1)
    t.fit(model, train_dataloaders=loader(4, 4))
    # one batch = one iteration = n_critic critic steps + 1 generator step = n_critic + 1 trainer steps
    assert t.global_step == n_critic + 1
    opt_g, opt_d = (o.optimizer for o in model.optimizers())
    steps_d = {int(s["step"]) for s in opt_d.state.values()}
    steps_g = {int(s["step"]) for s in opt_g.state.values()}
    assert steps_d == {n_critic} and steps_g == {1}
    assert opt_g.param_groups[0]["betas"] == (0.0, 0.99) and opt_g.param_groups[0]["lr"] == 1e-4
    changed_g = [not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters())]
    changed_d = [not torch.equal(a, b) for a, b in zip(d0, model.critic.parameters())]
    # every critic parameter moves except the head's biases: with the faithful (affine) head they
    # only shift every score by a constant, which cancels out of the WGAN losses
    names_d = [n for n, _ in model.critic.named_parameters()]
    assert [n for n, c in zip(names_d, changed_d) if not c] == ["head.0.bias", "head.1.bias", "head.2.bias"]
    # every generator parameter moves except the frozen, unused bias of the last layer
    frozen = [not p.requires_grad for p in model.generator.parameters()]
    assert all(c or f for c, f in zip(changed_g, frozen)) and sum(frozen) == 1
    m = t.callback_metrics
    assert {"train/d_loss", "train/g_loss", "train/gp", "train/wasserstein"} <= set(m)
    assert all(torch.isfinite(m[k]) for k in m)
    assert all(p.requires_grad for p in model.critic.parameters())  # toggled back after the G step


def test_odd_sized_last_batch():
    torch.manual_seed(0)
    model = tiny_gan(n_critic=1)
    t = trainer()
    t.fit(model, train_dataloaders=loader(5, 2))  # batches of 2, 2, 1
    assert t.global_step == 3 * 2
    assert torch.isfinite(t.callback_metrics["train/d_loss"])


def test_sample_is_reproducible_and_batch_size_independent():
    torch.manual_seed(0)
    model = tiny_gan()
    model.train()
    a = model.sample(5, seed=3, batch_size=2)
    b = model.sample(5, seed=3, batch_size=5)
    assert a.shape == (5, N, 3) and torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(a, model.sample(5, seed=4))
    assert model.training and model.generator.training  # mode restored
    one = model.eval().sample(1)
    assert one.shape == (1, N, 3)
    assert model.sample(0).shape == (0, N, 3)
    assert model.sample_fixed().shape == (3, N, 3)
    with pytest.raises(ValueError):
        model.sample(-1)


def test_validation_logs_metrics_and_saves_fixed_samples(tmp_path):
    torch.manual_seed(0)
    model = tiny_gan(n_critic=1)
    saver = SaveGeneratedSamples(tmp_path / "samples")
    metrics = GenerationMetrics(max_refs=model.eval_samples, seed=model.eval_seed)
    t = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, num_sanity_val_steps=0, max_epochs=1, limit_train_batches=1,
                  callbacks=[saver, metrics])
    t.fit(model, train_dataloaders=loader(4, 4), val_dataloaders=loader(8, 4, seed=1))
    m = t.callback_metrics
    assert torch.isfinite(m["val/wasserstein"])
    # the first eval_samples validation clouds against as many samples of eval_seed, by brute force
    from tests.helpers import generation_metrics_reference

    refs = torch.cat([b["points"] for b in loader(8, 4, seed=1)])[:model.eval_samples]
    want = generation_metrics_reference(model.sample(len(refs), seed=model.eval_seed), refs)
    assert float(m["val/mmd_cd"]) == pytest.approx(want["mmd_cd"], rel=1e-4)
    assert float(m["val/cov_cd"]) == pytest.approx(want["cov_cd"]) and float(m["val/1nna_cd"]) == pytest.approx(
        want["1nna_cd"])
    files = sorted((tmp_path / "samples").glob("epoch_*.npy"))
    assert len(files) == 1 and saver.last_path == files[0]
    import numpy as np

    saved = np.load(files[0])
    assert saved.shape == (3, N, 3) and np.allclose(saved, model.sample_fixed().numpy(), atol=1e-6)


def test_fpd_hook_is_called(tmp_path):
    calls = []

    def fpd(samples):
        calls.append(samples.shape)
        return 1.5

    out = GenerationMetrics(fpd=fpd).evaluate_samples(torch.randn(4, N, 3), torch.randn(4, N, 3))
    assert out["fpd"] == 1.5 and calls == [(4, N, 3)]


def test_warm_start_from_autoencoder_decoder(tmp_path):
    torch.manual_seed(0)
    source = TreeGenerator([LATENT, 16, 8, 3], [2, 2, 4], support=2)
    encoder = torch.nn.Linear(3, LATENT)  # any other weights in the checkpoint are ignored
    state = {**{f"decoder.{k}": v for k, v in source.state_dict().items()},
             **{f"encoder.{k}": v for k, v in encoder.state_dict().items()}}
    ckpt = tmp_path / "ae.ckpt"
    torch.save({"state_dict": state}, ckpt)

    model = tiny_gan(warm_start_ckpt_path=str(ckpt))
    model.setup("fit")
    for k, v in source.state_dict().items():
        assert torch.equal(model.generator.state_dict()[k], v)
    # load_model rebuilds without touching the warm-start file: hparams are plain
    assert model.hparams["warm_start_ckpt_path"] == str(ckpt) and "generator" not in model.hparams

    other = TreeGenerator([LATENT, 32, 8, 3], [2, 2, 4], support=2)
    torch.save({"state_dict": {f"decoder.{k}": v for k, v in other.state_dict().items()}}, ckpt)
    with pytest.raises(ValueError, match="shape mismatches"):
        load_generator_weights(model.generator, ckpt)
    torch.save({"state_dict": {"decoder.mlp.0.weight": torch.zeros(2, 2)}}, ckpt)
    with pytest.raises(ValueError, match="TreeGenerator"):
        load_generator_weights(model.generator, ckpt)
    with pytest.raises(FileNotFoundError):
        load_generator_weights(model.generator, tmp_path / "missing.ckpt")


def test_bad_arguments():
    with pytest.raises(ValueError, match="latent_dim"):
        TreeGAN(TreeGenerator([LATENT, 3], [4]), PointCritic(conv=(4,), head=()), latent_dim=LATENT + 1)
    with pytest.raises(ValueError, match="n_critic"):
        tiny_gan(n_critic=0)


def test_autoencoder_tree_decoder_config_warm_starts_the_gan_config(tmp_path):
    """`model/decoder=treegcn model.latent_dim=96` gives an autoencoder whose decoder fits `model=treegan`."""
    from hydra.utils import instantiate

    from tests.helpers import compose_train

    torch.manual_seed(0)
    ae = instantiate(compose_train(["model/decoder=treegcn", "model.latent_dim=96"], tmp_path).model)
    assert isinstance(ae.decoder, TreeGenerator) and ae.decoder.latent_dim == 96 and ae.decoder.n_points == 2048
    with torch.no_grad():
        assert ae.eval()(torch.randn(1, 2048, 3)).shape == (1, 2048, 3)
    ckpt = tmp_path / "ae.ckpt"
    torch.save({"state_dict": ae.state_dict()}, ckpt)
    gan = instantiate(compose_train(["model=treegan", f"model.warm_start_ckpt_path={ckpt}"], tmp_path).model)
    gan.setup("fit")
    assert all(torch.equal(v, ae.decoder.state_dict()[k]) for k, v in gan.generator.state_dict().items())


# ---------------------------------------------------------------------------- density-uniformity term


def _fit_one_iteration(model: TreeGAN) -> tuple[dict, list[torch.Tensor]]:
    """One tree-GAN iteration (n_critic critic steps + 1 G step); the logged metrics and the clouds
    the generator loss saw."""
    return fit_spying(model, "generator_loss", loader(4, 4))


def test_uniformity_weight_zero_is_bit_identical_to_the_default():
    torch.manual_seed(0)
    default = tiny_gan(n_critic=2)
    torch.manual_seed(0)
    explicit = tiny_gan(n_critic=2, uniformity_weight=0.0, uniformity_k=3)
    assert default.uniformity_weight == 0.0 and default.uniformity_k == 8  # the defaults
    assert default.hparams["uniformity_weight"] == 0.0 and explicit.hparams["uniformity_k"] == 3
    # the generator loss is exactly the plain WGAN one: -mean D(G(z))
    fake = torch.randn(4, N, 3, generator=torch.Generator().manual_seed(5))
    loss, parts = explicit.generator_loss(fake)
    assert torch.equal(loss, -explicit.critic(fake).mean()) and parts == {}

    run_default, run_explicit = _fit_one_iteration(default), _fit_one_iteration(explicit)
    assert "train/g_uniformity" not in run_explicit[0]
    assert_same_fit(default, run_default, explicit, run_explicit)


def test_uniformity_term_adds_exactly_weight_times_u():
    weight, k = 0.37, 3
    torch.manual_seed(0)
    plain = tiny_gan(n_critic=2)
    torch.manual_seed(0)
    unif = tiny_gan(n_critic=2, uniformity_weight=weight, uniformity_k=k)

    # on fixed clouds: L_G = -mean D(x) + weight * U(x), U checked against an independent reference
    fake = torch.randn(4, N, 3, generator=torch.Generator().manual_seed(5))
    loss, parts = unif.generator_loss(fake)
    adv = -unif.critic(fake).mean()
    torch.testing.assert_close(parts["g_uniformity"].double(), uniformity_reference(fake, k), rtol=1e-5, atol=0)
    assert torch.equal(loss, adv + weight * parts["g_uniformity"])
    assert torch.equal(plain.generator_loss(fake)[0], adv)  # same init: same critic

    # in training: the critic steps are untouched, the G step's loss moves by exactly weight * U(G(z))
    m_plain, seen_plain = _fit_one_iteration(plain)
    m_unif, seen_unif = _fit_one_iteration(unif)
    assert torch.equal(seen_plain[0], seen_unif[0])  # same generator, same noise: same clouds
    for key in ("train/d_loss_step", "train/gp_step", "train/wasserstein_step"):
        assert torch.equal(m_plain[key], m_unif[key]), key
    u = m_unif["train/g_uniformity_step"]
    torch.testing.assert_close(u.double(), uniformity_reference(seen_unif[0], k), rtol=1e-5, atol=0)
    assert u > 0
    assert torch.equal(m_unif["train/g_loss_step"], m_plain["train/g_loss_step"] + weight * u)
    # and the generator took a different step (the term has a gradient), the critic the same ones
    assert all(torch.equal(a, b) for a, b in zip(plain.critic.parameters(), unif.critic.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(plain.generator.parameters(), unif.generator.parameters()))


def test_uniformity_arguments_are_checked():
    with pytest.raises(ValueError, match="uniformity_weight"):
        tiny_gan(uniformity_weight=-0.1)
    with pytest.raises(ValueError, match="uniformity_weight"):
        tiny_gan(uniformity_weight=float("nan"))
    with pytest.raises(ValueError, match="uniformity_k"):
        tiny_gan(uniformity_k=0)
    with pytest.raises(ValueError, match="uniformity_k must be < the number of generated points"):
        tiny_gan(uniformity_weight=1.0, uniformity_k=N)
    tiny_gan(uniformity_weight=0.0, uniformity_k=N)  # off: k is not used, so not checked against N
