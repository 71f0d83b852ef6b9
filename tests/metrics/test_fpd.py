"""FPD: Frechet distance vs scipy sqrtm, statistics files, classifier layout and features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.metrics.fpd import (
    FPD,
    FeatureStats,
    compute_features,
    feature_statistics,
    fpd,
    frechet_distance,
    frechet_distance_to_features,
    load_statistics,
    save_statistics,
)
from pc3d.models.io import load_classifier
from pc3d.nn import PointNetClassifier


def _spd(d, rng):
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


def _scipy_frechet(mu1, s1, mu2, s2):
    from scipy import linalg

    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("d", [1, 5, 40])
def test_frechet_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    for _ in range(3):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _spd(d, rng), _spd(d, rng)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-8)


def test_frechet_of_identical_gaussians_is_zero_even_when_singular():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(10, 30))  # rank-deficient covariance (10 samples, 30 dims)
    s = feature_statistics(f)
    assert frechet_distance(s.mu, s.sigma, s.mu, s.sigma) == pytest.approx(0.0, abs=1e-8)
    # a pure mean shift adds ||dmu||^2
    assert frechet_distance(s.mu, s.sigma, s.mu + 1.0, s.sigma) == pytest.approx(30.0, rel=1e-6)


@pytest.mark.parametrize("m", [5, 30, 60])
def test_frechet_from_few_features_equals_full_form(m):
    rng = np.random.default_rng(m)
    f = rng.normal(size=(m, 40)) * rng.uniform(0.5, 2, size=40)
    mu2, s2 = rng.normal(size=40), _spd(40, rng)
    s = feature_statistics(f)
    assert frechet_distance_to_features(f, mu2, s2) == pytest.approx(frechet_distance(s.mu, s.sigma, mu2, s2), rel=1e-6)


def test_frechet_bad_shapes():
    with pytest.raises(ValueError, match=r"\(D,\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_statistics_roundtrip_is_atomic(tmp_path):
    rng = np.random.default_rng(1)
    s = feature_statistics(rng.normal(size=(20, 6)), meta={"split": "train", "categories": ["a"]})
    path = save_statistics(tmp_path / "stats" / "ref.npz", s)
    assert sorted(p.name for p in path.parent.iterdir()) == ["ref.npz"]  # no temporary left
    t = load_statistics(path)
    np.testing.assert_array_equal(t.mu, s.mu)
    np.testing.assert_array_equal(t.sigma, s.sigma)
    assert t.n == 20 and t.meta == {"split": "train", "categories": ["a"]}
    np.savez(tmp_path / "other.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="not an FPD statistics file"):
        load_statistics(tmp_path / "other.npz")


# ----------------------------------------------------------------------------- classifier layout


def _reference_layout(k=16):
    """Key -> shape of the common PointNetCls(k) state_dict, from REFERENCE.md's description."""
    table = {}

    def conv(name, i, o):
        table[f"{name}.weight"] = (o, i, 1)
        table[f"{name}.bias"] = (o,)

    def fc(name, i, o):
        table[f"{name}.weight"] = (o, i)
        table[f"{name}.bias"] = (o,)

    def bn(name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            table[f"{name}.{p}"] = (c,)
        table[f"{name}.num_batches_tracked"] = ()

    # input transform net on 3-D points
    conv("feat.stn.conv1", 3, 64)
    conv("feat.stn.conv2", 64, 128)
    conv("feat.stn.conv3", 128, 1024)
    fc("feat.stn.fc1", 1024, 512)
    fc("feat.stn.fc2", 512, 256)
    fc("feat.stn.fc3", 256, 9)
    for i, c in enumerate([64, 128, 1024, 512, 256], start=1):
        bn(f"feat.stn.bn{i}", c)
    # shared MLP 3 -> 64 -> 128 -> 1024 with BatchNorm
    conv("feat.conv1", 3, 64)
    conv("feat.conv2", 64, 128)
    conv("feat.conv3", 128, 1024)
    bn("feat.bn1", 64)
    bn("feat.bn2", 128)
    bn("feat.bn3", 1024)
    # head 1024 -> 512 -> 256 -> k with BatchNorm
    fc("fc1", 1024, 512)
    fc("fc2", 512, 256)
    fc("fc3", 256, k)
    bn("bn1", 512)
    bn("bn2", 256)
    return table


def _synthetic_state(table, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in table.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        else:
            out[key] = torch.randn(shape, generator=g) * 0.05
    return out


def test_state_dict_layout_matches_reference_exactly():
    table = _reference_layout(16)
    net = PointNetClassifier(k=16, feature_transform=False)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == table
    state = _synthetic_state(table)
    net.load_state_dict(state, strict=True)
    for k, v in net.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_feature_transform_variant_adds_fstn_only():
    net = PointNetClassifier(k=10, feature_transform=True)
    extra = set(net.state_dict()) - set(_reference_layout(10))
    assert extra and all(k.startswith("feat.fstn.") for k in extra)
    assert net.state_dict()["feat.fstn.fc3.weight"].shape == (64 * 64, 256)
    net.eval()
    assert net(torch.rand(2, 50, 3)).shape == (2, 10)


def test_features_are_the_tree_gan_concatenation():
    torch.manual_seed(0)
    net = PointNetClassifier(k=16).eval()
    x = torch.rand(3, 64, 3)
    f = net.features(x)
    out = net.forward_all(x)
    assert f.shape == (3, 1808) == (3, net.feature_dim)
    torch.testing.assert_close(f[:, :1024], out["global"])
    torch.testing.assert_close(f[:, 1024:1536], out["fc1"])
    torch.testing.assert_close(f[:, 1536:1792], out["fc2"])
    torch.testing.assert_close(f[:, 1792:], out["logits"])
    assert (f[:, :1024] < 0).any()  # the global feature is taken before any ReLU
    assert (f[:, 1024:1792] >= 0).all()
    # permutation invariance and (B, N, 3) input
    torch.testing.assert_close(net.features(x[:, torch.randperm(64)]), f, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        net(torch.rand(2, 3, 64))


def test_load_classifier_from_plain_state_dict(tmp_path):
    state = _synthetic_state(_reference_layout(16), seed=3)
    torch.save(state, tmp_path / "cls_model.pth")
    net = load_classifier(tmp_path / "cls_model.pth")
    assert isinstance(net, PointNetClassifier) and not net.training and net.k == 16
    torch.testing.assert_close(net.state_dict()["fc3.weight"], state["fc3.weight"])


# ----------------------------------------------------------------------------- FPD behaviour


def _blobs(n, pts=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, pts, 3, generator=g)
    return base / base.norm(dim=-1, keepdim=True) * (0.5 + 0.5 * torch.rand(n, 1, 1, generator=g))


def test_fpd_self_is_zero_and_grows_with_noise():
    torch.manual_seed(0)
    net = PointNetClassifier(k=16).eval()
    x = _blobs(24, seed=1)
    ref = feature_statistics(compute_features(net, x, batch_size=10))
    assert fpd(x, ref, net) == pytest.approx(0.0, abs=1e-6)
    g = torch.Generator().manual_seed(2)
    noise = torch.randn(x.shape, generator=g)
    values = [fpd(x + s * noise, ref, net) for s in (0.03, 0.3)]
    assert 0 < values[0] < values[1], values


class _TinyFeatures(torch.nn.Module):
    """A cheap stand-in with the ``features`` contract (8-d), to test the plumbing quickly."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 8)

    def features(self, points):
        return torch.cat([self.lin(points).amax(1)], dim=1)


def test_fpd_metric_accumulates_like_the_function(tmp_path):
    torch.manual_seed(0)
    net = _TinyFeatures()
    ref_clouds, samples = _blobs(12, seed=3), _blobs(10, seed=4)
    stats = feature_statistics(compute_features(net, ref_clouds))
    path = save_statistics(tmp_path / "ref.npz", stats)
    m = FPD(net, path)
    m.update(samples[:6])
    m.update(samples[6:])
    assert float(m.compute()) == pytest.approx(fpd(samples, stats, net), rel=1e-5)
    assert fpd(samples, ref_clouds, net) == pytest.approx(fpd(samples, path, net), rel=1e-9)
    assert isinstance(stats, FeatureStats) and stats.mu.shape == (8,)


def test_classifier_batchnorm_recalibration():
    from pc3d.models import PointCloudClassifier

    torch.manual_seed(0)
    model = PointCloudClassifier(PointNetClassifier(k=4), bn_recalibration_batches=2)
    bn = model.net.bn1
    bn.running_mean.fill_(123.0)
    loader = [{"points": torch.rand(4, 32, 3)} for _ in range(3)]
    assert model.recalibrate_batchnorm(loader, 2) == 2
    assert int(bn.num_batches_tracked) == 2 and bn.momentum == 0.1
    assert bn.running_mean.abs().max() < 100
