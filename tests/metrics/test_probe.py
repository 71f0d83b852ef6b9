import pytest
import torch

from pc3d.metrics import linear_probe


def _blobs(n_per, centers, scale, seed):
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for c, mu in enumerate(centers):
        xs.append(mu + scale * torch.randn(n_per, mu.shape[0], generator=g))
        ys.append(torch.full((n_per,), c))
    return torch.cat(xs), torch.cat(ys)


def test_separable_blobs_are_classified_perfectly():
    centers = torch.eye(5) * 10
    xtr, ytr = _blobs(30, centers, 0.5, 0)
    xte, yte = _blobs(10, centers, 0.5, 1)
    r = linear_probe(xtr, ytr, xte, yte)
    assert r.accuracy == 1.0 and r.train_accuracy == 1.0
    assert set(r.per_class) == set(range(5)) and all(v == 1.0 for v in r.per_class.values())


def test_random_labels_give_chance_level():
    g = torch.Generator().manual_seed(0)
    xtr, xte = torch.randn(400, 4, generator=g), torch.randn(2000, 4, generator=g)
    ytr, yte = torch.randint(0, 4, (400,), generator=g), torch.randint(0, 4, (2000,), generator=g)
    r = linear_probe(xtr, ytr, xte, yte)
    assert 0.18 < r.accuracy < 0.33


def test_known_linear_rule_is_recovered_despite_feature_scales():
    # label = sign of x0 with a huge nuisance feature: standardisation must handle the scale
    g = torch.Generator().manual_seed(3)
    x = torch.randn(600, 2, generator=g)
    x[:, 1] *= 1e4
    y = (x[:, 0] > 0).long()
    r = linear_probe(x[:400], y[:400], x[400:], y[400:])
    assert r.accuracy > 0.97


def test_bad_shapes():
    with pytest.raises(ValueError, match="features"):
        linear_probe(torch.randn(5, 3), torch.zeros(4, dtype=torch.long), torch.randn(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="feature sizes differ"):
        linear_probe(torch.randn(5, 3), torch.zeros(5, dtype=torch.long), torch.randn(2, 4),
                     torch.zeros(2, dtype=torch.long))


def test_works_under_inference_mode():
    """Lightning's test loop runs under inference_mode; the probe must still fit."""
    centers = torch.eye(3) * 10
    with torch.inference_mode():
        xtr, ytr = _blobs(10, centers, 0.5, 0)
        xte, yte = _blobs(5, centers, 0.5, 1)
        r = linear_probe(xtr, ytr, xte, yte)
    assert r.accuracy == 1.0
