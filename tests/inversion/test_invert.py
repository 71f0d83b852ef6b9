"""pc3d.inversion.invert and its modes on the shipped l-GAN (and a tiny tree-GAN), with small step counts."""

from __future__ import annotations

import pytest
import torch

from pc3d.inversion import (
    InvertibleGenerator,
    complete,
    diversity,
    invert,
    jitter,
    morph,
    reconstruct,
    slerp,
)
from pc3d.ops.chamfer import chamfer_distance

Z_STAGE = {"steps": 40, "lr_z": 0.05, "lr_g": 0.0}
G_STAGE = {"steps": 150, "lr_z": 0.01, "lr_g": 1e-4}


@pytest.fixture(scope="module")
def gen() -> InvertibleGenerator:
    return InvertibleGenerator.from_checkpoint("pretrained:lgan")


@pytest.fixture(scope="module")
def known(gen):
    """Two clouds G(z*) made by the generator from known latents."""
    z_star = gen.sample_z(2, seed=123)
    with torch.no_grad():
        return z_star, gen(z_star)


def _cut(cloud: torch.Tensor) -> torch.Tensor:
    """The half of a cloud on one side of a plane (what a sensor on that side sees, roughly)."""
    return cloud[cloud[:, 0] > cloud[:, 0].median()]


def test_generator_wrapper(gen):
    assert gen.z_dim == 128 and gen.n_points == 2048
    z = gen.sample_z(3, seed=0)
    assert torch.equal(z, gen.sample_z(3, seed=0))
    clouds = gen(z)
    assert clouds.shape == (3, 2048, 3)
    assert gen.features(clouds).shape == (3, 128)  # the autoencoder's PointNet encoder
    assert torch.allclose(gen.prior(z), 0.5 * (z ** 2).sum(1) / 128)
    params = {k: v[None].repeat(3, *([1] * v.dim())) for k, v in gen.tunable_parameters().items()}
    assert torch.allclose(gen(z, params), clouds, atol=1e-5)  # per-shape copies of the weights = the weights
    gen.batching = "loop"
    try:
        assert torch.allclose(gen(z, params), clouds, atol=1e-5)
    finally:
        gen.batching = "vmap"
    with pytest.raises(ValueError, match=r"z: expected shape \(B, 128\)"):
        gen(torch.zeros(2, 5))


def test_reconstruct_recovers_a_generated_cloud(gen, known):
    z_star, target = known
    res = reconstruct(gen, target[:1], stages=[Z_STAGE, G_STAGE], cd_stop=1e-4, n_starts=8, seed=0)
    cd = chamfer_distance(res.clouds, target[:1], reduction="none")
    assert float(cd[0]) <= 1e-4, f"CD {float(cd[0]):.3g} after {int(res.steps[0])} steps"
    assert torch.allclose(cd, res.cd, rtol=1e-4, atol=1e-9)  # reconstruct: the fitting CD is the plain CD
    assert res.z.shape == (1, 128) and res.clouds.shape == (1, 2048, 3)
    assert int(res.steps[0]) < Z_STAGE["steps"] + G_STAGE["steps"]  # it stopped early, at the threshold
    assert res.params is not None and res.params["0.mlp.0.weight"].shape == (1, 256, 128)


def test_z_only_stage_improves_on_the_start(gen, known):
    _, target = known
    res = reconstruct(gen, target[:1], stages=[Z_STAGE], n_starts=8, seed=0)
    assert res.params is None
    with torch.no_grad():
        start = chamfer_distance(gen(res.z_start), target[:1], reduction="none")
    assert bool((res.cd < start).all())
    assert bool((res.cd < 2e-3).all())


@pytest.mark.parametrize("mask", [{"kind": "knn", "k": 8}, {"kind": "distance", "tau": 0.05},
                                  {"kind": "voxel", "voxel_size": 0.1}])
def test_complete_beats_the_partial_itself(gen, known, mask):
    _, target = known
    partial = [_cut(target[0])]
    res = complete(gen, partial, mask=mask, stages=[{"steps": 30, "lr_z": 0.05}], n_starts=4, seed=0)
    got = chamfer_distance(res.clouds, target[:1])
    own = chamfer_distance(partial[0][None], target[:1])
    assert float(got) < 0.5 * float(own), (float(got), float(own))
    assert res.clouds.shape == (1, 2048, 3) and float(res.cd[0]) < float(own)


@pytest.mark.slow
def test_complete_with_generator_tuning(gen, known):
    _, target = known
    partial = [_cut(c) for c in target]
    res = complete(gen, partial, mask={"kind": "knn", "k": 8}, stages=[Z_STAGE, {**G_STAGE, "steps": 40}],
                   n_starts=8, seed=0)
    got = chamfer_distance(res.clouds, target, reduction="none")
    own = torch.stack([chamfer_distance(p[None], t[None]) for p, t in zip(partial, target)])
    assert bool((got < 0.2 * own).all()), (got, own)


