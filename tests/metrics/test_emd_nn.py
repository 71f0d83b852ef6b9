"""Pruned nearest-neighbour EMD queries (pc3d.metrics.emd_nn) vs the full matrices and naive references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.metrics.emd_nn import emd_lower_bounds, nearest_emd
from pc3d.metrics.generative import evaluate_generation, mmd_cov, mmd_cov_from_nearest, one_nna, one_nna_from_nearest
from pc3d.metrics.pairwise import distance_matrix
from tests.metrics.conftest import scipy_emd

EMD_KEYS = ("mmd_emd", "cov_emd", "1nna_emd", "1nna_emd_sample", "1nna_emd_ref")


def _clustered(n, pts=24, seed=0, centres=4, spread=0.05):
    """Clouds around a few well separated cluster shapes: most pairs are far apart (prunable)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(centres, pts, 3, generator=torch.Generator().manual_seed(99)) * 0.3
    offs = torch.arange(centres, dtype=torch.float32)[:, None, None] * torch.tensor([1.0, 0.5, 0.0])
    which = torch.arange(n) % centres
    return base[which] + offs[which] + spread * torch.randn(n, pts, 3, generator=g)


def _with_ties(S=7, R=6, pts=20):
    s = _clustered(S, pts, seed=1)
    r = _clustered(R, pts, seed=2)
    s[3] = r[2]  # sample 3 == reference 2: distance 0
    s[5] = s[1][torch.randperm(pts, generator=torch.Generator().manual_seed(3))]  # permuted copy: 0 (a tie)
    r[4] = r[0]  # two equal references: sample rows tie between references 0 and 4
    return s, r


def _full_union(s, r, method):
    d_sr = distance_matrix(s, r, distance="emd", emd_method=method)
    d_ss = distance_matrix(s, None, distance="emd", emd_method=method)
    d_rr = distance_matrix(r, None, distance="emd", emd_method=method)
    return d_sr, d_ss, d_rr


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_nearest_matches_full_matrix_rows(method):
    s, r = _with_ties()
    S = len(s)
    d_sr, d_ss, d_rr = _full_union(s, r, method)
    full = torch.cat([torch.cat([d_ss, d_sr], 1), torch.cat([d_sr.T, d_rr], 1)])
    full.fill_diagonal_(float("inf"))
    nn = nearest_emd(s, r, method=method)
    for col, block in enumerate((full[:, :S], full[:, S:])):
        mins = block.min(dim=1).values
        assert np.array_equal(nn.value[:, col], mins.numpy())  # bit-identical values
        assert np.array_equal(nn.index[:, col], block.argmin(dim=1).numpy())  # first argmin on ties
        assert np.array_equal(nn.ties[:, col], (block == mins[:, None]).sum(1).numpy())
    assert nn.ties[3, 1] == 1 and nn.value[3, 1] == 0.0  # the duplicate reference
    assert nn.ties[0, 1] == 2 and nn.index[0, 1] == 0  # references 0 == 4, both nearest to sample 0: lowest index


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_pruned_metrics_bit_identical_to_full(method):
    s, r = _with_ties()
    d_sr, d_ss, d_rr = _full_union(s, r, method)
    nn = nearest_emd(s, r, method=method)
    assert mmd_cov_from_nearest(nn, len(s)) == mmd_cov(d_sr)
    assert one_nna_from_nearest(nn, len(s)) == one_nna(d_sr, d_ss, d_rr)
    # same-set searches only as far as 1-NNA needs: same numbers, the other-set column unchanged
    lean = nearest_emd(s, r, method=method, exact_same_set=False)
    assert mmd_cov_from_nearest(lean, len(s)) == mmd_cov(d_sr)
    assert one_nna_from_nearest(lean, len(s)) == one_nna(d_sr, d_ss, d_rr)
    own = np.r_[np.zeros(len(s), dtype=int), np.ones(len(r), dtype=int)]  # column of each cloud's own set
    rows = np.arange(len(own))
    assert np.array_equal(lean.value[rows, 1 - own], nn.value[rows, 1 - own])
    assert np.array_equal(lean.index[rows, 1 - own], nn.index[rows, 1 - own])
    pruned = evaluate_generation(s, r, distances=("emd",), emd_method=method, emd_pruning=True)
    full = evaluate_generation(s, r, distances=("emd",), emd_method=method, emd_pruning=False)
    assert pruned == full


