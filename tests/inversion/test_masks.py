"""pc3d.inversion.masks against brute-force Python loops (float64), with ragged partial clouds."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.inversion.masks import distance_mask, knn_mask, make_mask, masked_chamfer, pad_clouds, voxel_mask


def _clouds(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    gen = torch.rand(3, 60, 3, generator=g)
    partial = [torch.rand(n, 3, generator=g) * 0.6 for n in (5, 17, 1)]
    return gen, partial


def _d(a, b) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b)))


def brute_knn(gen, partial, k):
    out = torch.zeros(gen.shape[:2], dtype=torch.bool)
    for b, part in enumerate(partial):
        for p in part:
            ds = sorted((_d(p, q), n) for n, q in enumerate(gen[b]))
            for _, n in ds[:k]:
                out[b, n] = True
    return out


def brute_distance(gen, partial, tau):
    out = torch.zeros(gen.shape[:2], dtype=torch.bool)
    for b, part in enumerate(partial):
        for n, q in enumerate(gen[b]):
            out[b, n] = min(_d(p, q) for p in part) <= tau
    return out


def brute_voxel(gen, partial, s):
    out = torch.zeros(gen.shape[:2], dtype=torch.bool)
    for b, part in enumerate(partial):
        occupied = {tuple(math.floor(float(c) / s) for c in p) for p in part}
        for n, q in enumerate(gen[b]):
            out[b, n] = tuple(math.floor(float(c) / s) for c in q) in occupied
    return out


def brute_masked_chamfer(gen, partial, mask):
    out = []
    for b, part in enumerate(partial):
        kept = [q for n, q in enumerate(gen[b]) if mask[b, n]] or list(gen[b])
        a = sum(min(_d(p, q) ** 2 for q in kept) for p in part) / len(part)
        c = sum(min(_d(p, q) ** 2 for p in part) for q in kept) / len(kept)
        out.append(a + c)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("backend", ["torch", "kdtree"])
@pytest.mark.parametrize("k", [1, 3, 100])
def test_knn_mask_matches_brute_force(backend, k):
    gen, partial = _clouds()
    got = knn_mask(gen, partial, k, backend=backend)
    assert got.shape == (3, 60) and got.dtype == torch.bool
    assert torch.equal(got, brute_knn(gen, partial, k))
    if k == 1:
        assert int(got[2].sum()) == 1  # one partial point, one neighbour


@pytest.mark.parametrize("backend", ["torch", "kdtree"])
@pytest.mark.parametrize("tau", [0.05, 0.2, 0.5])
def test_distance_mask_matches_brute_force(backend, tau):
    gen, partial = _clouds(1)
    got = distance_mask(gen, partial, tau, backend=backend)
    want = brute_distance(gen, partial, tau)
    assert torch.equal(got, want)
    assert 0 < int(want.sum()) < want.numel()  # the case is not trivial


@pytest.mark.parametrize("size", [0.1, 0.25, 1.0])
def test_voxel_mask_matches_brute_force(size):
    gen, partial = _clouds(2)
    gen = gen * 2 - 0.5  # negative coordinates too (floor, not truncation)
    noise = 0.03 * torch.randn(3, 20, 3, generator=torch.Generator().manual_seed(5))
    near = torch.stack([p[torch.arange(20) % len(p)] for p in partial]) + noise
    gen = torch.cat([gen, near], 1)  # some points near the partial clouds: some occupied voxels
    got = voxel_mask(gen, partial, size)
    want = brute_voxel(gen, partial, size)
    assert torch.equal(got, want)
    if size < 1.0:  # not trivial
        assert 0 < int(want.sum()) < want.numel()


def test_padded_input_equals_list_input():
    gen, partial = _clouds(3)
    padded, lens = pad_clouds(partial)
    assert padded.shape == (3, 17, 3) and lens.tolist() == [5, 17, 1]
    junk = padded.clone()
    junk[0, 5:] = 1e6  # padding must be ignored whatever it holds
    for fn, arg in ((knn_mask, 2), (distance_mask, 0.2), (voxel_mask, 0.25)):
        assert torch.equal(fn(gen, junk, arg, lens), fn(gen, partial, arg))


def test_masked_chamfer_matches_brute_force_and_has_gradients():
    gen, partial = _clouds(4)
    mask = knn_mask(gen, partial, 2)
    mask[1] = False  # an empty mask falls back to the whole cloud
    g = gen.clone().requires_grad_(True)
    got = masked_chamfer(g, partial, mask)
    want = brute_masked_chamfer(gen, partial, mask)
    assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-7)
    got.sum().backward()
    assert g.grad is not None and bool(g.grad[0][~mask[0]].eq(0).all())  # dropped points get no gradient
    full = masked_chamfer(gen, partial, None)
    assert torch.allclose(full.double(), brute_masked_chamfer(gen, partial, torch.ones(3, 60, dtype=torch.bool)),
                          rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("bad, match", [
    ([torch.zeros(0, 3)], r"partial\[0\]: the cloud is empty"),
    ([torch.tensor([[0.0, float("nan"), 0.0]])], r"partial\[0\]: NaN"),
    ([torch.zeros(4, 2)], r"partial\[0\]: expected a cloud of shape \(P, 3\)"),
    (torch.zeros(2, 4), r"partial: expected clouds of shape \(B, P, 3\)"),
    ([], "partial: no clouds"),
])
def test_bad_partial_inputs(bad, match):
    gen = torch.rand(1, 10, 3)
    with pytest.raises(ValueError, match=match):
        knn_mask(gen, bad, 2)


def test_bad_mask_arguments():
    gen, partial = _clouds()
    with pytest.raises(ValueError, match="mask.kind must be one of knn, distance, voxel"):
        make_mask("sphere", gen, partial, k=2)
    with pytest.raises(ValueError, match="mask.k must be an int >= 1"):
        knn_mask(gen, partial, 0)
    with pytest.raises(ValueError, match="mask.tau must be a number > 0"):
        distance_mask(gen, partial, -1.0)
    with pytest.raises(ValueError, match="generated: 2 clouds but 3 partial clouds"):
        voxel_mask(gen[:2], partial, 0.1)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 17\]"):
        knn_mask(gen, pad_clouds(partial)[0], 2, torch.tensor([5, 0, 1]))
