"""Chamfer distance and nearest neighbours against a naive float64 reference."""

from __future__ import annotations

import pytest
import torch

from pc3d.ops import ChamferResult, chamfer_distance, nearest_neighbors
from pc3d.ops import knn as knn_module

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=[CUDA, pytest.mark.cuda])]
BACKENDS = ["kdtree", "torch"]


# ----------------------------------------------------------------------------- reference


def ref_sqdist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Explicit (B, N, M) squared distances in float64 (keeps the autograd graph)."""
    return (x.double()[:, :, None, :] - y.double()[:, None, :, :]).square().sum(-1)


def ref_chamfer(x, y, squared=True, reduction="mean"):
    d = ref_sqdist(x, y)
    if not squared:
        d = d.sqrt()
    per_cloud = d.min(dim=2).values.mean(dim=1) + d.min(dim=1).values.mean(dim=1)
    return {"mean": per_cloud.mean(), "sum": per_cloud.sum(), "none": per_cloud}[reduction]


def ref_grads(x, y, squared=True, reduction="mean"):
    x64 = x.detach().double().requires_grad_()
    y64 = y.detach().double().requires_grad_()
    value = ref_chamfer(x64, y64, squared, reduction)
    gx, gy = torch.autograd.grad(value.sum(), (x64, y64))
    return value.detach(), gx, gy


def assert_close_rel(actual, expected, rtol=1e-5):
    """Relative agreement, with the absolute floor scaled by the largest reference entry."""
    expected = expected.to(actual.dtype)
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * max(scale, 1e-30))


def tie_free_clouds(B, N, M, *, device="cpu", dtype=torch.float32, offset=0.0, min_gap=1e-3):
    """Random clouds whose nearest neighbours (both directions) are unambiguous.

    The gap between the first and second nearest squared distance must exceed ``min_gap``
    times the first, so a float32 argmin cannot pick another neighbour.
    """
    for seed in range(100):
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(B, N, 3, generator=g, dtype=torch.float64)
        y = torch.rand(B, M, 3, generator=g, dtype=torch.float64)
        x, y = (x + offset).to(dtype), (y + offset).to(dtype)
        d = ref_sqdist(x, y)
        ok = True
        for dd in (d, d.transpose(1, 2)):
            if dd.shape[2] < 2:
                continue
            two = dd.topk(2, dim=2, largest=False).values
            ok &= bool(((two[..., 1] - two[..., 0]) > min_gap * two[..., 0] + 1e-12).all())
        if ok:
            return x.to(device), y.to(device)
    raise AssertionError("could not draw tie-free clouds")


def assert_valid_nn(x, y, dist2, idx):
    """idx points to a nearest point of y and dist2 is its squared distance."""
    d = ref_sqdist(x, y)
    best = d.min(dim=2).values
    picked = torch.gather(d, 2, idx[..., None].to(d.device))[..., 0]
    assert idx.dtype == torch.int64
    assert_close_rel(picked, best, rtol=1e-6)
    assert_close_rel(dist2.double(), best, rtol=1e-5)


# ----------------------------------------------------------------------------- values, grads


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("B,N,M", [(3, 64, 97), (1, 50, 50), (2, 120, 7)])
def test_values_and_grads_match_reference(device, backend, squared, B, N, M):
    x, y = tie_free_clouds(B, N, M, device=device)
    x.requires_grad_()
    y.requires_grad_()
    out = chamfer_distance(x, y, squared=squared, backend=backend)
    out.backward()
    ref, gx, gy = ref_grads(x, y, squared)
    assert out.dtype == torch.float32 and out.device == x.device and out.shape == ()
    assert_close_rel(out.detach().cpu(), ref.cpu())
    assert_close_rel(x.grad.cpu(), gx.cpu())
    assert_close_rel(y.grad.cpu(), gy.cpu())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("squared", [True, False])
def test_reductions(reduction, squared):
    x, y = tie_free_clouds(4, 40, 30)
    x.requires_grad_()
    y.requires_grad_()
    out = chamfer_distance(x, y, squared=squared, reduction=reduction)
    assert out.shape == ((4,) if reduction == "none" else ())
    out.sum().backward()
    ref, gx, gy = ref_grads(x, y, squared, reduction)
    assert_close_rel(out.detach(), ref)
    assert_close_rel(x.grad, gx)
    assert_close_rel(y.grad, gy)


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_coordinates_keep_precision(backend):
    # Points in [1000, 1001]^3: ||x||^2 - 2x.y + ||y||^2 in float32 would be off by ~0.1.
    x, y = tie_free_clouds(2, 200, 150, offset=1e3)
    x.requires_grad_()
    y.requires_grad_()
    parts = chamfer_distance(x, y, reduction="none", return_parts=True, backend=backend)
    parts.distance.sum().backward()
    ref, gx, gy = ref_grads(x, y, True, "none")
    assert_close_rel(parts.distance.detach(), ref)
    assert_close_rel(x.grad, gx)
    assert_close_rel(y.grad, gy)
    dist2, idx = nearest_neighbors(x, y, backend=backend)
    assert_valid_nn(x, y, dist2, idx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("squared", [True, False])
def test_duplicate_points_values(backend, squared):
    g = torch.Generator().manual_seed(3)
    base = torch.rand(2, 30, 3, generator=g)
    x = torch.cat([base, base[:, :10]], dim=1)  # duplicated points inside x
    y = torch.cat([base[:, 5:], base[:, 5:], torch.rand(2, 5, 3, generator=g)], dim=1)  # ties in y
    out = chamfer_distance(x, y, squared=squared, reduction="none", backend=backend)
    assert_close_rel(out, ref_chamfer(x, y, squared, "none"))
    _, idx = nearest_neighbors(x, y, backend=backend)
    assert_valid_nn(x, y, *nearest_neighbors(x, y, backend=backend))
    assert idx.shape == (2, 40)


# ----------------------------------------------------------------------------- structure


@pytest.mark.parametrize("backend", BACKENDS)
def test_return_parts_consistency(backend):
    x, y = tie_free_clouds(3, 45, 60)
    parts = chamfer_distance(x, y, reduction="none", return_parts=True, backend=backend)
    assert isinstance(parts, ChamferResult)
    torch.testing.assert_close(parts.distance, parts.x_to_y + parts.y_to_x)
    assert parts.x_to_y.shape == parts.y_to_x.shape == (3,)
    assert parts.idx_x_to_y.shape == (3, 45) and parts.idx_y_to_x.shape == (3, 60)
    d = ref_sqdist(x, y)
    assert torch.equal(parts.idx_x_to_y, d.argmin(dim=2))
    assert torch.equal(parts.idx_y_to_x, d.argmin(dim=1))
    assert_close_rel(parts.x_to_y, d.min(dim=2).values.mean(1))
    assert_close_rel(parts.y_to_x, d.min(dim=1).values.mean(1))
    mean_parts = chamfer_distance(x, y, return_parts=True, backend=backend)
    torch.testing.assert_close(mean_parts.distance, parts.distance.mean())
    torch.testing.assert_close(mean_parts.x_to_y, parts.x_to_y)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_backends_agree(device, dtype):
    x, y = tie_free_clouds(4, 150, 90, device=device, dtype=dtype)
    d_kd, i_kd = nearest_neighbors(x, y, backend="kdtree")
    d_t, i_t = nearest_neighbors(x, y, backend="torch")
    assert torch.equal(i_kd, i_t)
    torch.testing.assert_close(d_kd, d_t)
    assert d_kd.dtype == dtype and d_kd.device == x.device and i_kd.device == x.device
    a = chamfer_distance(x, y, reduction="none", backend="kdtree")
    b = chamfer_distance(x, y, reduction="none", backend="torch")
    auto = chamfer_distance(x, y, reduction="none")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, auto)
    assert a.dtype == dtype


def test_torch_backend_tiling(monkeypatch):
    x, y = tie_free_clouds(5, 33, 41, dtype=torch.float64)
    expected = ref_sqdist(x, y).argmin(dim=2)
    for chunk in (1, 7, 33, 1000):
        assert torch.equal(nearest_neighbors(x, y, backend="torch", chunk_size=chunk)[1], expected)
    # Memory-budget tiling: rows of one cloud, then several clouds per tile.
    for budget in (41 * 8 * 4, 33 * 41 * 8 * 2):
        monkeypatch.setattr(knn_module, "TORCH_TILE_BYTES", budget)
        assert torch.equal(nearest_neighbors(x, y, backend="torch")[1], expected)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_backend_exact_under_reduced_matmul_precision(device):
    # With TF32-style float32 matmuls allowed, the torch back-end must not use them.
    x, y = tie_free_clouds(3, 200, 180, device=device, offset=5.0)
    expected = ref_sqdist(x, y).argmin(dim=2)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("medium")
        idx = nearest_neighbors(x, y, backend="torch", chunk_size=64)[1]
    finally:
        torch.set_float32_matmul_precision(previous)
    assert torch.equal(idx, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_half_precision_inputs_search_exactly(backend):
    g = torch.Generator().manual_seed(0)
    xb = torch.rand(2, 40, 3, generator=g).to(torch.bfloat16)
    yb = torch.rand(2, 30, 3, generator=g).to(torch.bfloat16)
    dist2, idx = nearest_neighbors(xb, yb, backend=backend)
    assert dist2.dtype == torch.bfloat16
    d = ref_sqdist(xb, yb)  # exact in float64 for bfloat16 values; ties are possible
    assert torch.equal(torch.gather(d, 2, idx[..., None])[..., 0], d.min(dim=2).values)


def test_kdtree_single_thread_and_single_job(monkeypatch):
    x, y = tie_free_clouds(3, 20, 25, dtype=torch.float64)
    expected = ref_sqdist(x, y).argmin(dim=2)
    assert torch.equal(nearest_neighbors(x[:1], y[:1], backend="kdtree")[1], expected[:1])
    monkeypatch.setattr(knn_module, "num_threads", lambda: 1)
    assert torch.equal(nearest_neighbors(x, y, backend="kdtree")[1], expected)


def test_nearest_neighbors_has_no_graph():
    x, y = tie_free_clouds(2, 10, 12)
    x.requires_grad_()
    dist2, idx = nearest_neighbors(x, y)
    assert not dist2.requires_grad and dist2.shape == (2, 10) and idx.shape == (2, 10)


# ----------------------------------------------------------------------------- known cases


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("squared", [True, False])
def test_identical_clouds_give_zero_and_finite_grads(backend, squared):
    x = torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(1)).requires_grad_()
    y = x.detach().clone().requires_grad_()
    out = chamfer_distance(x, y, squared=squared, backend=backend)
    out.backward()
    assert out.item() == 0.0
    for g in (x.grad, y.grad):
        assert torch.isfinite(g).all() and torch.equal(g, torch.zeros_like(g))


@pytest.mark.parametrize("backend", BACKENDS)
def test_shift_closed_form(backend):
    # Grid with spacing 0.1; a shift t with |t| < 0.05 keeps every point's partner nearest,
    # so cd = |t|^2 + |t|^2 (squared) or 2 |t| (euclidean).
    axis = torch.arange(4, dtype=torch.float64) * 0.1
    grid = torch.cartesian_prod(axis, axis, axis)  # (64, 3)
    t = torch.tensor([0.01, 0.02, -0.015], dtype=torch.float64)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(0))
    x = grid.expand(2, -1, -1).contiguous()
    y = (grid + t)[perm].expand(2, -1, -1).contiguous()
    parts = chamfer_distance(x, y, reduction="none", return_parts=True, backend=backend)
    torch.testing.assert_close(parts.distance, torch.full((2,), 2 * t.square().sum().item(), dtype=x.dtype))
    inverse = torch.argsort(perm)
    assert torch.equal(parts.idx_x_to_y, inverse.expand(2, -1))
    assert torch.equal(parts.idx_y_to_x, perm.expand(2, -1))
    euclid = chamfer_distance(x, y, squared=False, reduction="none", backend=backend)
    torch.testing.assert_close(euclid, torch.full((2,), 2 * t.norm().item(), dtype=x.dtype))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("squared", [True, False])
def test_gradcheck(backend, squared):
    x, y = tie_free_clouds(2, 5, 7, dtype=torch.float64, min_gap=0.05)
    x.requires_grad_()
    y.requires_grad_()

    def fn(a, b):
        return chamfer_distance(a, b, squared=squared, reduction="none", backend=backend)

    assert torch.autograd.gradcheck(fn, (x, y))


# ----------------------------------------------------------------------------- errors


def _ok(B=2, N=5):
    return torch.rand(B, N, 3)


@pytest.mark.parametrize(
    "x,y,pattern",
    [
        (torch.rand(5, 3), _ok(), r"x must have shape \(B, N, 3\), got \(5, 3\)"),
        (_ok(), torch.rand(2, 5, 2), r"y must have shape \(B, N, 3\), got \(2, 5, 2\)"),
        (torch.rand(2, 5, 3, 1), _ok(), r"x must have shape \(B, N, 3\)"),
        (_ok(B=2), _ok(B=3), r"same batch size"),
        (torch.rand(2, 0, 3), _ok(), r"x must be a non-empty .* N >= 1"),
        (_ok(), torch.rand(2, 0, 3), r"y must be a non-empty"),
        (torch.rand(0, 5, 3), torch.rand(0, 5, 3), r"x must be a non-empty .* B >= 1"),
        (torch.tensor([[[0.0, float("nan"), 0.0]]]), torch.rand(1, 4, 3), r"x contains NaN or inf"),
        (torch.rand(1, 4, 3), torch.tensor([[[0.0, float("inf"), 0.0]]]), r"y contains NaN or inf"),
        (_ok(), _ok().double(), r"same dtype"),
    ],
)
def test_invalid_inputs_raise(x, y, pattern):
    with pytest.raises(ValueError, match=pattern):
        chamfer_distance(x, y)
    with pytest.raises(ValueError, match=pattern):
        nearest_neighbors(x, y)


def test_invalid_options_raise():
    x, y = _ok(), _ok()
    with pytest.raises(ValueError, match="reduction must be one of"):
        chamfer_distance(x, y, reduction="avg")
    with pytest.raises(ValueError, match="backend must be one of"):
        chamfer_distance(x, y, backend="faiss")
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        nearest_neighbors(x, y, backend="torch", chunk_size=0)
    with pytest.raises(TypeError, match="floating-point"):
        chamfer_distance(torch.ones(2, 5, 3, dtype=torch.int64), torch.ones(2, 5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        chamfer_distance(x.numpy(), y)
