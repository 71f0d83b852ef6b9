"""TreeGAN + FPD (pc3d.callbacks.GenerationMetrics): the scorer built from config, val/fpd logged, and the
frame it is computed in."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from pc3d.callbacks import GenerationMetrics
from pc3d.metrics.fpd import FPDScorer, compute_features, feature_statistics, save_statistics
from pc3d.models import TreeGAN
from pc3d.models.io import fpd_scorer, load_classifier
from pc3d.nn.pointnet_cls import PointNetClassifier
from tests.models.test_treegan import N  # the same tiny nets as the tree-GAN tests
from tests.models.test_treegan import tiny_gan as _tiny_gan


def tiny_gan(**kw) -> TreeGAN:
    kw.setdefault("n_fixed_samples", 2)
    kw.setdefault("n_critic", 1)
    return _tiny_gan(**kw)


def _items(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    return [{"points": torch.randn(N, 3, generator=g) * 0.3, "category": 0} for _ in range(n)]


class _DM(L.LightningDataModule):
    """Just enough of PointCloudDataModule: loaders plus ``normalize`` / ``global_stats``."""

    def __init__(self, normalize: str = "none", global_stats: dict | None = None) -> None:
        super().__init__()
        self.normalize, self.global_stats = normalize, global_stats

    def train_dataloader(self):
        return DataLoader(_items(4, 0), batch_size=4)

    def val_dataloader(self):
        return DataLoader(_items(8, 1), batch_size=4)


def _metrics(**kw) -> GenerationMetrics:
    """The sample-metric callback with tiny_gan's evaluation settings."""
    return GenerationMetrics(max_refs=6, seed=1234, batch_size=100, **kw)


def _trainer(*callbacks) -> L.Trainer:
    return L.Trainer(
        callbacks=list(callbacks),
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        max_epochs=1,
        limit_train_batches=1,
    )


@pytest.fixture(scope="module")
def fpd_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("treegan_fpd")
    torch.manual_seed(0)
    ckpt = d / "cls.pth"
    torch.save(PointNetClassifier(k=4).eval().state_dict(), ckpt)
    refs = torch.cat([b["points"][None] for b in _items(10, 7)])
    stats = feature_statistics(compute_features(load_classifier(ckpt), refs), meta={"n_points": N})
    return ckpt, save_statistics(d / "stats.npz", stats)


def test_fpd_mapping_builds_a_scorer_and_val_fpd_is_logged(fpd_files):
    ckpt, stats = fpd_files
    torch.manual_seed(0)
    model = tiny_gan()
    cb = _metrics(fpd={"classifier_ckpt_path": str(ckpt), "stats": str(stats), "n_points": N})
    assert cb.fpd is None  # no file read before setup
    t = _trainer(cb)
    t.fit(model, datamodule=_DM())
    assert isinstance(cb.fpd, FPDScorer)
    m = t.callback_metrics
    assert {"val/fpd", "val/mmd_cd", "val/cov_cd", "val/1nna_cd", "val/wasserstein"} <= set(m)
    samples = model.sample(6, seed=model.eval_seed)  # what validation scored (6 refs -> 6 samples)
    want = fpd_scorer(ckpt, stats)(samples)
    assert float(m["val/fpd"]) == pytest.approx(want, rel=1e-5) and want > 0


def test_fpd_gets_samples_in_the_data_frame_with_global_normalization():
    seen = []

    def fpd(clouds):
        seen.append(clouds.clone())
        return 0.0

    stats = {"mean": [1.0, 2.0, -3.0], "std": 2.5}
    torch.manual_seed(0)
    model = tiny_gan()
    _trainer(_metrics(fpd=fpd)).fit(model, datamodule=_DM("global", stats))
    samples = model.sample(6, seed=model.eval_seed)  # generator output = normalized units
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], samples * 2.5 + torch.tensor([1.0, 2.0, -3.0]))
    # without a global normalization the samples are passed as they are
    seen.clear()
    model2 = tiny_gan()
    _trainer(_metrics(fpd=fpd)).fit(model2, datamodule=_DM("unit_sphere"))
    torch.testing.assert_close(seen[0], model2.sample(6, seed=model2.eval_seed))


def test_bad_fpd_config_raises(fpd_files):
    with pytest.raises(ValueError, match="classifier_ckpt_path"):
        _metrics(fpd={"stats": "x.npz"})
    with pytest.raises(ValueError, match="classifier_ckpt_path"):  # the old key name says what it is now
        _metrics(fpd={"classifier_ckpt": "x.ckpt", "stats": "x.npz"})
    with pytest.raises(TypeError, match="fpd"):
        _metrics(fpd=3)
    cb = _metrics(fpd={"classifier_ckpt_path": "missing.ckpt", "stats": "missing.npz"})  # built lazily ...
    with pytest.raises(FileNotFoundError, match="classifier_ckpt"):
        cb.setup(None, tiny_gan(), "fit")  # ... and checked when training starts


def test_hydra_fpd_override_builds_the_scorer(fpd_files, tmp_path):
    from hydra.utils import instantiate

    from tests.helpers import compose_train

    ckpt, stats = fpd_files
    fpd = f"{{classifier_ckpt_path:{ckpt},stats:{stats},n_points:512}}"
    cfg = compose_train(["experiment=treegan_synthetic", f"callbacks.generation_metrics.fpd={fpd}"], tmp_path)
    cb = instantiate(cfg.callbacks.generation_metrics)
    assert isinstance(cb, GenerationMetrics) and (cb.max_refs, cb.seed) == (cfg.model.eval_samples, cfg.model.eval_seed)
    assert isinstance(cb.build_fpd(), FPDScorer) and cb.fpd.n_points == 512
