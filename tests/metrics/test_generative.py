"""MMD / COV / 1-NNA / JSD: hand-checkable cases and naive double-loop references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.metrics.generative import (
    GenerationMetrics,
    distance_matrix,
    evaluate_generation,
    jsd_between_sets,
    mmd_cov,
    occupancy_counts,
    one_nna,
)
from pc3d.ops import chamfer_distance
from tests.metrics.conftest import scipy_emd


def _clouds(n, pts=32, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, pts, 3, generator=g) - 0.5) * 0.8 + shift


def _naive_cd_matrix(a, b):
    return torch.tensor(
        [[float(chamfer_distance(x[None].double(), y[None].double())) for y in b] for x in a], dtype=torch.float64
    )


# ----------------------------------------------------------------------------- naive metrics


def _naive_mmd_cov(d):
    S, R = d.shape
    mins = []
    for r in range(R):
        mins.append(min(float(d[s, r]) for s in range(S)))
    nearest = set()
    for s in range(S):
        best, arg = math.inf, -1
        for r in range(R):
            if float(d[s, r]) < best:
                best, arg = float(d[s, r]), r
        nearest.add(arg)
    return sum(mins) / R, len(nearest) / R


def _naive_1nna(d_sr, d_ss, d_rr):
    S, R = d_sr.shape
    labels = [0] * S + [1] * R

    def dist(i, j):
        if i < S and j < S:
            return float(d_ss[i, j])
        if i >= S and j >= S:
            return float(d_rr[i - S, j - S])
        return float(d_sr[i, j - S]) if i < S else float(d_sr[j, i - S])

    scores = []
    for i in range(S + R):
        ds = [(dist(i, j), labels[j]) for j in range(S + R) if j != i]
        best = min(v for v, _ in ds)
        tied = [lab for v, lab in ds if v == best]
        scores.append(sum(lab == labels[i] for lab in tied) / len(tied))
    return sum(scores) / (S + R), sum(scores[:S]) / S, sum(scores[S:]) / R


# ----------------------------------------------------------------------------- distance matrices


@pytest.mark.parametrize("backend", ["numba", "kdtree", "torch"])
def test_cd_matrix_matches_double_loop(backend):
    a, b = _clouds(5, 40, seed=1), _clouds(4, 33, seed=2)
    ref = _naive_cd_matrix(a, b)
    got = distance_matrix(a, b, backend=backend, batch_size=3)
    assert got.shape == (5, 4) and got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-7)
    got64 = distance_matrix(a.double(), b.double(), backend=backend)
    torch.testing.assert_close(got64, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("backend", ["numba", "kdtree", "torch"])
def test_same_set_matrix_is_symmetric_with_zero_diagonal(backend):
    a = _clouds(6, 25, seed=3).double()
    got = distance_matrix(a, None, backend=backend, batch_size=4)
    torch.testing.assert_close(got, _naive_cd_matrix(a, a), rtol=1e-12, atol=1e-14)
    assert torch.equal(got, got.T) and torch.all(got.diagonal() == 0)


def test_emd_matrix_matches_scipy_double_loop(emd_op):
    a, b = _clouds(3, 20, seed=4).double(), _clouds(4, 20, seed=5).double()
    ref = torch.stack([scipy_emd(a[i : i + 1].expand(4, -1, -1), b, reduction="none") for i in range(3)])
    got = distance_matrix(a, b, distance="emd", batch_size=5)
    torch.testing.assert_close(got, ref, rtol=1e-6, atol=1e-8)
    same = distance_matrix(a, None, distance="emd")
    assert torch.equal(same, same.T) and torch.all(same.diagonal() == 0)


def test_emd_needs_equal_point_counts(emd_op):
    with pytest.raises(ValueError, match="equal point counts"):
        distance_matrix(_clouds(2, 10), _clouds(2, 12), distance="emd")


# ----------------------------------------------------------------------------- metrics vs naive


def test_metrics_equal_naive_on_random_matrices():
    g = torch.Generator().manual_seed(0)
    for S, R in [(5, 7), (8, 3), (1, 4)]:
        d_sr = torch.rand(S, R, generator=g, dtype=torch.float64)
        m = torch.rand(S, S, generator=g, dtype=torch.float64)
        d_ss = m + m.T
        m = torch.rand(R, R, generator=g, dtype=torch.float64)
        d_rr = m + m.T
        assert mmd_cov(d_sr) == pytest.approx(_naive_mmd_cov(d_sr), abs=0, rel=1e-15)
        assert one_nna(d_sr, d_ss, d_rr) == pytest.approx(_naive_1nna(d_sr, d_ss, d_rr), abs=0, rel=1e-15)


def test_evaluate_generation_equals_naive_pipeline():
    s, r = _clouds(6, 30, seed=6).double(), _clouds(5, 30, seed=7).double()
    out = evaluate_generation(s, r)
    d_sr, d_ss, d_rr = _naive_cd_matrix(s, r), _naive_cd_matrix(s, s), _naive_cd_matrix(r, r)
    mmd, cov = _naive_mmd_cov(d_sr)
    acc, acc_s, acc_r = _naive_1nna(d_sr, d_ss, d_rr)
    assert set(out) == {"mmd_cd", "cov_cd", "1nna_cd", "1nna_cd_sample", "1nna_cd_ref"}
    assert out["mmd_cd"] == pytest.approx(mmd, rel=1e-12)
    assert (out["cov_cd"], out["1nna_cd"], out["1nna_cd_sample"], out["1nna_cd_ref"]) == (cov, acc, acc_s, acc_r)


def test_ties_count_as_fraction_of_tied_neighbours():
    # sample 0 is at distance 1 from sample 1 and from ref 0: one of two tied neighbours is
    # from its own set -> 0.5.
    d_sr = torch.tensor([[1.0, 5.0], [5.0, 5.0]], dtype=torch.float64)
    d_ss = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    d_rr = torch.tensor([[0.0, 9.0], [9.0, 0.0]], dtype=torch.float64)
    acc, acc_s, acc_r = one_nna(d_sr, d_ss, d_rr)
    assert acc_s == pytest.approx((0.5 + 1.0) / 2)
    assert acc_r == pytest.approx((0.0 + 0.0) / 2)  # both refs' nearest are samples
    assert acc == pytest.approx(1.5 / 4)
    # COV ties go to the lowest reference index
    assert mmd_cov(torch.tensor([[1.0, 1.0]]))[1] == 0.5


# ----------------------------------------------------------------------------- hand-checkable


def test_identical_sets():
    x = _clouds(8, 50, seed=8) * 0.5  # inside the JSD sphere
    out = evaluate_generation(x, x.clone(), distances=("cd", "jsd"))
    assert out["mmd_cd"] == 0.0 and out["cov_cd"] == 1.0
    assert out["1nna_cd"] == 0.0 and out["1nna_cd_sample"] == 0.0 and out["1nna_cd_ref"] == 0.0
    assert out["jsd"] == 0.0


def test_permuted_reference_set_has_full_coverage():
    x = _clouds(10, 40, seed=9)
    out = evaluate_generation(x[torch.randperm(10, generator=torch.Generator().manual_seed(0))], x)
    assert out["cov_cd"] == 1.0 and out["mmd_cd"] == 0.0


def test_disjoint_sets_are_perfectly_separable():
    out = evaluate_generation(_clouds(7, 40, seed=10), _clouds(6, 40, seed=11, shift=10.0))
    assert out["1nna_cd"] == 1.0 and out["1nna_cd_sample"] == 1.0 and out["1nna_cd_ref"] == 1.0
    assert 1 / 6 <= out["cov_cd"] <= 1.0


def test_two_samples_of_one_distribution_give_about_half():
    out = evaluate_generation(_clouds(60, 48, seed=12), _clouds(60, 48, seed=13))
    assert 0.35 < out["1nna_cd"] < 0.65, out


def test_emd_keys_and_identical_sets(emd_op):
    x = _clouds(4, 16, seed=14)
    out = evaluate_generation(x, x.clone(), distances=("cd", "emd"))
    assert out["mmd_emd"] == pytest.approx(0.0, abs=1e-7) and out["cov_emd"] == 1.0 and out["1nna_emd"] == 0.0


# ----------------------------------------------------------------------------- normalization


def test_global_normalization_is_invariant_to_a_common_similarity():
    s, r = _clouds(6, 30, seed=15).double(), _clouds(5, 30, seed=16).double()
    a = evaluate_generation(s, r, normalize="global")
    b = evaluate_generation(s * 3.0 + 2.0, r * 3.0 + 2.0, normalize="global")
    assert a == pytest.approx(b, rel=1e-9)
    raw = evaluate_generation(s * 3.0, r * 3.0)
    assert raw["mmd_cd"] == pytest.approx(9.0 * evaluate_generation(s, r)["mmd_cd"], rel=1e-9)


def test_per_cloud_normalizations_remove_per_cloud_scale():
    s, r = _clouds(5, 30, seed=17).double(), _clouds(5, 30, seed=18).double()
    scales = torch.linspace(0.5, 4.0, 5, dtype=torch.float64).view(5, 1, 1)
    for mode in ("unit_sphere", "unit_bbox"):
        assert evaluate_generation(s * scales, r, normalize=mode) == pytest.approx(
            evaluate_generation(s, r, normalize=mode), rel=1e-9
        )


def test_explicit_global_stats_are_used():
    s, r = _clouds(4, 20, seed=19).double(), _clouds(4, 20, seed=20).double()
    out = evaluate_generation(s, r, normalize="global", global_stats={"mean": [0, 0, 0], "std": 2.0})
    assert out["mmd_cd"] == pytest.approx(evaluate_generation(s, r)["mmd_cd"] / 4.0, rel=1e-9)


# ----------------------------------------------------------------------------- JSD


def test_jsd_matches_scipy_jensenshannon():
    from scipy.spatial.distance import jensenshannon

    s, r = _clouds(5, 200, seed=21) * 0.5, _clouds(5, 200, seed=22) * 0.5 + 0.3
    p = occupancy_counts(s).astype(float)
    with pytest.warns(UserWarning, match="outside"):  # the shifted set pokes out of the sphere
        q = occupancy_counts(r).astype(float)
        got = jsd_between_sets(s, r)
    assert got == pytest.approx(jensenshannon(p, q, base=2) ** 2, rel=1e-9)
    assert 0 < got <= 1


def test_jsd_grid_and_self():
    assert len(occupancy_counts(torch.zeros(1, 1, 3), in_sphere=False)) == 28**3
    counts = occupancy_counts(torch.zeros(2, 5, 3))
    assert counts.sum() == 10 and counts.max() == 10  # all points in the centre cell
    x = _clouds(3, 100, seed=23) * 0.5
    assert jsd_between_sets(x, x.clone()) == 0.0
    assert jsd_between_sets(x, x[[2, 0, 1]]) == 0.0  # order of clouds does not matter


# ----------------------------------------------------------------------------- inputs, wrapper


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        evaluate_generation(torch.zeros(2, 5, 2), torch.zeros(2, 5, 3))
    with pytest.raises(ValueError, match="normalize"):
        evaluate_generation(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), normalize="unit")
    with pytest.raises(ValueError, match="distances"):
        evaluate_generation(torch.zeros(2, 5, 3), torch.zeros(2, 5, 3), distances=("l2",))
    with pytest.raises(ValueError, match="NaN"):
        evaluate_generation(torch.full((2, 5, 3), float("nan")), torch.zeros(2, 5, 3))


def test_numpy_inputs_and_lists():
    s, r = _clouds(3, 20, seed=24), _clouds(3, 20, seed=25)
    a = evaluate_generation(s.numpy(), [c.numpy() for c in r])
    assert a == evaluate_generation(s, r)


def test_generation_metrics_accumulates_batches():
    s, r = _clouds(6, 20, seed=26), _clouds(5, 20, seed=27)
    m = GenerationMetrics(refs=r)
    m.update(s[:4])
    m.update(s[4:])
    got = {k: float(v) for k, v in m.compute().items()}
    assert got == pytest.approx(evaluate_generation(s, r), rel=1e-6)
    m.reset()
    m2 = GenerationMetrics(distances=("cd",))
    m2.update(s[:3], r[:2])
    m2.update(s[3:], r[2:])
    assert {k: float(v) for k, v in m2.compute().items()} == pytest.approx(evaluate_generation(s, r), rel=1e-6)
    assert np.isfinite(list(got.values())).all()
