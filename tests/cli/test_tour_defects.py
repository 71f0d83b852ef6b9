"""Defects found by re-walking the README tour from a fresh clone (issue 15, acceptance)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pc3d.cli.train import train
from tests.helpers import compose_train


@pytest.mark.parametrize("overrides,monitor,mode", [
    ([], "val/cd", "min"),
    (["model=treegan"], "val/1nna_cd", "min"),
    (["model=lgan"], "val/mmd_cd", "min"),
    (["model=pointnet_cls"], "val/acc", "max"),
    (["model=image2cloud", "data=renderings"], "val/cd", "min"),
    (["experiment=treegan_synthetic"], "val/mmd_cd", "min"),  # an experiment's own choice wins
    (["model=treegan", "monitor=val/mmd_cd"], "val/mmd_cd", "min"),  # and the command line's
])
def test_the_best_checkpoint_follows_the_chosen_model(overrides, monitor, mode):
    """D1: `pc3d-train model=treegan ...` kept the autoencoder's monitor val/cd, which a GAN never logs, and the
    fit crashed in ModelCheckpoint after the first validation."""
    cfg = compose_train(overrides, Path("/tmp/unused"))
    assert (cfg.monitor, cfg.monitor_mode) == (monitor, mode)
    assert cfg.callbacks.model_checkpoint.monitor == monitor and cfg.callbacks.model_checkpoint.mode == mode


def test_model_treegan_alone_fits_and_keeps_a_best_checkpoint(tiny_builtin, tmp_path):
    cfg = compose_train(["model=treegan", "trainer.accelerator=cpu", "trainer.max_epochs=1",
                         "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                         "trainer.check_val_every_n_epoch=1", "trainer.num_sanity_val_steps=0", "test=false",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null", "data.n_points=128",
                         "model.generator.features=[96,32,3]", "model.generator.degrees=[8,16]",
                         "model.eval_samples=8", "model.n_fixed_samples=2"], tmp_path, tiny_builtin)
    res = train(cfg)
    assert res["best_ckpt"] and Path(res["best_ckpt"]).is_file() and "val/1nna_cd" in res["metrics"]


def test_stage_configs_compose_inside_a_running_hydra_app(tmp_path):
    """D0: pc3d-img2cloud failed before training ("GlobalHydra is already initialized"): it composed the stage
    configs with initialize_config_dir inside its own @hydra.main app. The tests called run_pipeline outside one."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from pc3d.cli._common import CONFIG_DIR
    from pc3d.cli.pipeline import _compose

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):  # stands for the running app
        outer = GlobalHydra.instance().hydra
        cfg = _compose(["experiment=ae_pretrain", f"paths.output_dir={tmp_path}"])
        assert cfg.task_name == "ae_pretrain"
        assert GlobalHydra.instance().hydra is outer  # the app's state is back


def test_eval_reconstruction_reports_progress(tiny_builtin, tmp_path, capsys):
    """M6: pc3d-eval of an image model with EMD printed nothing for 7 minutes; the generation path had progress
    lines, the reconstruction path none."""
    from pc3d.cli.eval import evaluate
    from tests.cli.test_eval import compose_eval

    cfg = compose_train(["trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                         "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null", "model.latent_dim=16",
                         "data.n_points=128"], tmp_path / "run", tiny_builtin)
    ckpt = train(cfg)["last_ckpt"]
    capsys.readouterr()
    res = evaluate(compose_eval([f"ckpt_path={ckpt}", f"out={tmp_path}/m.json"], tmp_path))
    err = capsys.readouterr().err
    n = int(res["per_category"]["all"]["count"])
    assert f"pc3d-eval: reconstruction cd+fscore (test): {n}/{n} shapes (100%" in err


def test_resumed_run_keeps_final_metrics_of_the_first(tmp_path):
    """M5: resuming a finished run into its own folder (to test) replaced final_metrics.json by test keys only."""
    import json

    from pc3d.cli.train import write_final_metrics

    write_final_metrics(tmp_path, {"val/cd": 0.5, "test/cd": 0.4})
    write_final_metrics(tmp_path, {"test/cd": 0.3}, merge=True)
    assert json.loads((tmp_path / "final_metrics.json").read_text()) == {"test/cd": 0.3, "val/cd": 0.5}
    write_final_metrics(tmp_path, {"test/cd": 0.2})  # a new run (no ckpt_path): its own metrics only
    assert json.loads((tmp_path / "final_metrics.json").read_text()) == {"test/cd": 0.2}


def test_builtin_data_messages_once_in_a_logged_run(tmp_path, capsys):
    """M8: every pc3d.data.synthetic message was shown twice in pc3d-train's console (log line + print)."""
    import logging

    from pc3d.data.synthetic.writer import _say

    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    old = logging.getLogger("pc3d.data.synthetic.writer").level
    logging.getLogger("pc3d.data.synthetic.writer").setLevel(logging.INFO)
    try:
        _say(True, "hello")
        assert "[pc3d.data.synthetic] hello" not in capsys.readouterr().err
    finally:
        root.removeHandler(handler)
        logging.getLogger("pc3d.data.synthetic.writer").setLevel(old)
    handlers, root.handlers = root.handlers, []
    try:  # no logging set up (pc3d-data generate): printed
        _say(True, "hello")
        assert "[pc3d.data.synthetic] hello" in capsys.readouterr().err
    finally:
        root.handlers = handlers
