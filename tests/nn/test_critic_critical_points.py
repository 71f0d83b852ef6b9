"""PointCritic's critical-point path: same scores, gradients and gradient penalty as the full cloud."""

from __future__ import annotations

import pytest
import torch

from pc3d.models.treegan import gradient_penalty
from pc3d.nn import PointCritic

SMALL = {"conv": (8, 16), "head": (16, 8)}


def pair(mode: str = "faithful", **kw) -> tuple[PointCritic, PointCritic]:
    """(critical-point critic, full-cloud critic) with the same float64 weights."""
    torch.manual_seed(0)
    fast = PointCritic(mode=mode, **kw).double()
    full = PointCritic(mode=mode, critical_points=False, **kw).double()
    full.load_state_dict(fast.state_dict())
    return fast, full


def naive_mask(critic: PointCritic, points: torch.Tensor) -> torch.Tensor:
    """Point by point, channel by channel: does point n attain the max of some channel?"""
    with torch.no_grad():
        h = critic.point_features(points)
    b, n, c = h.shape
    mask = torch.zeros(b, n, dtype=torch.bool)
    for s in range(b):
        for ch in range(c):
            top = max(float(h[s, i, ch]) for i in range(n))
            for i in range(n):
                if float(h[s, i, ch]) == top:
                    mask[s, i] = True
    return mask


def with_duplicates(points: torch.Tensor, critic: PointCritic) -> torch.Tensor:
    """Copy of ``points`` where, in cloud 0, a critical point is duplicated twice (exact ties)."""
    points = points.clone()
    src = int(critic.critical_mask(points)[0].nonzero()[0])
    points[0, -1] = points[0, src]
    points[0, -2] = points[0, src]
    return points


def compare(fast: PointCritic, full: PointCritic, real: torch.Tensor, fake: torch.Tensor) -> None:
    """Scores, input gradients, parameter gradients, GP value and GP parameter gradients agree."""
    params = {id(p): n for n, p in fast.named_parameters()}
    w = torch.randn(real.shape[0], 1, dtype=real.dtype)
    alpha = torch.rand(real.shape[0], dtype=real.dtype)
    out = []
    for critic in (fast, full):
        x = fake.clone().requires_grad_(True)
        assert critic.uses_critical_points(x) == (critic is fast)
        scores = critic(x)
        ps = list(critic.parameters())
        gx, *gp_ = torch.autograd.grad((scores * w).sum(), [x, *ps], allow_unused=True)
        gp = gradient_penalty(critic, real, fake, alpha=alpha)
        ggp = torch.autograd.grad(gp, ps, allow_unused=True)
        out.append((scores.detach(), gx, gp_, gp.detach(), ggp))
    (s, gx, gparams, gp, ggp), (s_ref, gx_ref, gparams_ref, gp_ref, ggp_ref) = out
    torch.testing.assert_close(s, s_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(gp, gp_ref, rtol=1e-12, atol=1e-12)
    for p, a, b, c, d in zip(fast.parameters(), gparams, gparams_ref, ggp, ggp_ref):
        for u, v in ((a, b), (c, d)):
            assert (u is None) == (v is None), params[id(p)]
            if u is not None:
                torch.testing.assert_close(u, v, rtol=1e-10, atol=1e-12, msg=params[id(p)])
    assert gp_ref > 0 and gx_ref.abs().max() > 0


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
def test_critical_path_matches_full_cloud_small(mode):
    fast, full = pair(mode, **SMALL)
    gen = torch.Generator().manual_seed(1)
    real = torch.randn(4, 96, 3, generator=gen, dtype=torch.float64)
    fake = torch.randn(4, 96, 3, generator=gen, dtype=torch.float64) * 0.5
    count = fast.critical_mask(fake).sum(dim=1)
    assert count.max() < 96 and count.min() > 0  # the subset path really runs on fewer points
    compare(fast, full, real, fake)


def test_critical_path_matches_full_cloud_default_widths():
    fast, full = pair()
    gen = torch.Generator().manual_seed(2)
    real = torch.rand(2, 512, 3, generator=gen, dtype=torch.float64) - 0.5
    fake = torch.randn(2, 512, 3, generator=gen, dtype=torch.float64) * 0.3
    assert fast.critical_mask(fake).sum(dim=1).max() < 512
    compare(fast, full, real, fake)


@pytest.mark.parametrize("mode", ["faithful", "fixed"])
def test_critical_path_with_duplicate_points_and_batch_of_one(mode):
    fast, full = pair(mode, **SMALL)
    gen = torch.Generator().manual_seed(3)
    fake = with_duplicates(torch.randn(3, 64, 3, generator=gen, dtype=torch.float64), fast)
    real = with_duplicates(torch.randn(3, 64, 3, generator=gen, dtype=torch.float64), fast)
    mask = fast.critical_mask(fake)
    assert mask[0, -1] and mask[0, -2]  # every tied copy is critical
    compare(fast, full, real, fake)
    compare(fast, full, real[:1], fake[:1])  # batch of one, with the ties
    # the max-pool splits the gradient evenly between the copies, as on the full cloud
    x = fake[:1].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fast(x).sum(), x)
    src = int(mask[0].nonzero()[0])
    torch.testing.assert_close(g[0, -1], g[0, src], rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(g[0, -2], g[0, src], rtol=1e-12, atol=1e-15)


def test_critical_mask_matches_naive_and_padding_uses_non_critical_points():
    fast, full = pair(**SMALL)
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 40, 3, generator=gen, dtype=torch.float64)
    x[1] *= 0.1  # clouds of different shapes give different critical counts -> padding
    x[2, :20] = x[2, :1]  # 20 identical points in cloud 2
    mask = fast.critical_mask(x)
    assert torch.equal(mask, naive_mask(fast, x))
    assert len(set(mask.sum(dim=1).tolist())) > 1
    # the gradient is exactly zero on the non-critical points (on both paths)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(fast(xg).sum(), xg)
    assert (g[~mask] == 0).all() and (g[mask].abs().sum(dim=-1) > 0).any()


