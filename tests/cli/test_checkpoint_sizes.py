"""Issue 15, 13d: the best checkpoint holds only what scoring needs (weights + build data), the run says how
big each checkpoint is, a weights-only file is refused for resuming with what to do instead, and
``callbacks.model_checkpoint=null`` keeps only ``last.ckpt``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from pc3d.cli.train import train
from tests.helpers import compose_train


def _short(tmp_path, builtin, *extra):
    return compose_train(["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                          "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0",
                          "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.latent_dim=16",
                          "data.n_points=256", *extra], tmp_path, builtin)


def test_best_is_weights_only_and_scores_like_last(tiny_builtin, tmp_path, capsys):
    from pc3d.models import load_model

    result = train(_short(tmp_path, tiny_builtin, "test=true"))
    best, last = result["best_ckpt"], result["last_ckpt"]
    b = torch.load(best, weights_only=True)
    full = torch.load(last, weights_only=True)
    assert "optimizer_states" not in b and "lr_schedulers" not in b and "callbacks" not in b
    assert "optimizer_states" in full and "loops" in full
    assert b["pc3d_build"] == full["pc3d_build"] and b["pc3d_build"]["model"]["name"] == "autoencoder"
    assert b["pc3d_config_record"] == full["pc3d_config_record"]
    # one epoch: best and last hold the same weights, and the best file is much smaller (Adam: ~1/3)
    assert b["state_dict"].keys() == full["state_dict"].keys()
    assert all(torch.equal(b["state_dict"][k], full["state_dict"][k]) for k in b["state_dict"])
    assert os.path.getsize(best) < 0.5 * os.path.getsize(last)
    x = torch.rand(2, 256, 3)
    assert torch.equal(load_model(best)(x), load_model(last)(x))
    out = capsys.readouterr().out
    mb = os.path.getsize(best) / 1e6
    assert f"{Path(best).name} ({mb:.1f} MB)" in out  # one line, not wrapped by the console
    assert f"({os.path.getsize(last) / 1e6:.1f} MB)" in out
    assert "test/cd" in result["metrics"]  # the final test read the weights-only best


def test_resume_from_weights_only_checkpoint_is_refused_with_advice(tiny_builtin, tmp_path):
    result = train(_short(tmp_path / "a", tiny_builtin, "test=false"))
    cfg = _short(tmp_path / "b", tiny_builtin, "test=false", f"ckpt_path={result['best_ckpt']}")
    with pytest.raises(ValueError, match=r"weights-only checkpoint.*last\.ckpt"):
        train(cfg)
    # last.ckpt still resumes
    cfg = _short(tmp_path / "c", tiny_builtin, "test=false", "trainer.max_epochs=2", f"ckpt_path={result['last_ckpt']}")
    assert train(cfg)["last_ckpt"]


def test_model_checkpoint_null_keeps_only_last(tiny_builtin, tmp_path):
    result = train(_short(tmp_path, tiny_builtin, "test=false", "callbacks.model_checkpoint=null"))
    files = sorted(p.name for p in (Path(result["output_dir"]) / "checkpoints").iterdir())
    assert files == ["last.ckpt"] and result["best_ckpt"] is None


def test_final_metrics_json_matches_result(tiny_builtin, tmp_path):
    import json

    result = train(_short(tmp_path, tiny_builtin, "test=true"))
    saved = json.loads((Path(result["output_dir"]) / "final_metrics.json").read_text())
    assert saved == pytest.approx(result["metrics"]) and "test/cd" in saved
