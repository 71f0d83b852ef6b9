"""The compiled both-directions Chamfer kernel against a naive float64 reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.metrics._chamfer_pairs import chamfer_pair_terms, have_numba
from pc3d.metrics.generative import distance_matrix, evaluate_generation
from pc3d.ops.common import get_pool

pytestmark = pytest.mark.skipif(not have_numba(), reason="numba is not installed")


def _naive_terms(a, b, ii, jj):
    """Double loop over the pairs, float64, every squared distance written out."""
    ab, ba = [], []
    for i, j in zip(ii, jj):
        x, y = a[i].astype(np.float64), b[j].astype(np.float64)
        d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)  # (N, M)
        ab.append(d.min(axis=1).mean())
        ba.append(d.min(axis=0).mean())
    return np.array(ab), np.array(ba)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("n,m", [(37, 53), (1, 9), (64, 1), (256, 200)])
def test_terms_match_float64_double_loop(dtype, rtol, n, m):
    rng = np.random.default_rng(n * 1000 + m)
    a = (rng.standard_normal((4, n, 3)) * [1.0, 0.5, 2.0] + 0.3).astype(dtype)
    b = (rng.standard_normal((3, m, 3)) + 0.1).astype(dtype)
    ii = np.array([0, 1, 3, 2, 0, 3])
    jj = np.array([2, 0, 1, 1, 0, 2])
    got_ab, got_ba = chamfer_pair_terms(a, b, ii, jj)
    ref_ab, ref_ba = _naive_terms(a, b, ii, jj)
    assert got_ab.dtype == np.float64 and got_ab.shape == (6,)
    np.testing.assert_allclose(got_ab, ref_ab, rtol=rtol, atol=0)
    np.testing.assert_allclose(got_ba, ref_ba, rtol=rtol, atol=0)


def test_swapping_the_clouds_swaps_the_terms_and_pool_gives_the_same_values():
    rng = np.random.default_rng(1)
    a = rng.random((40, 96, 3)).astype(np.float32)
    ii, jj = np.triu_indices(40, k=1)  # 780 pairs: several thread-pool jobs
    ab, ba = chamfer_pair_terms(a, a, ii, jj)
    ab2, ba2 = chamfer_pair_terms(a, a, jj, ii, pool=get_pool(2), workers=2)
    np.testing.assert_array_equal(ab, ba2)
    np.testing.assert_array_equal(ba, ab2)


def test_identical_and_translated_clouds():
    rng = np.random.default_rng(2)
    a = rng.random((2, 50, 3))
    t = np.array([0.25, -0.5, 1.0])
    b = np.stack([a[0], a[0] + t, a[1][::-1]])  # copy, far translated copy, permuted copy
    ab, ba = chamfer_pair_terms(a, b, np.array([0, 1]), np.array([0, 2]))
    assert ab.tolist() == [0.0, 0.0] and ba.tolist() == [0.0, 0.0]
    ab, _ = chamfer_pair_terms(a[:1] * 0, (a[:1] * 0) + t, np.array([0]), np.array([0]))
    assert ab[0] == pytest.approx(float(t @ t), rel=1e-15)


def test_bad_pair_indices_raise():
    a = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match="out of range"):
        chamfer_pair_terms(a, a, np.array([0, 2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="equal length"):
        chamfer_pair_terms(a, a, np.array([0, 1]), np.array([0]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_matrices_agree_with_kdtree_path(dtype):
    g = torch.Generator().manual_seed(3)
    s = (torch.rand(12, 300, 3, generator=g, dtype=torch.float64) - 0.5).to(dtype)
    r = (torch.rand(9, 250, 3, generator=g, dtype=torch.float64) - 0.4).to(dtype)
    tol = dict(rtol=1e-12, atol=0) if dtype == torch.float64 else dict(rtol=2e-6, atol=0)
    for a, b in ((s, r), (s, None), (r, None)):
        got = distance_matrix(a, b, backend="numba")
        ref = distance_matrix(a, b, backend="kdtree")
        torch.testing.assert_close(got, ref, **tol)
        if b is None:
            assert torch.equal(got, got.T) and torch.all(got.diagonal() == 0)
    out_numba = evaluate_generation(s, r, backend="numba")
    out_tree = evaluate_generation(s, r, backend="kdtree")
    assert out_numba == pytest.approx(out_tree, rel=1e-5)
    for key in ("cov_cd", "1nna_cd", "1nna_cd_sample", "1nna_cd_ref"):
        assert out_numba[key] == out_tree[key]


def test_auto_backend_on_cpu_is_numba(monkeypatch):
    import pc3d.metrics.pairwise as pairwise

    called = []
    monkeypatch.setattr(pairwise, "_cd_matrix_numba", lambda a, b: called.append(1) or pairwise._cd_matrix_kdtree(a, b))
    pairwise.distance_matrix(torch.rand(3, 10, 3))
    assert called == [1]
