"""pc3d-eval: two sets of clouds, an autoencoder checkpoint, a GAN stand-in, FPD statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pc3d.cli.eval import evaluate, load_clouds
from tests.helpers import TINY_SYNTHETIC, compose_train


def compose_eval(overrides: list[str], output_dir: Path):
    from hydra import compose, initialize_config_dir

    from pc3d.cli._common import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("eval", overrides=[*overrides, f"paths.output_dir={output_dir}", "device=cpu"])


def _tiny_data_cfg(root: Path) -> dict:
    return {"_target_": "pc3d.data.PointCloudDataModule", "root": None, "n_points": 128, "batch_size": 4,
            "normalize": "none", "synthetic": {"root": str(root), **TINY_SYNTHETIC}, "num_workers": 0}


class StandInGAN(nn.Module):
    """Stand-in for the tree-GAN: ``sample(n, seed=...)`` draws blobs of 128 points."""

    def __init__(self, n_points: int = 128) -> None:
        super().__init__()
        self.n_points = n_points
        self.scale = nn.Parameter(torch.tensor(0.4))

    def sample(self, n: int, *, seed: int | None = None, batch_size: int = 100) -> torch.Tensor:
        g = torch.Generator().manual_seed(0 if seed is None else seed)
        return (torch.rand(n, self.n_points, 3, generator=g) - 0.5) * self.scale


def test_sets_from_files_and_folders(tmp_path):
    rng = np.random.default_rng(0)
    clouds = (rng.random((5, 64, 3)) - 0.5).astype(np.float32) * 0.5
    np.save(tmp_path / "a.npy", clouds)
    np.savez(tmp_path / "b.npz", clouds=clouds[::-1], other=np.zeros(2))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, c in enumerate(clouds):
        np.save(folder / f"{i}.npy", c)
    assert torch.equal(load_clouds(folder), torch.from_numpy(clouds))
    out = tmp_path / "res" / "m.json"
    result = evaluate(compose_eval([f"samples={tmp_path / 'a.npy'}", f"refs={tmp_path / 'b.npz'}", f"out={out}"],
                                   tmp_path))
    saved = json.loads(out.read_text())
    assert result["task"] == saved["task"] == "sets"
    m = saved["metrics"]
    assert m["mmd_cd"] == 0.0 and m["cov_cd"] == 1.0 and m["1nna_cd"] == 0.0 and m["jsd"] == 0.0
    assert saved["protocol"]["normalize"] == "none"
    # subsampling to a common size
    np.save(folder / "big.npy", np.zeros((100, 3), np.float32))
    with pytest.raises(ValueError, match="n_points"):
        load_clouds(folder)
    assert load_clouds(folder, n_points=32).shape == (6, 32, 3)


def test_reconstruction_of_an_autoencoder_checkpoint(tiny_builtin, tmp_path):
    from pc3d.cli.train import train

    cfg = compose_train(["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                         "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.latent_dim=8",
                         "data.n_points=128"], tmp_path / "train", tiny_builtin)
    ckpt = train(cfg)["last_ckpt"]
    result = evaluate(compose_eval([f"ckpt_path={ckpt}", "metrics.tau=0.05"], tmp_path))
    assert result["task"] == "reconstruction"
    per_cat = result["per_category"]
    assert per_cat["all"]["count"] == sum(r["count"] for k, r in per_cat.items() if k != "all")
    assert len(per_cat) == 9  # 8 built-in categories + all
    m = result["metrics"]
    assert m["cd"] > 0 and 0 <= m["fscore"] <= 1 and set(m) == {"cd", "fscore", "precision", "recall"}
    assert json.loads(Path(result["json"]).read_text())["metrics"] == pytest.approx(m)


def test_generation_with_a_sampling_model_and_fpd(tiny_builtin, tmp_path):
    from pc3d.models.registry import register
    from pc3d.nn import PointNetClassifier

    register("stand_in_gan", 1, StandInGAN)  # a checkpoint builds registered classes only (issue 14)
    tiny_builtin_cfg = _tiny_data_cfg(tiny_builtin)
    gan = StandInGAN()
    ckpt = tmp_path / "gan.ckpt"
    torch.save({"state_dict": gan.state_dict(),
                "pc3d_config": {"model": {"_target_": "tests.cli.test_eval.StandInGAN", "n_points": 128},
                                "data": tiny_builtin_cfg}}, ckpt)
    torch.manual_seed(0)
    cls_path = tmp_path / "cls.pth"
    torch.save(PointNetClassifier(k=16).state_dict(), cls_path)
    result = evaluate(compose_eval([f"ckpt_path={ckpt}", "n_samples=6", f"fpd.classifier_ckpt_path={cls_path}",
                                    "split=val"], tmp_path))
    assert result["task"] == "generation" and result["n_samples"] == 6 and result["n_refs"] == 8
    m = result["metrics"]
    assert {"mmd_cd", "cov_cd", "1nna_cd", "1nna_cd_sample", "1nna_cd_ref", "jsd", "fpd"} <= set(m)
    assert all(np.isfinite(v) for v in m.values()) and m["fpd"] > 0

    # FPD reference statistics from the classifier and a data split
    stats = tmp_path / "stats" / "ref.npz"
    cfg = compose_eval(["task=fpd_stats", f"fpd.classifier_ckpt_path={cls_path}", f"fpd.stats_out={stats}",
                        "split=val"], tmp_path)
    from omegaconf import OmegaConf

    cfg.data = OmegaConf.create(tiny_builtin_cfg)
    res = evaluate(cfg)
    assert res["metrics"]["n_clouds"] == 8 and res["metrics"]["feature_dim"] == 1808 and stats.is_file()
    with_stats = evaluate(compose_eval([f"ckpt_path={ckpt}", "n_samples=6", f"fpd.classifier_ckpt_path={cls_path}",
                                        f"fpd.stats={stats}", "split=val", "metrics.jsd=false"], tmp_path))
    assert with_stats["metrics"]["fpd"] == pytest.approx(m["fpd"], rel=1e-6)


def test_nothing_to_evaluate_raises(tmp_path):
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(compose_eval([], tmp_path))
