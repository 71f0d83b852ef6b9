"""The whole system as pc3d-train's main job (issue 16): which command lines run it, how stage overrides are
routed, and one end-to-end run of the three stages on the tiny built-in data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pc3d.cli.system import is_system_run, stage_overrides, system_args
from tests.helpers import TINY_SYNTHETIC, compose_train


@pytest.mark.parametrize("args,system", [
    ([], True),
    (["trainer.max_epochs=2", "seed=1", "logger=wandb", "model.latent_dim=64"], True),
    (["experiment=system"], True),
    (["ae.trainer.max_epochs=1", "-m"], True),
    (["experiment=ae_synthetic"], False),
    (["model=treegan"], False),
    (["model/decoder=treegcn"], False),
    (["data=modelnet40", "data.root=/x"], False),
    (["debug=fdr"], False),
    (["ckpt_path=r/checkpoints/last.ckpt"], False),
    (["-m", "hparams_search=lgan_optuna"], False),
])
def test_which_command_lines_run_the_whole_system(args, system):
    assert is_system_run(args) is system


def test_stage_overrides_round_trip_through_hydra_form():
    args = ["ae.trainer.max_epochs=5", "+img.model.foo=1", "trainer.limit_val_batches=1", "seed=3", "out=/tmp/o"]
    hydra_form = system_args(args)
    assert hydra_form[0] == "experiment=system"
    assert "++stage_overrides.ae.trainer.max_epochs=5" in hydra_form
    assert "+stage_overrides.img.model.foo=1" in hydra_form
    common, per = stage_overrides(hydra_form)
    assert common == ["trainer.limit_val_batches=1", "seed=3"]  # out= is the parent's folder, not a stage key
    assert per["ae"] == ["trainer.max_epochs=5"] and per["img"] == ["+model.foo=1"] and per["gan"] == []


def test_system_config_composes_and_names_its_stages():
    cfg = compose_train(["experiment=system"], Path("/tmp/unused"))
    assert list(cfg.stages) == ["ae", "gan", "img"]
    assert cfg.stages.gan["from"]["model.ae_ckpt_path"] == "ae" and cfg.stages.img["from"]["model.ae_ckpt_path"] == "ae"
    for name, stage in cfg.stages.items():  # each stage composes as a pc3d-train run
        sub = compose_train([f"experiment={stage.experiment}", *stage.overrides,
                             *(["model.ae_ckpt_path=x.ckpt"] if stage.get("from") else [])], Path("/tmp/unused"))
        assert sub.model._target_, name


def test_whole_system_end_to_end_on_tiny_data(tiny_builtin, tmp_path):
    from pc3d.cli.system import run_system

    tiny = [f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    common = [f"data.synthetic.root={tiny_builtin}", *tiny, "data.n_points=256", "data.batch_size=4",
              "data.num_workers=0", "trainer.max_epochs=1", "trainer.limit_train_batches=2",
              "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "callbacks.progress_bar=null",
              "callbacks.model_summary=null"]
    overrides = ["experiment=system", *common, "++stage_overrides.gan.trainer.check_val_every_n_epoch=1",
                 "++stage_overrides.gan.model.eval_samples=8", "++stage_overrides.gan.data.batch_size=8"]
    cfg = compose_train(overrides[:1] + common, tmp_path)
    res = run_system(cfg, overrides)
    out = Path(res["output_dir"])
    assert out == tmp_path
    for stage in ("ae", "gan", "img"):
        assert (out / stage / "checkpoints" / "last.ckpt").is_file(), stage
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["stages"]) == ["ae", "gan", "img"]
    ae_ckpt = summary["stages"]["ae"]["best_ckpt"]
    # later stages started from the autoencoder stage's checkpoint
    assert f"model.ae_ckpt_path={ae_ckpt}" in summary["stages"]["gan"]["overrides"]
    assert f"model.ae_ckpt_path={ae_ckpt}" in summary["stages"]["img"]["overrides"]
    # the stage-only override reached the gan stage only
    assert "model.eval_samples=8" in summary["stages"]["gan"]["overrides"]
    assert "model.eval_samples=8" not in summary["stages"]["img"]["overrides"]
    final = json.loads((out / "final_metrics.json").read_text())
    assert "ae/test/cd" in final and "img/test/cd" in final and any(k.startswith("gan/") for k in final)
    assert final == pytest.approx(res["metrics"])
    from PIL import Image

    with Image.open(out / "system.png") as im:  # 1 row of samples + 3 rows of image -> cloud triples
        assert im.size[0] > 500 and im.size[1] > 4 * 140