def test_batching_and_seed_do_not_change_results(gen, known):
    _, target = known
    kw = {"stages": [{"steps": 3, "lr_z": 0.05}, {"steps": 3, "lr_z": 0.01, "lr_g": 1e-4}], "n_starts": 4}
    both = reconstruct(gen, target, seed=3, **kw)
    again = reconstruct(gen, target, seed=3, **kw)
    assert torch.equal(both.clouds, again.clouds)
    second = reconstruct(gen, target[1:], seed=4, **kw)  # shape 1 of a batch seeded 3 uses seed 4
    assert torch.equal(both.z_start[1], second.z_start[0])
    # the same fit up to rounding that Adam amplifies (see the pc3d.inversion.invert doc)
    assert torch.allclose(both.cd[1], second.cd[0], rtol=0.05)
    assert float((both.z[1] - second.z[0]).abs().max()) < 0.05


def test_early_stop_freezes_a_shape(gen, known):
    _, target = known
    kw = {"stages": [{"steps": 15, "lr_z": 0.05}], "n_starts": 4, "seed": 0}
    free = reconstruct(gen, target, **kw)
    stop = float(free.cd.max()) * 1.5  # both shapes get below this before the end
    res = reconstruct(gen, target, cd_stop=stop, **kw)
    assert bool((res.steps < 15).all()) and bool((res.cd <= stop).all())


def test_diversity_gives_distinct_completions(gen, known):
    _, target = known
    res, clouds = diversity(gen, [_cut(target[0])], 3, stages=[{"steps": 10, "lr_z": 0.05}], n_starts=4)
    assert clouds.shape == (1, 3, 2048, 3) and res.z.shape == (3, 128)
    for i in range(3):
        for j in range(i + 1, 3):
            assert float(chamfer_distance(clouds[0, i][None], clouds[0, j][None])) > 1e-6
            assert not torch.allclose(res.z[i], res.z[j])


def test_morph_endpoints_are_the_fits(gen, known):
    _, target = known
    fit = reconstruct(gen, target, stages=[{"steps": 3, "lr_z": 0.05}, {"steps": 3, "lr_z": 0.01, "lr_g": 1e-4}],
                      n_starts=2)
    seq = morph(gen, fit, 5)
    assert seq.shape == (5, 2048, 3)
    assert torch.allclose(seq[0], fit.clouds[0], atol=1e-5)
    assert torch.allclose(seq[-1], fit.clouds[1], atol=1e-5)
    mid = chamfer_distance(seq[2][None], fit.clouds[:1]) + chamfer_distance(seq[2][None], fit.clouds[1:])
    assert float(chamfer_distance(fit.clouds[:1], fit.clouds[1:])) > 1e-4 and float(mid) > 0


def test_jitter_variations(gen, known):
    _, target = known
    fit = reconstruct(gen, target[:1], stages=[{"steps": 3, "lr_z": 0.05}, {"steps": 3, "lr_z": 0.01, "lr_g": 1e-4}],
                      n_starts=2)
    var = jitter(gen, fit, 4, sigma=0.5, seed=0)
    assert var.shape == (1, 4, 2048, 3)
    assert torch.allclose(var[0, 0], fit.clouds[0], atol=1e-5)  # variation 0 is the fit
    assert all(float(chamfer_distance(var[0, i][None], var[0, :1])) > 0 for i in range(1, 4))
    assert torch.allclose(jitter(gen, fit, 3, sigma=0.0)[0], fit.clouds.expand(3, -1, -1), atol=1e-5)


def test_slerp():
    a, b = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.0, 0.5, 1.0])
    s = slerp(a, b, t)
    assert torch.equal(s[0], a) and torch.equal(s[2], b)
    # the midpoint of two equal-norm vectors keeps the norm (linear interpolation shrinks it)
    b2 = b / b.norm() * a.norm()
    assert torch.allclose(slerp(a, b2, 0.5).norm(), a.norm(), rtol=1e-5)


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(1, 0, 3), r"target: empty cloud batch"),
    (torch.full((1, 10, 3), float("nan")), r"target: NaN"),
    (torch.zeros(1, 10, 2), r"target: expected clouds of shape \(B, P, 3\)"),
    ([torch.zeros(0, 3)], r"target\[0\]: the cloud is empty"),
    ("cloud.npy", "target: expected a"),
])
def test_bad_targets(gen, bad, match):
    with pytest.raises(ValueError, match=match):
        invert(gen, bad, stages=[{"steps": 1, "lr_z": 0.01}], n_starts=1)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "inpaint"}, "mode must be one of reconstruct, complete"),
    ({"mode": "complete", "mask": {"kind": "sphere"}}, "mask.kind must be one of knn, distance, voxel"),
    ({"mode": "complete", "mask": {"kind": "knn", "k": 0}}, "mask.k must be an int >= 1"),
    ({"stages": [{"steps": -1, "lr_z": 0.1}]}, r"stages\[0\].steps must be an int >= 0"),
    ({"stages": [{"steps": 1, "lr": 0.1}]}, r"stages\[0\]: unknown keys \['lr'\]"),
    ({"n_starts": 0}, "n_starts must be an int >= 1"),
    ({"w_prior": -1.0}, "w_prior must be a number >= 0"),
])
def test_bad_knobs(gen, known, kwargs, match):
    with pytest.raises(ValueError, match=match):
        invert(gen, known[1][:1], **{"stages": [{"steps": 1, "lr_z": 0.01}], "n_starts": 1, **kwargs})