def test_pruning_skips_far_pairs_and_queries_subset():
    s, r = _clustered(12, seed=4), _clustered(12, seed=5)
    nn = nearest_emd(s, r, method="exact")
    total = 24 * 23 // 2
    assert nn.n_emd < total // 2  # far clusters are never solved
    part = nearest_emd(s, r, method="exact", queries=[3, 20, 7])
    for k, q in enumerate([3, 20, 7]):
        assert np.array_equal(part.value[k], nn.value[q]) and np.array_equal(part.index[k], nn.index[q])
    # without the nearest-point bound the answers are the same, with more EMDs solved
    plain = nearest_emd(s, r, method="exact", nearest_point_bound=False)
    assert np.array_equal(plain.value, nn.value) and np.array_equal(plain.ties, nn.ties)
    assert plain.n_emd >= nn.n_emd and plain.n_bound == 0


def test_lower_bounds_below_exact_emd():
    g = torch.Generator().manual_seed(6)
    a = torch.rand(5, 30, 3, generator=g).double()
    b = (torch.rand(4, 30, 3, generator=g) * torch.tensor([1.0, 0.3, 2.0]) + 0.2).double()
    lb = emd_lower_bounds(a, b)
    exact = torch.stack([scipy_emd(a[i : i + 1].expand(4, -1, -1), b, reduction="none") for i in range(5)])
    assert bool((lb <= exact).all()) and bool((lb > 0.3 * exact).all())  # valid and not trivial
    # translated copy: the centroid bound is tight (EMD = |t|)
    t = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    lb_t = emd_lower_bounds(a[:1], a[:1] + t)
    assert float(lb_t) == pytest.approx(float(t.norm()), rel=1e-6) and float(lb_t) <= float(t.norm())
    assert torch.all(emd_lower_bounds(a).diagonal() == 0)


def test_nearest_errors():
    with pytest.raises(ValueError, match="equal point counts"):
        nearest_emd(torch.rand(2, 10, 3), torch.rand(2, 12, 3))
    with pytest.raises(ValueError, match="queries"):
        nearest_emd(torch.rand(2, 10, 3), torch.rand(2, 10, 3), queries=[4])


def test_emd_pair_values_abort_bound_is_valid_and_solved_pairs_unchanged():
    from pc3d.ops.emd import emd_pair_values

    g = torch.Generator().manual_seed(7)
    a = torch.rand(4, 64, 3, generator=g)
    b = torch.rand(4, 64, 3, generator=g) * 0.5 + torch.tensor([0.3, 0.0, 0.0])
    ii, jj = np.arange(4), np.arange(4)
    plain = emd_pair_values(a, b, ii, jj, method="approx")
    exact = emd_pair_values(a, b, ii, jj, method="exact")
    assert np.all(plain >= exact - 1e-12) and np.all(plain <= exact * 1.01 + 1e-9)  # the auction's guarantee
    # threshold far above: nothing abandoned, identical values; far below: abandoned with a valid bound
    vals, lbs = emd_pair_values(a, b, ii, jj, method="approx", abort_above=10.0)
    assert np.array_equal(vals, plain) and np.all(lbs == -np.inf)
    limit = exact * 0.5
    vals, lbs = emd_pair_values(a, b, ii, jj, method="approx", abort_above=limit)
    gone = np.isnan(vals)
    assert gone.any()
    assert np.all(lbs[gone] > limit[gone]) and np.all(lbs[gone] <= exact[gone])
    assert np.array_equal(vals[~gone], plain[~gone])
    # a pair's value does not depend on the batch it is computed in
    assert np.array_equal(emd_pair_values(a, b, ii[2:3], jj[2:3], method="approx"), plain[2:3])


@pytest.mark.parametrize("blocks", [[(0, 13)], [(0, 7), (7, 13)], [(0, 1), (1, 6), (6, 12), (12, 13)]])
def test_lean_same_set_search_semantics_any_query_split(blocks):
    """exact_same_set=False: the same-set column compares with the other-set minimum as the exact one does,
    whatever queries are answered together (the shards of a sharded evaluation)."""
    s, r = _with_ties()
    S = len(s)
    exact = nearest_emd(s, r, method="exact")
    parts = [nearest_emd(s, r, method="exact", exact_same_set=False, queries=np.arange(q0, q1)) for q0, q1 in blocks]
    value = np.concatenate([p.value for p in parts])
    ties = np.concatenate([p.ties for p in parts])
    own = (np.arange(len(value)) >= S).astype(int)
    rows = np.arange(len(value))
    cap = exact.value[rows, 1 - own]
    assert np.array_equal(value[rows, 1 - own], cap)
    same, same_exact = value[rows, own], exact.value[rows, own]
    assert np.array_equal(np.sign(same - cap), np.sign(same_exact - cap))
    at_cap = same_exact == cap
    assert np.array_equal(ties[rows, own][at_cap], exact.ties[rows, own][at_cap])
