"""Per-shape CD / EMD / F-score and per-category means on hand-checkable cases."""

from __future__ import annotations

import pytest
import torch

from pc3d.metrics.reconstruction import per_category_means, reconstruction_metrics
from tests.metrics.conftest import scipy_emd


def test_identical_clouds():
    x = torch.rand(3, 50, 3)
    m = reconstruction_metrics(x, x.clone(), metrics=("cd", "fscore"))
    assert torch.all(m["cd"] == 0) and torch.all(m["fscore"] == 1)
    assert torch.all(m["precision"] == 1) and torch.all(m["recall"] == 1)


def test_single_point_hand_values():
    target = torch.zeros(2, 1, 3, dtype=torch.float64)
    pred = torch.tensor([[[0.005, 0, 0]], [[0.02, 0, 0]]], dtype=torch.float64)
    m = reconstruction_metrics(pred, target, tau=0.01)
    torch.testing.assert_close(m["cd"], torch.tensor([2 * 0.005**2, 2 * 0.02**2], dtype=torch.float64))
    assert m["fscore"].tolist() == [1.0, 0.0]  # tau is on the euclidean distance, not its square


def test_partial_precision_and_recall():
    target = torch.tensor([[[0.0, 0, 0], [1.0, 0, 0]]])
    pred = torch.tensor([[[0.0, 0, 0], [0.0, 0.001, 0], [0.0, 0.002, 0], [5.0, 0, 0]]])
    m = reconstruction_metrics(pred, target, tau=0.01, metrics=("fscore",))
    p, r = 3 / 4, 1 / 2
    assert m["precision"].item() == pytest.approx(p) and m["recall"].item() == pytest.approx(r)
    assert m["fscore"].item() == pytest.approx(2 * p * r / (p + r))
    assert set(m) == {"fscore", "precision", "recall"}


def test_normalization_uses_the_target_frame():
    target = torch.rand(2, 40, 3, dtype=torch.float64)
    pred = target + 0.01
    a = reconstruction_metrics(pred, target, normalize="unit_bbox")["cd"]
    b = reconstruction_metrics(pred * 10 + 3, target * 10 + 3, normalize="unit_bbox")["cd"]
    torch.testing.assert_close(a, b)
    # a prediction at the wrong scale stays wrong after normalization
    assert torch.all(reconstruction_metrics(pred * 2, target, normalize="unit_sphere")["cd"] > 0.01)


def test_emd(emd_op):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 20, 3, generator=g, dtype=torch.float64)
    y = torch.rand(3, 20, 3, generator=g, dtype=torch.float64)
    m = reconstruction_metrics(x, y, metrics=("emd",))
    torch.testing.assert_close(m["emd"], scipy_emd(x, y, reduction="none"), rtol=1e-6, atol=1e-8)
    perm = x[:, torch.randperm(20)]
    assert torch.allclose(reconstruction_metrics(perm, x, metrics=("emd",))["emd"], torch.zeros(3, dtype=torch.float64),
                          atol=1e-7)


def test_per_category_means():
    values = {"cd": torch.tensor([1.0, 2.0, 3.0, 5.0]), "fscore": torch.tensor([0.0, 1.0, 1.0, 1.0])}
    table = per_category_means(values, torch.tensor([1, 0, 1, 1]), names=["chair", "table"])
    assert list(table) == ["chair", "table", "all"]
    assert table["chair"] == {"cd": 2.0, "fscore": 1.0, "count": 1}
    assert table["table"] == {"cd": 3.0, "fscore": pytest.approx(2 / 3), "count": 3}
    assert table["all"]["cd"] == 2.75 and table["all"]["count"] == 4
    with pytest.raises(ValueError, match="categories"):
        per_category_means(values, [0, 1])


def test_bad_arguments():
    x = torch.rand(1, 5, 3)
    with pytest.raises(ValueError, match="metrics"):
        reconstruction_metrics(x, x, metrics=("l1",))
    with pytest.raises(ValueError, match="tau"):
        reconstruction_metrics(x, x, tau=0)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        reconstruction_metrics(x[0], x)
