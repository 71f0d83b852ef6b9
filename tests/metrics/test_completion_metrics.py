"""Unidirectional Chamfer / Hausdorff (partial -> completion) against float64 brute force."""

from __future__ import annotations

import pytest
import torch

from pc3d.metrics.reconstruction import reconstruction_metrics, unidirectional_chamfer, unidirectional_hausdorff
from pc3d.ops import chamfer_distance


def _brute(p: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(B, P) squared distance of every partial point to its nearest completion point, all pairs in float64."""
    d = (p.double()[:, :, None, :] - c.double()[:, None, :, :]).square().sum(-1)  # (B, P, N)
    return d.min(-1).values


def _clouds(seed: int, B: int = 3, P: int = 37, N: int = 53) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, P, 3, generator=g) - 0.5, torch.rand(B, N, 3, generator=g) - 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_brute_force(seed):
    p, c = _clouds(seed)
    ref = _brute(p, c)
    torch.testing.assert_close(unidirectional_chamfer(p, c), ref.mean(1), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(unidirectional_hausdorff(p, c), ref.amax(1).sqrt(), rtol=1e-12, atol=1e-12)
    assert unidirectional_chamfer(p, c).dtype == torch.float64


def test_is_the_partial_half_of_pc3d_chamfer():
    p, c = _clouds(3)
    parts = chamfer_distance(p.double(), c.double(), squared=True, reduction="none", return_parts=True)
    torch.testing.assert_close(unidirectional_chamfer(p, c), parts.x_to_y, rtol=1e-12, atol=1e-12)
    cd = reconstruction_metrics(c.double(), p.double(), metrics=("cd",))["cd"]
    assert bool((unidirectional_chamfer(p, c) < cd).all())


def test_hand_checkable_cases():
    # a completion that contains the partial: both 0, whatever else it adds (the direction matters)
    p = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]])
    c = torch.cat([p, torch.tensor([[[5.0, 5.0, 5.0]]])], 1)
    assert unidirectional_chamfer(p, c).item() == 0.0
    assert unidirectional_hausdorff(p, c).item() == 0.0
    assert unidirectional_hausdorff(c, p).item() == pytest.approx(66 ** 0.5)  # (5, 5, 5) to (1, 0, 0)
    # a completion shifted by (0, 0.3, 0.4): every point 0.5 away -> UCD 0.25, UHD 0.5
    c = p + torch.tensor([0.0, 0.3, 0.4])
    assert unidirectional_chamfer(p, c).item() == pytest.approx(0.25)
    assert unidirectional_hausdorff(p, c).item() == pytest.approx(0.5)
    # one stray partial point 2 away from a one-point completion: UHD = max, UCD = mean of squares
    p = torch.tensor([[[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]])
    c = torch.zeros(1, 1, 3)
    assert unidirectional_hausdorff(p, c).item() == pytest.approx(2.0)
    assert unidirectional_chamfer(p, c).item() == pytest.approx(2.0)


@pytest.mark.parametrize("fn", [unidirectional_chamfer, unidirectional_hausdorff])
def test_bad_input_raises_value_error(fn):
    good = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match="partial"):
        fn(torch.zeros(4, 3), good)
    with pytest.raises(ValueError, match="completion"):
        fn(good, torch.zeros(2, 4, 2))
    with pytest.raises(ValueError, match="completion"):
        fn(good, torch.zeros(2, 0, 3))
    with pytest.raises(ValueError, match="same B"):
        fn(good, torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match="finite"):
        fn(torch.full((2, 4, 3), float("nan")), good)
    with pytest.raises(ValueError, match="partial"):
        fn([[0.0, 0.0, 0.0]], good)
