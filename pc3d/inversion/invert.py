"""GAN inversion of point clouds (ShapeInversion: Zhang, Chen, Li, Xu, Loy, "Unsupervised 3D Shape
Completion through GAN Inversion", CVPR 2021) on a pretrained generator.

The generator ``G`` (:class:`~pc3d.inversion.generator.InvertibleGenerator`) is the shape prior.
For each observed cloud ``y`` (full, or partial with a mask) the latent ``z`` is optimised, and in
later stages ``G``'s weights too (a private copy per shape), to minimise::

    L(z, G) = CD_mask(G(z), y) + w_feature * mean_f (F(M(G(z)))_f - F(y)_f)^2 + w_prior * 0.5 ||z||^2 / z_dim

* ``CD_mask``: :func:`~pc3d.inversion.masks.masked_chamfer` between ``y`` and the points ``M(G(z))``
  of ``G(z)`` kept by the mask (``mode="complete"``: recomputed from the current ``G(z)`` at every
  step, without gradient, as ShapeInversion does); ``mode="reconstruct"`` keeps every point (the
  plain Chamfer distance). Squared distances, the two directional means summed (pc3d's convention).
* ``F``: the frozen cloud-level feature net (the "critic feature distance"), on the kept points.
* the latent prior: the ``N(0, I)`` negative log-likelihood per dimension.

Schedule: the start is the best of ``n_starts`` random latents (``N(0, I)``, per shape seeded by
``seed + shape index``), ranked by the feature distance ``mean_f (F(M(G(z))) - F(y))^2``; then
``stages``, each ``{steps, lr_z, lr_g}`` run with Adam (a fresh optimiser state per stage):
``lr_g`` 0 / null optimises ``z`` only, ``lr_g > 0`` optimises ``z`` and ``G`` (per-shape weight
copies, started from the pretrained weights, or from the previous stage's tuned copies; a stage
with ``lr_g`` 0 after a tuned one keeps the tuned copies fixed).

Batching: each shape is its own problem. The loss is summed over shapes and Adam is applied row
by row (:class:`_RowAdam`), so every shape follows the path it would follow alone; batching changes
the speed, not the fit, up to float rounding of batched matrix products - which Adam's normalised
steps amplify on coordinates whose gradient is near zero (measured on the shipped l-GAN: after 6
steps a shape's ``z`` differs by up to ~1e-2 between batch 2 and batch 1, its fitting CD by < 1%).
Early stop: once a shape's fitting CD (the ``CD_mask`` term, evaluated before a step) is
<= ``cd_stop`` it is frozen as evaluated, and from then on it is neither computed nor updated; the
run ends when every shape has stopped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pc3d.inversion.generator import InvertibleGenerator, slerp
from pc3d.inversion.masks import MASK_KINDS, make_mask, masked_chamfer, pad_clouds

__all__ = ["DEFAULT_STAGES", "MODES", "InversionResult", "complete", "diversity", "invert", "jitter", "morph",
           "objective", "reconstruct", "select_starts"]

#: ``invert``'s fitting modes; :data:`pc3d.inversion.MODES` adds the modes built on them.
FIT_MODES = ("reconstruct", "complete")
MODES = ("reconstruct", "complete", "diversity", "jitter", "morph")

#: Default schedule: z alone, then z and G (ShapeInversion's two phases, shortened for the CPU).
DEFAULT_STAGES: tuple[dict[str, Any], ...] = (
    {"steps": 100, "lr_z": 0.05, "lr_g": 0.0},
    {"steps": 200, "lr_z": 0.01, "lr_g": 1e-4},
)


@dataclass
class InversionResult:
    """What :func:`invert` returns.

    Attributes:
        z: the fitted latents.
        clouds: ``G(z)`` with each shape's (tuned) weights.
        cd: the fitting Chamfer distance of each shape (masked in complete mode), as the loss saw it.
        steps: the optimiser steps each shape took (fewer than the schedule when it stopped early).
        params: each shape's tuned weights ``{name: (B, *shape)}``, or ``None`` when no stage tuned ``G``.
        z_start: the starting latents (the best of ``n_starts``).
        seconds: wall time of the whole call.
        history: the fitting CD of every shape after each stage, ``(n_stages, B)``.

    Shapes:
        z, z_start: ``(B, z_dim)``; clouds: ``(B, N, 3)``; cd: ``(B,)`` float; steps: ``(B,)`` int64.
    """

    z: Tensor
    clouds: Tensor
    cd: Tensor
    steps: Tensor
    params: dict[str, Tensor] | None
    z_start: Tensor
    seconds: float
    history: list[list[float]] = field(default_factory=list)

    def select(self, index: Sequence[int] | Tensor) -> InversionResult:
        """The results of the shapes ``index`` (a new result; tensors indexed along the batch axis)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        return InversionResult(self.z[idx], self.clouds[idx], self.cd[idx], self.steps[idx],
                               None if self.params is None else {k: v[idx] for k, v in self.params.items()},
                               self.z_start[idx], self.seconds, [[h[i] for i in idx.tolist()] for h in self.history])


