"""FPDScorer (the FPD callable used as a training hook), built from files by pc3d.models.io.fpd_scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.metrics.fpd import (
    FPDScorer,
    compute_features,
    feature_statistics,
    fpd,
    save_statistics,
)
from pc3d.models.io import fpd_scorer, load_classifier
from pc3d.nn.pointnet_cls import PointNetClassifier

N = 64


def _blobs(n, pts=N, seed=0, scale=0.4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, pts, 3, generator=g) * scale


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A random k=4 classifier (plain state_dict) and statistics of 12 reference blobs at N points."""
    d = tmp_path_factory.mktemp("fpd")
    torch.manual_seed(0)
    net = PointNetClassifier(k=4).eval()
    ckpt = d / "cls.pth"
    torch.save(net.state_dict(), ckpt)
    refs = _blobs(12, seed=1)
    stats = feature_statistics(compute_features(load_classifier(ckpt), refs), meta={"n_points": N})
    path = save_statistics(d / "stats.npz", stats)
    return ckpt, path, refs


def test_scorer_equals_fpd_function(files):
    ckpt, stats, refs = files
    samples = _blobs(10, seed=2)
    scorer = fpd_scorer(ckpt, stats)
    want = fpd(samples, stats, load_classifier(ckpt))
    assert scorer(samples) == pytest.approx(want, rel=1e-12)
    assert scorer(samples) == scorer(samples.numpy())  # arrays work, deterministic
    # FPD of the reference set itself against its own statistics is ~0; noise makes it grow
    assert scorer(refs) == pytest.approx(0.0, abs=1e-6)
    assert scorer(refs + 0.05 * torch.randn_like(refs)) < scorer(refs + 0.3 * torch.randn_like(refs))
    assert "FPDScorer(" in repr(scorer) and "n_ref=12" in repr(scorer)


def test_n_points_subsamples_with_fixed_rows_and_checks_the_statistics(files):
    ckpt, stats, _ = files
    big = _blobs(8, pts=3 * N, seed=3)
    scorer = fpd_scorer(ckpt, stats, n_points=N, seed=5)
    rows = torch.randperm(3 * N, generator=torch.Generator().manual_seed(5))[:N]
    assert scorer(big) == pytest.approx(fpd_scorer(ckpt, stats)(big[:, rows]), rel=1e-12)
    with pytest.raises(ValueError, match="fewer than n_points"):
        scorer(_blobs(4, pts=N // 2))
    with pytest.raises(ValueError, match="64-point"):  # statistics metadata: 64 points
        fpd_scorer(ckpt, stats)(big)
    with pytest.warns(UserWarning, match="64-point"):
        assert np.isfinite(fpd_scorer(ckpt, stats, check_n_points=False)(big))


def test_global_normalize_applies_the_statistics(files):
    ckpt, stats, _ = files
    samples = _blobs(6, seed=4)
    gs = {"mean": [1.0, -2.0, 0.5], "std": 3.0}
    shifted = samples * 3.0 + torch.tensor([1.0, -2.0, 0.5])
    got = fpd_scorer(ckpt, stats, normalize="global", global_stats=gs)(shifted)
    assert got == pytest.approx(fpd_scorer(ckpt, stats)(samples), rel=1e-6)


def test_bad_arguments_name_the_field(files, tmp_path):
    ckpt, stats, _ = files
    with pytest.raises(FileNotFoundError, match="classifier_ckpt"):
        fpd_scorer(tmp_path / "missing.ckpt", stats)
    with pytest.raises(FileNotFoundError, match="stats"):
        fpd_scorer(ckpt, tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="normalize"):
        fpd_scorer(ckpt, stats, normalize="sphere")
    with pytest.raises(ValueError, match="global_stats"):
        fpd_scorer(ckpt, stats, normalize="global")
    with pytest.raises(ValueError, match="n_points"):
        fpd_scorer(ckpt, stats, n_points=0)
    with pytest.raises(ValueError, match=r"\(M, N, 3\)"):
        fpd_scorer(ckpt, stats)(torch.zeros(1, N, 3))
    other = PointNetClassifier(k=6).eval()
    torch.save(other.state_dict(), tmp_path / "k6.pth")
    with pytest.raises(ValueError, match="not from this classifier"):
        fpd_scorer(tmp_path / "k6.pth", stats)(_blobs(3))


def test_frame_mismatch_with_the_statistics_metadata_warns(files, tmp_path):
    ckpt, stats_path, refs = files
    from pc3d.metrics.fpd import load_statistics

    st = load_statistics(stats_path)
    path = save_statistics(tmp_path / "sphere.npz", st._replace(meta={"n_points": N, "normalize_data": "unit_sphere"}))
    with pytest.warns(UserWarning, match="unit_sphere"):
        fpd_scorer(ckpt, path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fpd_scorer(ckpt, path, normalize="unit_sphere")  # consistent: no warning


def test_scorer_takes_the_network_not_a_file(files):
    """pc3d.metrics never reads checkpoints: FPDScorer takes the module, fpd_scorer reads the file."""
    ckpt, stats, refs = files
    samples = _blobs(10, seed=2)
    direct = FPDScorer(load_classifier(ckpt), stats)
    assert direct(samples) == fpd_scorer(ckpt, stats)(samples)
    assert "classifier_ckpt=None" in repr(direct)
    with pytest.raises(TypeError, match="fpd_scorer"):
        FPDScorer(ckpt, stats)

