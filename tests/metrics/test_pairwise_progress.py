"""Progress of the CPU Chamfer matrices (numba and KD-tree): reported during the computation, in
pairs, monotone, ending once at ``done == total``, and without changing a single bit of the matrix."""

from __future__ import annotations

import pytest
import torch

import pc3d.metrics._chamfer_pairs as chamfer_pairs
import pc3d.metrics.pairwise as pairwise
from pc3d.metrics.generative import evaluate_generation
from pc3d.metrics.pairwise import distance_matrix

BACKENDS = ("numba", "kdtree")


@pytest.fixture
def small_chunks(monkeypatch):
    """Report as often as the back-ends can (numba: every job of 4 pairs) so small sets need many reports."""
    monkeypatch.setattr(pairwise, "_PROGRESS_EVALS", 1)
    monkeypatch.setattr(pairwise, "_PROGRESS_MIN_PAIRS", 1)
    monkeypatch.setattr(chamfer_pairs, "_PAIRS_PER_JOB", 4)


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    old = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(old)


def _clouds(n_sets: int, n_pts: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n_sets, n_pts, 3, generator=g, dtype=torch.float64) - 0.5).to(dtype)


def _check_calls(calls: list[tuple[int, int]], total: int) -> None:
    done = [d for d, _ in calls]
    assert len(calls) > 1, calls
    assert all(t == total for _, t in calls), calls
    assert done == sorted(done) and done[0] >= 0, calls
    assert done[-1] == total and done.count(total) == 1, calls


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("symmetric", [True, False], ids=["sym", "asym"])
def test_progress_is_reported_in_pairs_during_the_computation(small_chunks, threads, backend, symmetric):
    a, b = _clouds(11, 24, 0), _clouds(7, 17, 1)
    calls: list[tuple[int, int]] = []
    distance_matrix(a, None if symmetric else b, backend=backend, progress=lambda d, t: calls.append((d, t)))
    _check_calls(calls, 11 * 10 // 2 if symmetric else 11 * 7)


def test_numba_reports_at_most_every_progress_min_pairs(monkeypatch):
    monkeypatch.setattr(pairwise, "_PROGRESS_EVALS", 1)
    monkeypatch.setattr(pairwise, "_PROGRESS_MIN_PAIRS", 20)
    monkeypatch.setattr(chamfer_pairs, "_PAIRS_PER_JOB", 4)
    calls: list[tuple[int, int]] = []
    distance_matrix(_clouds(16, 8, 2), backend="numba", progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert done == [20, 40, 60, 80, 100, 120]  # 120 pairs; reports at job ends past each multiple of 20
    _check_calls(calls, 120)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n_sets,total", [(1, 0), (2, 1)])
def test_tiny_symmetric_sets_end_with_one_final_call(backend, n_sets, total):
    calls: list[tuple[int, int]] = []
    distance_matrix(_clouds(n_sets, 5, 3), backend=backend, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(total, total)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_matrices_are_bit_identical_with_and_without_progress(small_chunks, threads, backend, dtype):
    a, b = _clouds(13, 40, 4, dtype), _clouds(6, 33, 5, dtype)
    for other in (None, b):
        plain = distance_matrix(a, other, backend=backend)
        calls: list[tuple[int, int]] = []
        watched = distance_matrix(a, other, backend=backend, progress=lambda d, t, calls=calls: calls.append((d, t)))
        assert len(calls) > 1
        assert plain.dtype == watched.dtype == torch.float64
        assert torch.equal(plain, watched)


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_generation_reports_labelled_progress_mid_computation(small_chunks, backend):
    s, r = _clouds(9, 20, 6), _clouds(8, 20, 7)
    calls: list[tuple[str, int, int]] = []
    out = evaluate_generation(s, r, backend=backend, progress=lambda *c: calls.append(c))
    assert out == evaluate_generation(s, r, backend=backend)
    expected = {"cd samples x refs": 9 * 8, "cd samples x samples": 9 * 8 // 2, "cd refs x refs": 8 * 7 // 2}
    assert [c[0] for c in calls] == sorted((c[0] for c in calls), key=list(expected).index)  # one matrix after another
    for label, total in expected.items():
        mine = [(d, t) for lab, d, t in calls if lab == label]
        assert any(0 < d < total for d, _ in mine), (label, mine)  # reported before the matrix is complete
        _check_calls(mine, total)