def test_degenerate_clouds_fall_back_to_full_cloud():
    fast, full = pair(**SMALL)
    x = torch.randn(2, 16, 3, dtype=torch.float64)
    x[0] = x[0, :1]  # every point of cloud 0 is critical (all tied): no subset to take
    compare(fast, full, torch.randn(2, 16, 3, dtype=torch.float64), x)
    y = torch.randn(2, 16, 3, dtype=torch.float64, requires_grad=True)
    nan = y.detach().clone()
    nan[1, 3, 0] = float("nan")  # NaN: no point attains the max of some channel
    assert torch.equal(fast(nan).isnan(), full(nan).isnan())


def test_critical_path_only_when_gradients_are_needed_and_layout_unchanged():
    fast, full = pair()
    x = torch.randn(2, 32, 3, dtype=torch.float64)
    assert fast.uses_critical_points(x)  # parameters require grad
    with torch.no_grad():
        assert not fast.uses_critical_points(x)
        torch.testing.assert_close(fast(x), full(x), rtol=0, atol=1e-12)
    for p in fast.parameters():  # the generator step: frozen critic, points that require grad
        p.requires_grad_(False)
    assert not fast.uses_critical_points(x)
    assert fast.uses_critical_points(x.requires_grad_(True))
    assert not full.uses_critical_points(x)
    assert list(fast.state_dict()) == list(full.state_dict())
    assert sum(p.numel() for p in fast.parameters()) == sum(p.numel() for p in full.parameters()) == 2_536_065
    assert "critical_points=True" in repr(fast) and "critical_points=False" in repr(full)


def test_generator_step_gradient_matches_with_frozen_critic():
    fast, full = pair(mode="fixed", **SMALL)
    for c in (fast, full):
        for p in c.parameters():
            p.requires_grad_(False)
    z = torch.randn(3, 50, 3, dtype=torch.float64)
    grads = []
    for c in (fast, full):
        x = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(-c(x).mean(), x)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-12)