# ---------------------------------------------------------------------- validation
def _check_number(name: str, value: Any, low: float = 0.0, *, integer: bool = False, allow_none: bool = False):
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and isinstance(value, int if integer else int | float)
    if not ok or value < low or value != value:
        kind = "an int" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value!r}")
    return int(value) if integer else float(value)


def check_stages(stages: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Validate a schedule ``[{steps, lr_z, lr_g}, ...]`` (``ValueError`` naming ``stages[i].<key>``)."""
    if stages is None:
        stages = DEFAULT_STAGES
    if isinstance(stages, Mapping) or not isinstance(stages, Sequence) or not stages:
        raise ValueError(f"stages must be a non-empty list of {{steps, lr_z, lr_g}}, got {stages!r}")
    out = []
    for i, st in enumerate(stages):
        if not isinstance(st, Mapping):
            raise ValueError(f"stages[{i}] must be a mapping {{steps, lr_z, lr_g}}, got {st!r}")
        unknown = set(st) - {"steps", "lr_z", "lr_g"}
        if unknown:
            raise ValueError(f"stages[{i}]: unknown keys {sorted(unknown)} (known: steps, lr_z, lr_g)")
        out.append({"steps": _check_number(f"stages[{i}].steps", st.get("steps"), 0, integer=True),
                    "lr_z": _check_number(f"stages[{i}].lr_z", st.get("lr_z", 0.0), 0),
                    "lr_g": _check_number(f"stages[{i}].lr_g", st.get("lr_g", 0.0), 0, allow_none=True) or 0.0})
    return out


def check_mask(mode: str, mask: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """The mask spec of ``mode``: ``None`` for reconstruct; for complete a ``{kind, k | tau | voxel_size}``
    mapping (or a bare kind with the default size). ``ValueError`` naming ``mask.kind`` / ``mask.<size>``."""
    if mode not in FIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(FIT_MODES)} here, got {mode!r}")
    if mode == "reconstruct":
        return None
    if mask is None:
        mask = {"kind": "knn"}
    if isinstance(mask, str):
        mask = {"kind": mask}
    spec = dict(mask)
    kind = spec.get("kind")
    if kind not in MASK_KINDS:
        raise ValueError(f"mask.kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")
    defaults = {"k": 8, "tau": 0.05, "voxel_size": 0.1}
    size_key = MASK_KINDS[kind]
    size = spec.get(size_key, defaults[size_key])
    size = _check_number(f"mask.{size_key}", size, 1 if kind == "knn" else 0.0, integer=kind == "knn")
    if kind != "knn" and size <= 0:
        raise ValueError(f"mask.{size_key} must be > 0, got {size}")
    return {"kind": kind, size_key: size}


def _check_target(target: Any, lengths: Any, name: str, device: torch.device) -> tuple[Tensor, Tensor]:
    if isinstance(target, Tensor):
        target = target.to(device=device, dtype=torch.float32)
    elif isinstance(target, Sequence) and not isinstance(target, str):
        target = [torch.as_tensor(t, dtype=torch.float32, device=device) for t in target]
    else:
        raise ValueError(f"{name}: expected a (B, P, 3) tensor or a list of (P, 3) tensors, "
                         f"got {type(target).__name__}")
    return pad_clouds(target, lengths, name=name)


# ---------------------------------------------------------------------- losses
def _features_of(gen: InvertibleGenerator, clouds: Tensor, mask: Tensor | None, lengths: Tensor | None = None
                 ) -> Tensor:
    """Features of each cloud's kept points (``mask``) or real points (``lengths``): (B, N, 3) -> (B, F)."""
    if mask is None and (lengths is None or bool((lengths == clouds.shape[1]).all())):
        return gen.features(clouds)
    rows = []
    for b in range(clouds.shape[0]):
        if mask is not None:
            pts = clouds[b][mask[b]] if bool(mask[b].any()) else clouds[b]
        else:
            pts = clouds[b, : int(lengths[b])]
        rows.append(gen.features(pts[None]))
    return torch.cat(rows)


def _mask(spec: dict[str, Any] | None, clouds: Tensor, target: Tensor, lengths: Tensor) -> Tensor | None:
    if spec is None:
        return None
    sizes = {k: v for k, v in spec.items() if k != "kind"}
    return make_mask(spec["kind"], clouds.detach(), target, lengths, **sizes)


@torch.no_grad()
def select_starts(gen: InvertibleGenerator, target: Tensor | Sequence[Tensor], *, lengths: Tensor | None = None,
                  mode: str = "reconstruct", mask: Mapping[str, Any] | str | None = None, n_starts: int = 16,
                  keep: int = 1, seed: int | None = 0, chunk: int = 64) -> Tensor:
    """The ``keep`` best of ``n_starts`` random latents per shape, ranked by the feature distance
    ``mean_f (F(M(G(z))) - F(y))^2`` (best first). Shape ``b`` draws its candidates from
    ``N(0, I)`` with the seed ``seed + b`` (``None``: the global RNG).

    Shapes:
        target: ``(B, P, 3)`` (with ``lengths``) or a list of ``(P_b, 3)``; returns ``(B, keep, z_dim)``.
    """
    device = gen._device()
    spec = check_mask(mode, mask)
    n_starts = _check_number("n_starts", n_starts, 1, integer=True)
    keep = _check_number("keep", keep, 1, integer=True)
    if keep > n_starts:
        raise ValueError(f"n_starts={n_starts} must be >= the number of starts kept ({keep})")
    part, lens = _check_target(target, lengths, "target", device)
    f_t = _features_of(gen, part, None, lens)  # (B, F)
    out = []
    for b in range(part.shape[0]):
        cands = gen.sample_z(n_starts, None if seed is None else int(seed) + b, device)
        scores = []
        for s in range(0, n_starts, chunk):
            zc = cands[s: s + chunk]
            clouds = gen(zc)
            tb = part[b: b + 1, : int(lens[b])].expand(zc.shape[0], -1, -1)
            m = _mask(spec, clouds, tb, torch.full((zc.shape[0],), int(lens[b]), device=device))
            scores.append((_features_of(gen, clouds, m) - f_t[b]).square().mean(-1))
        order = torch.cat(scores).argsort(stable=True)[:keep]
        out.append(cands[order])
    return torch.stack(out)


def invert(gen: InvertibleGenerator, target: Tensor | Sequence[Tensor], *, lengths: Tensor | None = None,
           mode: str = "reconstruct", mask: Mapping[str, Any] | str | None = None, n_starts: int = 64,
           stages: Sequence[Mapping[str, Any]] | None = None, w_feature: float = 1e-3, w_prior: float = 1e-3,
           cd_stop: float | None = None, seed: int | None = 0, z_init: Tensor | None = None,
           n_candidates: int = 1) -> InversionResult:
    """Fit ``G(z)`` (and per-shape ``G``) to each target cloud; see the module doc for the loss and schedule.

    Args:
        gen: the generator.
        target: full clouds (``mode="reconstruct"``) or partial ones (``mode="complete"``).
        lengths: with a padded tensor, the real points of each cloud.
        mode: ``reconstruct`` (every generated point counts) or ``complete`` (a mask keeps the
            generated points the partial cloud could have seen).
        mask: complete mode: ``{"kind": "knn", "k": 8}`` (default), ``{"kind": "distance", "tau": 0.05}``
            or ``{"kind": "voxel", "voxel_size": 0.1}`` (see :mod:`pc3d.inversion.masks`). A distance /
            voxel mask much finer than the generated cloud's point spacing lets generated points
            escape it (points outside the mask cost nothing): on the shipped l-GAN (clouds of radius
            ~0.4) ``tau=0.02`` and ``voxel_size=0.02 / 0.05`` drifted to full-cloud CDs of 0.01-0.4
            where ``tau=0.05``, ``voxel_size=0.1`` and the kNN mask reached ~7e-4 (30 z steps).
        n_starts: random latents tried per shape; the best by feature distance starts the fit (64: with 16,
            3 of 10 built-in lamp scans and 1 of 10 mug scans started from a wrong kind of shape that the
            fit never left, 13-38e-3 CD after the z stage; with 64 none above 8e-3).
        stages: ``[{steps, lr_z, lr_g}, ...]`` (default :data:`DEFAULT_STAGES`).
        w_feature, w_prior: weights of the feature distance and of the latent prior.
        cd_stop: stop a shape once its fitting CD is <= this (None: run every step).
        seed: seeds the random starts (shape ``b`` uses ``seed + b``).
        z_init: the starting latents instead of the random search.
        n_candidates: ``> 1``: the ``n_candidates`` best starts (by feature distance) each run the leading
            z-only stages (the generator untouched, so every candidate stays a shape the GAN can make); the
            one with the lowest objective then continues alone through the stages that tune ``G``.
            Guards against a wrong start that per-shape tuning then bends around the partial cloud
            (measured on the built-in scans: a mug fitted as a sofa-like blob, lamps as chairs).

    Returns:
        an :class:`InversionResult`.

    Shapes:
        target: ``(B, P, 3)`` (+ lengths ``(B,)``) or a list of ``(P_b, 3)``; z_init: ``(B, z_dim)``.

    Raises:
        ValueError: empty / NaN / wrongly shaped targets (named ``target``), unknown ``mode`` or
        ``mask.kind``, bad knobs (named by their config key).
    """
    t0 = time.perf_counter()
    device = gen._device()
    spec = check_mask(mode, mask)
    sched = check_stages(stages)
    w_feature = _check_number("w_feature", w_feature)
    w_prior = _check_number("w_prior", w_prior)
    cd_stop = _check_number("cd_stop", cd_stop, allow_none=True)
    part, lens = _check_target(target, lengths, "target", device)
    B = part.shape[0]
    n_candidates = _check_number("n_candidates", n_candidates, 1, integer=True)
    n_lead = next((i for i, st in enumerate(sched) if st["lr_g"] > 0), len(sched))  # the z-only stages
    if n_candidates > 1 and z_init is None and n_lead > 0:
        return _best_candidate(gen, part, lens, mode=mode, mask=spec, n_starts=n_starts, sched=sched, n_lead=n_lead,
                               k=n_candidates, w_feature=w_feature, w_prior=w_prior, cd_stop=cd_stop, seed=seed,
                               t0=t0)
    if z_init is None:
        z0 = select_starts(gen, part, lengths=lens, mode=mode, mask=spec, n_starts=n_starts, seed=seed)[:, 0]
    else:
        z0 = torch.as_tensor(z_init, dtype=torch.float32, device=device)
        if z0.shape != (B, gen.z_dim) or not bool(torch.isfinite(z0).all()):
            raise ValueError(f"z_init: expected finite latents of shape ({B}, {gen.z_dim}), got {tuple(z0.shape)}")
    with torch.no_grad():
        f_t = _features_of(gen, part, None, lens)

    z = z0.clone()
    params: dict[str, Tensor] | None = None
    done = torch.zeros(B, dtype=torch.bool, device=device)
    steps = torch.zeros(B, dtype=torch.long, device=device)
    cd_now = torch.full((B,), float("inf"), device=device)
    history: list[list[float]] = []

    for st in sched:
        if st["lr_g"] > 0 and params is None:
            params = {k: v.unsqueeze(0).repeat(B, *([1] * v.dim())) for k, v in gen.tunable_parameters().items()}
        tuned = st["lr_g"] > 0
        opt_z = _RowAdam([z], st["lr_z"])
        opt_g = _RowAdam(list(params.values()), st["lr_g"]) if tuned and params is not None else None
        for _ in range(st["steps"]):
            act = (~done).nonzero().squeeze(1)  # only the shapes still running are computed
            if act.numel() == 0:
                break
            every = act.numel() == B
            za = (z if every else z[act]).clone().requires_grad_(True)
            pa = None
            if params is not None:
                if tuned:  # copies that collect this step's gradients; the update goes into params
                    pa = {k: (v.clone() if every else v[act]).requires_grad_(True) for k, v in params.items()}
                else:
                    pa = params if every else {k: v[act] for k, v in params.items()}
            pt, lt = (part, lens) if every else (part[act], lens[act])
            clouds = gen(za, pa)
            m = _mask(spec, clouds, pt, lt)
            cd = masked_chamfer(clouds, pt, m, lt)
            loss = cd
            if w_feature > 0:
                loss = loss + w_feature * (_features_of(gen, clouds, m) - f_t[act]).square().mean(-1)
            if w_prior > 0:
                loss = loss + w_prior * gen.prior(za)
            cd_now[act] = cd.detach()
            go = torch.ones_like(cd, dtype=torch.bool) if cd_stop is None else cd.detach() > cd_stop
            done[act[~go]] = True  # reached the threshold: frozen as evaluated, never updated again
            if not bool(go.any()):
                continue
            loss[go].sum().backward()
            rows = act[go]
            opt_z.step([za.grad[go]], rows)
            if opt_g is not None:
                opt_g.step([None if pa[k].grad is None else pa[k].grad[go] for k in params], rows)
            steps[rows] += 1
        history.append(cd_now.tolist())
        if bool(done.all()):
            break

    with torch.no_grad():
        if params is not None:
            params = {k: v.detach().requires_grad_(False) for k, v in params.items()}
        zf = z
        clouds = gen(zf, params)
        cd = masked_chamfer(clouds, part, _mask(spec, clouds, part, lens), lens)
    return InversionResult(zf, clouds, cd, steps.cpu(), params, z0.detach(), time.perf_counter() - t0, history)


def objective(gen: InvertibleGenerator, clouds: Tensor, z: Tensor, target: Tensor, lengths: Tensor | None = None, *,
              mode: str = "complete", mask: Mapping[str, Any] | str | None = None, w_feature: float = 1e-3,
              w_prior: float = 1e-3) -> Tensor:
    """The inversion loss of finished fits (no gradient): ``CD_mask + w_feature * feature distance + w_prior *
    prior`` per shape, as :func:`invert` minimises it. Shapes: clouds ``(B, N, 3)``, z ``(B, z_dim)``,
    target ``(B, P, 3)`` (+ lengths) -> ``(B,)``."""
    spec = check_mask(mode, mask)
    part, lens = _check_target(target, lengths, "target", clouds.device)
    with torch.no_grad():
        m = _mask(spec, clouds, part, lens)
        loss = masked_chamfer(clouds, part, m, lens)
        if w_feature > 0:
            f_t = _features_of(gen, part, None, lens)
            loss = loss + w_feature * (_features_of(gen, clouds, m) - f_t).square().mean(-1)
        if w_prior > 0:
            loss = loss + w_prior * gen.prior(z)
    return loss


def _best_candidate(gen: InvertibleGenerator, part: Tensor, lens: Tensor, *, mode: str, mask: dict | None,
                    n_starts: int, sched: list[dict[str, Any]], n_lead: int, k: int, w_feature: float,
                    w_prior: float, cd_stop: float | None, seed: int | None, t0: float) -> InversionResult:
    """:func:`invert` with ``n_candidates=k``: the ``k`` best starts run the ``n_lead`` z-only stages, the
    lowest :func:`objective` per shape runs the rest."""
    B = part.shape[0]
    starts = select_starts(gen, part, lengths=lens, mode=mode, mask=mask, n_starts=max(n_starts, k), keep=k,
                           seed=seed)  # (B, k, z_dim)
    rep_part, rep_lens = part.repeat_interleave(k, 0), lens.repeat_interleave(k, 0)
    lead = invert(gen, rep_part, lengths=rep_lens, mode=mode, mask=mask, stages=sched[:n_lead],
                  w_feature=w_feature, w_prior=w_prior, cd_stop=cd_stop, z_init=starts.reshape(B * k, -1))
    score = objective(gen, lead.clouds, lead.z, rep_part, rep_lens, mode=mode, mask=mask, w_feature=w_feature,
                      w_prior=w_prior).reshape(B, k)
    pick = torch.arange(B, device=score.device) * k + score.argmin(1)
    best = lead.select(pick.cpu())
    z_start = starts.reshape(B * k, -1)[pick]
    if n_lead == len(sched):
        return InversionResult(best.z, best.clouds, best.cd, best.steps, None, z_start, time.perf_counter() - t0,
                               best.history)
    rest = invert(gen, part, lengths=lens, mode=mode, mask=mask, stages=sched[n_lead:], w_feature=w_feature,
                  w_prior=w_prior, cd_stop=cd_stop, z_init=best.z)
    return InversionResult(rest.z, rest.clouds, rest.cd, best.steps + rest.steps, rest.params, z_start,
                           time.perf_counter() - t0, best.history + rest.history)


class _RowAdam:
    """Adam (Kingma & Ba; ``torch.optim.Adam``'s defaults: betas (0.9, 0.999), eps 1e-8, bias correction)
    on batched tensors whose rows are separate problems: :meth:`step` updates only the given rows
    (``rows`` of the leading axis), so a shape that stopped is never touched, and the finished rows
    cost nothing. All rows still running share the step count (rows only ever leave).

    Shapes: tensors ``(B, ...)``; step(grads ``(R, ...)`` per tensor, rows ``(R,)`` int64).
    """

    def __init__(self, tensors: list[Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.tensors, self.lr, self.betas, self.eps = tensors, float(lr), betas, eps
        self.m = [torch.zeros_like(t) for t in tensors]
        self.v = [torch.zeros_like(t) for t in tensors]
        self.k = 0

    @torch.no_grad()
    def step(self, grads: list[Tensor | None], rows: Tensor) -> None:
        if self.lr == 0:
            return
        self.k += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1 ** self.k, 1 - b2 ** self.k
        every = rows.numel() == self.tensors[0].shape[0]
        for t, m, v, g in zip(self.tensors, self.m, self.v, grads):
            if g is None:  # a parameter the loss does not reach (as torch.optim.Adam: skipped)
                continue
            mr = (m if every else m[rows]).mul_(b1).add_(g, alpha=1 - b1)
            vr = (v if every else v[rows]).mul_(b2).addcmul_(g, g, value=1 - b2)
            upd = (mr / c1) / ((vr / c2).sqrt_().add_(self.eps)) * self.lr
            if every:
                t.sub_(upd)
            else:
                m[rows], v[rows] = mr, vr
                t[rows] -= upd


# ---------------------------------------------------------------------- modes
def reconstruct(gen: InvertibleGenerator, clouds: Tensor | Sequence[Tensor], **kwargs: Any) -> InversionResult:
    """Fit full clouds: :func:`invert` with ``mode="reconstruct"``. Shapes: ``(B, P, 3)`` or a list of ``(P_b, 3)``."""
    return invert(gen, clouds, mode="reconstruct", **kwargs)


def complete(gen: InvertibleGenerator, partial: Tensor | Sequence[Tensor], mask: Mapping[str, Any] | str | None =
             None, **kwargs: Any) -> InversionResult:
    """Complete partial clouds: :func:`invert` with ``mode="complete"``; ``result.clouds`` are the completions.

    Shapes: partial ``(B, P, 3)`` or a list of ``(P_b, 3)`` -> clouds ``(B, N, 3)``."""
    return invert(gen, partial, mode="complete", mask=mask, **kwargs)


def diversity(gen: InvertibleGenerator, partial: Tensor | Sequence[Tensor], k: int = 4, *,
              lengths: Tensor | None = None, mode: str = "complete", mask: Mapping[str, Any] | str | None = None,
              n_starts: int = 16, seed: int | None = 0, **kwargs: Any) -> tuple[InversionResult, Tensor]:
    """``k`` completions per shape from ``k`` different starts (the ``k`` best of ``n_starts * k`` random
    latents by feature distance), all kept; every start is fitted as its own shape.

    Returns ``(result over B * k fits, clouds (B, k, N, 3))``; fit ``b * k + j`` is shape ``b``'s ``j``-th.
    """
    k = _check_number("k", k, 1, integer=True)
    part, lens = _check_target(partial, lengths, "target", gen._device())
    starts = select_starts(gen, part, lengths=lens, mode=mode, mask=mask, n_starts=n_starts * k, keep=k, seed=seed)
    B = part.shape[0]
    res = invert(gen, part.repeat_interleave(k, 0), lengths=lens.repeat_interleave(k, 0), mode=mode, mask=mask,
                 z_init=starts.reshape(B * k, -1), **kwargs)
    return res, res.clouds.reshape(B, k, *res.clouds.shape[1:])


@torch.no_grad()
def jitter(gen: InvertibleGenerator, fit: InversionResult, n: int = 8, sigma: float = 0.2,
           seed: int | None = 0) -> Tensor:
    """Variations of fitted shapes: ``G_b(z_b + sigma * eps)``, ``eps ~ N(0, I)``, decoded with each shape's
    tuned weights (the pretrained ones when none were tuned). Variation 0 is the fit itself (eps = 0).

    Shapes: fit over ``B`` shapes -> ``(B, n, N, 3)``.
    """
    n = _check_number("n_samples", n, 1, integer=True)
    sigma = _check_number("jitter.sigma", sigma)
    B = fit.z.shape[0]
    g = None if seed is None else torch.Generator().manual_seed(int(seed))
    eps = torch.randn(B, n, gen.z_dim, generator=g).to(fit.z.device)
    eps[:, 0] = 0
    z = (fit.z[:, None] + sigma * eps).reshape(B * n, -1)
    params = None if fit.params is None else {k: v.repeat_interleave(n, 0) for k, v in fit.params.items()}
    return gen(z, params).reshape(B, n, -1, 3)


@torch.no_grad()
def morph(gen: InvertibleGenerator, fit: InversionResult, frames: int = 8, *, pair: tuple[int, int] = (0, 1)
          ) -> Tensor:
    """A sequence of clouds from shape ``pair[0]`` to ``pair[1]`` of ``fit``: ``z`` by :func:`slerp`
    (Gaussian noise), tuned weights (when there are any) linearly, ``frames`` values of ``t`` in
    ``[0, 1]``; frame 0 and frame ``frames - 1`` are the two fits.

    Shapes: -> ``(frames, N, 3)``.
    """
    frames = _check_number("morph.frames", frames, 2, integer=True)
    i, j = pair
    t = torch.linspace(0.0, 1.0, frames, device=fit.z.device)
    z = slerp(fit.z[i], fit.z[j], t)  # (T, z_dim)
    params = None
    if fit.params is not None:
        params = {}
        for k, v in fit.params.items():
            tt = t.reshape(-1, *([1] * (v.dim() - 1)))
            params[k] = (1 - tt) * v[i] + tt * v[j]
    return gen(z, params)