def test_treegan_generator_can_be_inverted():
    from pc3d.models import TreeGAN
    from pc3d.nn import PointCritic, TreeGenerator

    torch.manual_seed(0)
    tg = TreeGAN(TreeGenerator(features=(8, 16, 3), degrees=(4, 8)), PointCritic(conv=(16, 32), head=(16,)),
                 latent_dim=8).eval()
    gen = InvertibleGenerator.from_model(tg)
    assert gen.z_dim == 8 and gen.features(gen(gen.sample_z(2, seed=0))).shape == (2, 32)
    with torch.no_grad():
        target = gen(gen.sample_z(1, seed=9))
    res = reconstruct(gen, target, stages=[{"steps": 20, "lr_z": 0.05}, {"steps": 20, "lr_z": 0.01, "lr_g": 1e-3}],
                      n_starts=4)
    with torch.no_grad():
        start = chamfer_distance(gen(res.z_start), target)
    assert res.clouds.shape == (1, 32, 3) and float(res.cd[0]) < float(start)
    with pytest.raises(ValueError, match="cannot invert a Linear"):
        InvertibleGenerator.from_model(torch.nn.Linear(2, 2))


def test_row_adam_matches_torch_adam_per_row():
    from pc3d.inversion.invert import _RowAdam

    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 5, generator=g)
    target = torch.randn(3, 5, generator=g)
    ref = [x0[i].clone().requires_grad_(True) for i in range(3)]
    opts = [torch.optim.Adam([r], lr=0.1) for r in ref]
    x = x0.clone()
    row_adam = _RowAdam([x], 0.1)
    for step in range(6):
        rows = torch.tensor([0, 1, 2]) if step < 3 else torch.tensor([0, 2])  # row 1 stops after 3 steps
        for i in rows.tolist():
            opts[i].zero_grad()
            ((ref[i] - target[i]) ** 4).sum().backward()
            opts[i].step()
        row_adam.step([4 * (x[rows] - target[rows]) ** 3], rows)
    for i in range(3):
        assert torch.allclose(x[i], ref[i].detach(), atol=1e-6)


def test_n_candidates_matches_a_naive_reference(gen, known):
    # n_candidates=3: the 3 best starts run the z-only stage, the lowest objective continues with G tuning;
    # the reference does the same by hand with plain invert calls
    from pc3d.inversion import objective, select_starts

    part = torch.stack([_cut(c)[:600] for c in known[1]])
    z_stage, g_stage = dict(Z_STAGE, steps=6), dict(G_STAGE, steps=4)
    kw = {"mode": "complete", "mask": {"kind": "knn", "k": 8}, "w_feature": 1e-3, "w_prior": 1e-3}
    res = invert(gen, part, stages=[z_stage, g_stage], n_starts=8, n_candidates=3, seed=5, **kw)

    starts = select_starts(gen, part, mode="complete", mask=kw["mask"], n_starts=8, keep=3, seed=5)  # (2, 3, 128)
    picks = []
    for b in range(2):
        lead = invert(gen, part[b:b + 1].expand(3, -1, -1), stages=[z_stage], z_init=starts[b], **kw)
        loss = objective(gen, lead.clouds, lead.z, part[b:b + 1].expand(3, -1, -1), **kw)
        picks.append(int(loss.argmin()))
        ref = invert(gen, part[b:b + 1], stages=[g_stage], z_init=lead.z[picks[-1]][None], **kw)
        # equal up to the float rounding of batched products, which Adam amplifies (module doc of invert)
        # (a few points of a tuned decoder can differ by ~1e-2; the clouds as a whole agree)
        assert float((res.clouds[b] - ref.clouds[0]).abs().mean()) < 1e-3
        assert float(chamfer_distance(res.clouds[b][None], ref.clouds[0][None])) < 1e-6
        assert torch.equal(res.z_start[b], starts[b, picks[-1]])
    assert res.params is not None and res.steps.tolist() == [10, 10]
    assert len(res.history) == 2
    # one candidate, or no z-only stage to compare candidates on: the plain path
    one = invert(gen, part, stages=[z_stage, g_stage], n_starts=8, n_candidates=1, seed=5, **kw)
    assert torch.equal(one.z_start, starts[:, 0])
    with pytest.raises(ValueError, match="n_candidates must be an int >= 1"):
        invert(gen, part, n_candidates=0, **kw)
