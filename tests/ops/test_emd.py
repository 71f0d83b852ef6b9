"""Earth mover's distance against a brute force over all permutations (float64)."""

from __future__ import annotations

import itertools

import pytest
import torch

from pc3d.ops import EMDResult, emd
from pc3d.ops.emd import _have_numba

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
NUMBA = pytest.mark.skipif(not _have_numba(), reason="needs numba")

# (method, backend) pairs run on CPU
CPU_SOLVERS = [
    ("exact", "auto"),
    pytest.param("auction", "numba", marks=NUMBA),
    ("auction", "torch"),
]


# ----------------------------------------------------------------------------- reference


def brute_force(x: torch.Tensor, y: torch.Tensor, squared: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact EMD of each pair by enumerating all N! bijections (keeps the autograd graph).

    Returns (per-pair value (B,), optimal permutation (B, N)).
    """
    B, N, _ = x.shape
    perms = torch.tensor(list(itertools.permutations(range(N))))  # (P, N)
    d = (x.double()[:, :, None, :] - y.double()[:, None, :, :]).square().sum(-1)  # (B, N, N)
    if not squared:
        d = d.sqrt()
    rows = torch.arange(N)
    totals = d[:, rows, perms].mean(-1)  # (B, P)
    best = totals.argmin(dim=1)
    return totals[torch.arange(B), best], perms[best]


def rand_pair(B, N, seed, dtype=torch.float64, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, N, 3, generator=g, dtype=torch.float64) + offset
    y = torch.rand(B, N, 3, generator=g, dtype=torch.float64) + offset
    return x.to(dtype), y.to(dtype)


# ----------------------------------------------------------------------------- values, grads


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("N", [1, 2, 5, 7])
def test_exact_matches_brute_force(N, squared):
    x, y = rand_pair(3, N, seed=N)
    value = emd(x, y, squared=squared, reduction="none")
    ref, _ = brute_force(x, y, squared)
    torch.testing.assert_close(value, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_solvers_match_brute_force_within_tol(method, backend, squared):
    x, y = rand_pair(4, 6, seed=11)
    tol = 1e-2
    value = emd(x, y, method=method, backend=backend, squared=squared, reduction="none", tol=tol)
    ref, _ = brute_force(x, y, squared)
    assert (value >= ref * (1 - 1e-6)).all()
    assert (value <= ref * (1 + tol) + 1e-9).all()


@pytest.mark.parametrize("squared", [False, True])
def test_exact_gradients_match_brute_force(squared):
    x, y = rand_pair(2, 6, seed=3)
    x1, y1 = x.clone().requires_grad_(), y.clone().requires_grad_()
    emd(x1, y1, squared=squared, reduction="sum").backward()
    x2, y2 = x.clone().requires_grad_(), y.clone().requires_grad_()
    brute_force(x2, y2, squared)[0].sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(y1.grad, y2.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_gradcheck(method, backend, squared):
    x, y = rand_pair(2, 5, seed=7)
    x.requires_grad_()
    y.requires_grad_()
    # small tol: the auction then returns the optimal matching, which is locally constant.
    fn = lambda a, b: emd(a, b, method=method, backend=backend, squared=squared, tol=1e-3)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, y), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_approximation_within_tol_random(method, backend):
    # the torch auction is GPU-oriented (many small rounds): smaller clouds on CPU
    x, y = rand_pair(3, 128 if backend == "torch" else 256, seed=5, dtype=torch.float32)
    exact = emd(x.double(), y.double(), reduction="none")
    tol = 1e-2
    value = emd(x, y, method=method, backend=backend, reduction="none", tol=tol).double()
    assert value.dtype == torch.float64
    assert (value >= exact * (1 - 1e-5)).all(), (value, exact)  # a bijection: never below exact
    assert (value <= exact * (1 + tol)).all(), (value, exact)  # guaranteed bound
    assert ((value - exact) / exact).mean() < 2e-3  # in practice far below the bound


@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_approx_squared_within_tol(method, backend):
    x, y = rand_pair(2, 128, seed=8)
    exact = emd(x, y, squared=True, reduction="none")
    value = emd(x, y, method=method, backend=backend, squared=True, reduction="none")
    assert (value >= exact * (1 - 1e-9)).all()
    assert (value <= exact * 1.01).all()


# ----------------------------------------------------------------------------- known cases


@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_identical_clouds_zero_with_finite_grad(method, backend):
    x, _ = rand_pair(2, 50, seed=1, dtype=torch.float32)
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    value = emd(a, b, method=method, backend=backend)
    assert value.item() == 0.0
    value.backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
    assert a.grad.abs().max() == 0


@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_permuted_copy_recovers_permutation(method, backend):
    x, _ = rand_pair(3, 64, seed=2, dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    perms = torch.stack([torch.randperm(64, generator=g) for _ in range(3)])
    y = torch.gather(x, 1, perms[..., None].expand(-1, -1, 3))  # y[b, k] = x[b, perm[b, k]]
    res = emd(x, y, method=method, backend=backend, return_assignment=True, reduction="none")
    assert isinstance(res, EMDResult)
    assert torch.equal(res.distance, torch.zeros(3))
    inverse = perms.argsort(dim=1)  # x[b, i] = y[b, inverse[b, i]]
    assert torch.equal(res.assignment, inverse)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_translated_copy(method, backend, squared):
    """y = x + t: every bijection costs >= |t| on average (triangle inequality on the sum of
    x_i - x_s(i) - t, which is -N t), and >= |t|^2 for the squared cost (the cross term
    vanishes); the identity attains it."""
    x, _ = rand_pair(2, 40, seed=4)
    t = torch.tensor([[0.3, -0.2, 0.05], [0.0, 0.0, 0.01]], dtype=torch.float64)
    y = x + t[:, None, :]
    expected = t.norm(dim=1) ** (2 if squared else 1)
    tol = 1e-3
    value = emd(x, y, method=method, backend=backend, squared=squared, reduction="none", tol=tol)
    assert (value >= expected * (1 - 1e-12)).all()
    assert (value <= expected * (1 + tol)).all()
    if method == "exact":
        torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method,backend", CPU_SOLVERS)
def test_duplicates_large_coordinates_and_single_point(method, backend):
    x, y = rand_pair(2, 30, seed=6, offset=1000.0, dtype=torch.float32)
    y[:, 10:20] = y[:, :10]  # duplicate points
    exact = emd(x.double(), y.double(), reduction="none")
    value = emd(x, y, method=method, backend=backend, reduction="none")
    torch.testing.assert_close(value.double(), exact, rtol=1.01e-2, atol=1e-4)
    one = emd(x[:, :1], y[:, :1], method=method, backend=backend, reduction="none")
    torch.testing.assert_close(one, (x[:, 0] - y[:, 0]).norm(dim=1))
    same = torch.zeros(1, 4, 3)
    assert emd(same, same.clone(), method=method, backend=backend).item() == 0.0


def test_reductions_and_dtype():
    x, y = rand_pair(3, 20, seed=9, dtype=torch.float32)
    none = emd(x, y, reduction="none")
    assert none.shape == (3,) and none.dtype == torch.float32
    torch.testing.assert_close(emd(x, y), none.mean())
    torch.testing.assert_close(emd(x, y, reduction="sum"), none.sum())
    res = emd(x, y, return_assignment=True)
    assert res.assignment.shape == (3, 20) and res.assignment.dtype == torch.int64
    for b in range(3):
        assert torch.equal(res.assignment[b].sort().values, torch.arange(20))


def test_numba_and_torch_backends_agree():
    if not _have_numba():
        pytest.skip("needs numba")
    x, y = rand_pair(2, 100, seed=12)
    a = emd(x, y, method="auction", backend="numba", reduction="none", tol=1e-3)
    b = emd(x, y, method="auction", backend="torch", reduction="none", tol=1e-3)
    torch.testing.assert_close(a, b, rtol=2e-3, atol=0)


# ----------------------------------------------------------------------------- errors


def test_errors():
    x = torch.rand(2, 8, 3)
    with pytest.raises(ValueError, match="same number of points"):
        emd(x, torch.rand(2, 9, 3))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        emd(torch.rand(8, 3), torch.rand(8, 3))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        emd(torch.rand(2, 8, 2), torch.rand(2, 8, 2))
    with pytest.raises(ValueError, match="non-empty"):
        emd(torch.rand(2, 0, 3), torch.rand(2, 0, 3))
    with pytest.raises(ValueError, match="batch size"):
        emd(x, torch.rand(3, 8, 3))
    bad = x.clone()
    bad[0, 1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        emd(bad, x)
    bad[0, 1, 2] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        emd(x, bad, method="approx")
    with pytest.raises(ValueError, match="method"):
        emd(x, x, method="sinkhorn")
    with pytest.raises(ValueError, match="reduction"):
        emd(x, x, reduction="max")
    with pytest.raises(ValueError, match="backend"):
        emd(x, x, method="auction", backend="keops")
    with pytest.raises(ValueError, match="tol"):
        emd(x, x, method="auction", tol=0.0)
    with pytest.raises(TypeError):
        emd(x.numpy(), x)
    with pytest.raises(TypeError):
        emd(x.long(), x.long())


# ----------------------------------------------------------------------------- CUDA


@CUDA
@pytest.mark.cuda
@pytest.mark.parametrize("squared", [False, True])
def test_cuda_auction_matches_cpu_exact(squared):
    x, y = rand_pair(4, 300, seed=13, dtype=torch.float32)
    exact = emd(x.double(), y.double(), squared=squared, reduction="none")
    xc, yc = x.cuda().requires_grad_(), y.cuda().requires_grad_()
    res = emd(xc, yc, method="auction", squared=squared, reduction="none", return_assignment=True)
    assert res.distance.device.type == "cuda" and res.assignment.device.type == "cuda"
    value = res.distance.double().cpu()
    assert (value >= exact * (1 - 1e-5)).all()
    assert (value <= exact * 1.01).all()
    res.distance.sum().backward()
    assert torch.isfinite(xc.grad).all() and torch.isfinite(yc.grad).all()
    exact_cuda = emd(x.double().cuda(), y.double().cuda(), squared=squared, reduction="none")
    torch.testing.assert_close(exact_cuda.cpu(), exact)
