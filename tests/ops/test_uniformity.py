"""Density-uniformity loss and the within-cloud k-NN search against naive float64 references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.ops import knn as knn_module
from pc3d.ops import uniformity_loss
from pc3d.ops._grid_knn import grid_knn_within
from pc3d.ops.knn import knn_within_indices

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])]
BACKENDS = ["numba", "kdtree", "torch"]


# ----------------------------------------------------------------------------- references


def ref_uniformity(x: torch.Tensor, k: int) -> torch.Tensor:
    """Per-cloud Var(r) / mean(r)^2 with explicit loops (float64, keeps the autograd graph)."""
    x = x.double()
    out = []
    for b in range(x.shape[0]):
        n = x.shape[1]
        r = []
        for i in range(n):
            dists = []
            for j in range(n):
                if j != i:
                    dists.append(torch.sqrt(((x[b, i] - x[b, j]) ** 2).sum()))
            nearest = sorted(dists, key=lambda d: d.item())[:k]
            r.append(sum(nearest) / k)
        r = torch.stack(r)
        mu = r.mean()
        out.append(((r - mu) ** 2).mean() / mu**2)
    return torch.stack(out)


def ref_knn_sqdist(x: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted squared distances (B, N, k) to the k nearest other points (float64)."""
    x = x.double()
    d = (x[:, :, None, :] - x[:, None, :, :]).square().sum(-1)
    d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    return d.topk(k, dim=2, largest=False).values


def picked_sqdist(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    x = x.double().cpu()
    nbrs = x[torch.arange(x.shape[0])[:, None, None], idx.cpu()]
    return (x[:, :, None, :] - nbrs).square().sum(-1)


def tie_free_cloud(B, N, k, *, dtype=torch.float32, seed0=0, min_gap=1e-3):
    """Random clouds whose k-th and (k+1)-th neighbour distances are well apart for every point."""
    for seed in range(seed0, seed0 + 200):
        x = torch.rand(B, N, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        two = ref_knn_sqdist(x, min(k + 1, N - 1))
        if k == N - 1 or bool(((two[..., k] - two[..., k - 1]) > min_gap * two[..., k - 1]).all()):
            return x.to(dtype)
    raise AssertionError("could not draw tie-free clouds")


def fibonacci_sphere(n: int) -> torch.Tensor:
    """n nearly evenly spread points on the unit sphere, (n, 3) float64."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    phi = torch.acos(1 - 2 * i / n)
    theta = math.pi * (1 + 5**0.5) * i
    return torch.stack([phi.sin() * theta.cos(), phi.sin() * theta.sin(), phi.cos()], dim=1)


def random_rotation(seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


# ----------------------------------------------------------------------------- k-NN search


def hard_clouds() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    base = torch.rand(3, 80, 3, generator=g, dtype=torch.float64)
    clump = base.clone()
    clump[:, :40] = base[:, :1] + 1e-4 * torch.randn(3, 40, 3, generator=g, dtype=torch.float64)
    dup = torch.cat([base[:, :30], base[:, :30], base[:, :20]], dim=1)  # every point has twins
    flat = base.clone()
    flat[..., 2] = 0.0  # a planar cloud: one cell thick
    line = torch.zeros(3, 80, 3, dtype=torch.float64)
    line[..., 0] = torch.rand(3, 80, generator=g, dtype=torch.float64)
    outlier = base.clone()
    outlier[:, 0] = 1e3  # squeezes the grid: the KD-tree fallback takes over
    same = torch.zeros(3, 80, 3, dtype=torch.float64) + 0.5  # all points identical
    offset = base + 1e4
    return {"random": base, "clump": clump, "dup": dup, "flat": flat, "line": line, "outlier": outlier,
            "same": same, "offset": offset}


@pytest.mark.parametrize("backend", ["numba", "kdtree"])
@pytest.mark.parametrize("name", list(hard_clouds()))
@pytest.mark.parametrize("k", [1, 8, 79])
def test_knn_within_is_exact_on_hard_clouds(backend, name, k):
    x = hard_clouds()[name]
    idx = knn_within_indices(x, k, backend=backend)
    assert idx.shape == (3, 80, k) and idx.dtype == torch.int64
    assert not (idx == torch.arange(80)[None, :, None]).any()  # never the point itself
    assert all(len(set(row.tolist())) == k for row in idx.reshape(-1, k))  # k distinct points
    torch.testing.assert_close(picked_sqdist(x, idx), ref_knn_sqdist(x, k), rtol=1e-12, atol=0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k", [1, 5, 49])
def test_knn_within_backends_agree(device, k):
    x = tie_free_cloud(3, 50, k).to(device)
    ref = knn_within_indices(x, k, backend="kdtree").cpu()
    for backend in ("numba", "torch", "auto"):
        if backend == "numba" and device != "cpu":
            continue
        torch.testing.assert_close(knn_within_indices(x, k, backend=backend).cpu(), ref, rtol=0, atol=0)
    assert knn_within_indices(x, k).device == x.device


def test_knn_within_torch_tiling_and_thread_pool(monkeypatch):
    x = tie_free_cloud(5, 60, 4)
    ref = knn_within_indices(x, 4, backend="kdtree")
    for chunk in (1, 7, 60, 1000):
        assert torch.equal(knn_within_indices(x, 4, backend="torch", chunk_size=chunk), ref)
    monkeypatch.setattr(knn_module, "num_threads", lambda: 2)  # clouds split over the pool
    for backend in ("numba", "kdtree"):
        assert torch.equal(knn_within_indices(x, 4, backend=backend), ref)
    with pytest.raises(ValueError, match="chunk_size"):
        knn_within_indices(x, 4, backend="torch", chunk_size=0)
    with pytest.raises(ValueError, match="backend must be one of"):
        knn_within_indices(x, 4, backend="faiss")


def test_grid_flags_outlier_clouds_for_the_kdtree():
    # 600 points: a far outlier puts the 599 others in one cell (599^2 candidates > 200 per point);
    # small clouds are cheap to scan whatever the grid, so the outlier in hard_clouds() stays
    pts = torch.rand(2, 600, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pts[1, 0] = 1e3
    pts = np.ascontiguousarray(pts.numpy())
    idx, ok = grid_knn_within(pts, 8)
    assert ok.tolist() == [True, False]
    # and knn_within_indices gives the exact answer for both anyway
    x = torch.from_numpy(pts)
    got = knn_within_indices(x, 8, backend="numba")
    assert torch.equal(got[0], torch.from_numpy(idx[0]))
    torch.testing.assert_close(picked_sqdist(x, got), ref_knn_sqdist(x, 8), rtol=1e-12, atol=0)


# ----------------------------------------------------------------------------- values, grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("B,N,k", [(2, 16, 1), (3, 20, 4), (1, 12, 11)])
def test_values_and_grads_match_loop_reference(device, backend, B, N, k):
    if backend == "numba" and device != "cpu":
        pytest.skip("numba back-end is CPU only")
    x = tie_free_cloud(B, N, k).to(device).requires_grad_()
    out = uniformity_loss(x, k=k, reduction="none", backend=backend)
    assert out.shape == (B,) and out.dtype == torch.float32 and out.device == x.device
    (out * torch.arange(1.0, B + 1, device=device)).sum().backward()  # distinct weights per cloud

    x64 = x.detach().cpu().double().requires_grad_()
    ref = ref_uniformity(x64, k)
    (gref,) = torch.autograd.grad((ref * torch.arange(1.0, B + 1, dtype=torch.float64)).sum(), x64)
    torch.testing.assert_close(out.detach().cpu().double(), ref.detach(), rtol=1e-5, atol=1e-7)
    scale = gref.abs().max().item()
    torch.testing.assert_close(x.grad.cpu().double(), gref, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_reductions(reduction):
    x = tie_free_cloud(3, 15, 3, dtype=torch.float64)
    per_cloud = ref_uniformity(x, 3)
    expected = {"mean": per_cloud.mean(), "sum": per_cloud.sum(), "none": per_cloud}[reduction]
    out = uniformity_loss(x, k=3, reduction=reduction)
    assert out.dtype == torch.float64 and out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend):
    x = tie_free_cloud(2, 10, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: uniformity_loss(t, k=3, reduction="none", backend=backend), (x,))


# ----------------------------------------------------------------------------- closed forms


@pytest.mark.parametrize("k", [1, 2, 7, 31])
def test_evenly_spaced_circle_is_zero(k):
    t = torch.arange(32, dtype=torch.float64) * (2 * math.pi / 32)
    circle = torch.stack([t.cos(), t.sin(), torch.zeros_like(t)], dim=1)[None]
    assert uniformity_loss(circle, k=k).item() == pytest.approx(0.0, abs=1e-20)
    assert uniformity_loss(circle.float(), k=k).item() == pytest.approx(0.0, abs=1e-10)


def test_regular_polyhedra_are_zero():
    cube = torch.tensor([[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=torch.float64)
    p = (1 + 5**0.5) / 2
    ico = torch.tensor(
        [[0, s1, s2 * p] for s1 in (-1, 1) for s2 in (-1, 1)]
        + [[s1, s2 * p, 0] for s1 in (-1, 1) for s2 in (-1, 1)]
        + [[s2 * p, 0, s1] for s1 in (-1, 1) for s2 in (-1, 1)],
        dtype=torch.float64,
    )
    assert uniformity_loss(cube[None], k=3).item() == pytest.approx(0.0, abs=1e-20)  # 3 edges per corner
    assert uniformity_loss(cube[None], k=7).item() == pytest.approx(0.0, abs=1e-20)
    assert uniformity_loss(ico[None], k=5).item() == pytest.approx(0.0, abs=1e-20)  # 5 edges per vertex


def test_evenly_spaced_line_known_values():
    line = torch.zeros(1, 5, 3, dtype=torch.float64)
    line[0, :, 0] = torch.arange(5) * 0.3
    assert uniformity_loss(line, k=1).item() == pytest.approx(0.0, abs=1e-20)
    # k=2: the two ends see (h + 2h) / 2, the three inner points h -> r = [1.5, 1, 1, 1, 1.5] h
    # mean 1.2 h, variance (2 * 0.3^2 + 3 * 0.2^2) / 5 h^2 = 0.06 h^2 -> U = 0.06 / 1.44 = 1/24
    assert uniformity_loss(line, k=2).item() == pytest.approx(1 / 24, rel=1e-12)


def test_square_grid_known_value():
    grid = torch.tensor([[i, j, 0.0] for i in range(3) for j in range(3)], dtype=torch.float64)[None]
    s2 = 2**0.5
    # k=4: centre 4 x 1; edge midpoints 3 x 1 + sqrt2; corners 2 x 1 + sqrt2 + 2 (tied 4th neighbours)
    r = [1.0] + [(3 + s2) / 4] * 4 + [(4 + s2) / 4] * 4
    mu = sum(r) / 9
    expected = sum((v - mu) ** 2 for v in r) / 9 / mu**2
    assert uniformity_loss(grid, k=4).item() == pytest.approx(expected, rel=1e-12)


def test_clumped_cloud_scores_higher_than_an_even_one():
    even = fibonacci_sphere(256)[None]
    clumped = even.clone()
    clumped[0, :128] = even[0, :1] + 1e-3 * fibonacci_sphere(128)  # half the points in a tiny ball
    u_even = uniformity_loss(even, k=8).item()
    u_clumped = uniformity_loss(clumped, k=8).item()
    assert u_even < 0.01 and u_clumped > 0.5 and u_clumped > 50 * u_even


def test_coincident_points_give_zero_and_finite_grads():
    x = torch.full((2, 10, 3), 0.25, requires_grad=True)
    out = uniformity_loss(x, k=3)
    out.backward()
    assert out.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
    # duplicates inside an otherwise spread cloud: value as the reference, gradients finite
    base = tie_free_cloud(1, 12, 2, dtype=torch.float64)
    dup = torch.cat([base, base[:, :4]], dim=1).requires_grad_()
    out = uniformity_loss(dup, k=3)
    out.backward()
    torch.testing.assert_close(out.detach(), ref_uniformity(dup.detach(), 3)[0], rtol=1e-12, atol=0)
    assert torch.isfinite(dup.grad).all()


# ----------------------------------------------------------------------------- invariances


@pytest.mark.parametrize("backend", BACKENDS)
def test_scale_rotation_translation_invariance(backend):
    x = tie_free_cloud(2, 40, 8, dtype=torch.float64)
    u = uniformity_loss(x, k=8, reduction="none", backend=backend)
    rot = random_rotation(3)
    for y in (x * 1e-3, x * 1e3, x @ rot.T, x + torch.tensor([10.0, -5.0, 3.0], dtype=torch.float64)):
        torch.testing.assert_close(uniformity_loss(y, k=8, reduction="none", backend=backend), u,
                                   rtol=1e-10, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_permutation_invariance_values_and_grads(backend):
    x = tie_free_cloud(2, 30, 4).requires_grad_()
    perm = torch.randperm(30, generator=torch.Generator().manual_seed(1))
    xp = x.detach()[:, perm].clone().requires_grad_()
    u = uniformity_loss(x, k=4, backend=backend)
    up = uniformity_loss(xp, k=4, backend=backend)
    u.backward()
    up.backward()
    torch.testing.assert_close(up, u, rtol=1e-6, atol=0)
    torch.testing.assert_close(xp.grad, x.grad[:, perm], rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- errors


def _ok():
    return torch.rand(2, 10, 3)


@pytest.mark.parametrize(
    "x, k, pattern",
    [
        (torch.rand(2, 10), 3, r"x must have shape \(B, N, 3\)"),
        (torch.rand(2, 10, 2), 3, r"x must have shape \(B, N, 3\)"),
        (torch.rand(2, 0, 3), 3, r"x must be a non-empty"),
        (torch.rand(0, 10, 3), 3, r"x must be a non-empty"),
        (torch.tensor([[[0.0, float("nan"), 0.0]] * 4]), 1, r"x contains NaN or inf"),
        (_ok(), 10, r"1 <= k < N"),
        (_ok(), 11, r"1 <= k < N"),
        (_ok(), 0, r"1 <= k < N"),
        (_ok(), 2.0, r"k must be an int"),
        (_ok(), True, r"k must be an int"),
        (torch.rand(2, 1, 3), 1, r"1 <= k < N"),
    ],
)
def test_invalid_inputs_raise(x, k, pattern):
    with pytest.raises(ValueError, match=pattern):
        uniformity_loss(x, k=k)


def test_invalid_options_raise():
    with pytest.raises(ValueError, match="reduction must be one of"):
        uniformity_loss(_ok(), reduction="avg")
    with pytest.raises(ValueError, match="backend must be one of"):
        uniformity_loss(_ok(), backend="faiss")
    with pytest.raises(TypeError, match="floating-point"):
        uniformity_loss(torch.ones(2, 10, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        uniformity_loss(_ok().numpy())
