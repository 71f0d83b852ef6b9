"""The CLI policy: one reader of .npy/.npz clouds, renamed keys refused by name, one output rule,
and the pipeline as a Hydra app."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pc3d.cli._common import reject_renamed, run_dir
from pc3d.cli.pipeline import hydra_args, split_overrides, stage_overrides

ROOT = Path(__file__).resolve().parents[2]


def test_one_npz_reader_for_view_export_and_eval(tmp_path):
    from pc3d.cli.eval import load_clouds as eval_load
    from pc3d.io import NPZ_KEYS, read_clouds
    from pc3d.viz.io import load_clouds as view_load

    rng = np.random.default_rng(0)
    arrays = {k: rng.random((2, 16, 3)).astype(np.float32) + i for i, k in enumerate(reversed(NPZ_KEYS))}
    arrays["labels"] = np.arange(2)
    np.savez(tmp_path / "many.npz", **arrays)
    for keys in (NPZ_KEYS, NPZ_KEYS[1:], NPZ_KEYS[2:]):  # the first key present wins, whatever the file order
        np.savez(tmp_path / "f.npz", **{k: arrays[k] for k in reversed(keys)}, labels=arrays["labels"])
        want = arrays[keys[0]]
        assert np.array_equal(read_clouds(tmp_path / "f.npz"), want)
        assert np.array_equal(view_load(tmp_path / "f.npz")[0], want)  # pc3d-view and pc3d-export
        assert np.array_equal(eval_load(tmp_path / "f.npz").numpy(), want)  # pc3d-eval
    assert np.array_equal(read_clouds(tmp_path / "many.npz", key="recon"), arrays["recon"])
    assert np.array_equal(eval_load(tmp_path / "many.npz", key="pred").numpy(), arrays["pred"])
    np.savez(tmp_path / "one.npz", anything=arrays["x"][0])  # a single array: whatever its name
    assert read_clouds(tmp_path / "one.npz").shape == (1, 16, 3)
    np.savez(tmp_path / "unknown.npz", a=arrays["x"], b=arrays["x"])
    with pytest.raises(ValueError, match=r"unknown\.npz: holds arrays \['a', 'b'\].*clouds, points"):
        read_clouds(tmp_path / "unknown.npz")
    with pytest.raises(ValueError, match=r"many\.npz\[labels\]: expected a cloud of shape \(N, 3\)"):
        read_clouds(tmp_path / "many.npz", key="labels")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable \.npz"):
        read_clouds(tmp_path / "bad.npz")


@pytest.mark.parametrize(("command", "old", "new"), [
    ("generate", "ckpt", "ckpt_path"), ("generate", "n", "n_samples"), ("reconstruct", "ckpt", "ckpt_path"),
    ("eval", "fpd.classifier", "fpd.classifier_ckpt_path"), ("eval", "ckpt", "ckpt_path")])
def test_renamed_keys_are_refused_by_name(command, old, new):
    with pytest.raises(ValueError, match=f"'{old}' was renamed to '{new}'"):
        reject_renamed(f"pc3d-{command}", command, ["seed=1", f"{old}=x"])
    with pytest.raises(ValueError, match=f"'{old}' was renamed to '{new}'"):
        reject_renamed(f"pc3d-{command}", command, [f"+{old}=x"])
    reject_renamed(f"pc3d-{command}", command, [f"{new}=x", "--help"])  # the new key passes
    cfg = {"fpd": {"classifier": "c"}} if old == "fpd.classifier" else {old: 1}
    with pytest.raises(ValueError, match=f"use {new}="):
        reject_renamed(f"pc3d-{command}", command, cfg)


def test_renamed_key_on_the_command_line_exits_2_naming_the_new_key(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.generate", "ckpt=x.ckpt", "n=3"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "'ckpt' was renamed to 'ckpt_path'" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_dir_rule():
    assert run_dir(None, "logs/eval/runs/t") == "logs/eval/runs/t"
    assert run_dir("", "logs/eval/runs/t") == "logs/eval/runs/t"
    assert run_dir("res/m.json", "d") == "res"  # a file: its folder
    assert run_dir("chair.ply", "d") == "."
    assert run_dir("samples/", "d") == "samples"


@pytest.mark.parametrize("name", ["train", "eval", "generate", "reconstruct", "pipeline", "invert"])
def test_every_job_runs_under_the_log_dir_unless_out_is_given(name, tmp_path):
    """``hydra.run.dir`` as Hydra resolves it, with PC3D_LOG_DIR set, with and without out=."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from pc3d.cli._common import CONFIG_DIR

    os.environ["PC3D_LOG_DIR"] = str(tmp_path / "logs")
    try:
        for out, expect in ((None, None), (str(tmp_path / "o"), str(tmp_path / "o"))):
            overrides = [f"out={out}"] if out else []
            with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
                cfg = compose(name, overrides=overrides, return_hydra_config=True)
                OmegaConf.resolve(cfg.hydra.run)
            got = cfg.hydra.run.dir
            if expect is None:
                prefix = str(tmp_path / "logs" / cfg.task_name / "runs") + os.sep
                assert got.startswith(prefix), got
            else:
                assert got == expect
            GlobalHydra.instance().clear()
    finally:
        del os.environ["PC3D_LOG_DIR"]


def test_pipeline_arguments_round_trip_through_hydra():
    args = ["out=o", "retrieval=false", "ae.trainer.max_epochs=10", "img.model.adv_weight=0.01", "data=pc15k",
            "trainer.max_epochs=1", "+ae.data.foo=1", "paths.data_dir=/d", "--cfg", "job"]
    h = hydra_args(args)
    assert h == ["out=o", "retrieval=false", "++ae.trainer.max_epochs=10", "++img.model.adv_weight=0.01",
                 "++both.data=pc15k", "++both.trainer.max_epochs=1", "+ae.data.foo=1", "paths.data_dir=/d",
                 "--cfg", "job"]
    back = stage_overrides([a for a in h if "=" in a])
    assert back == ["ae.trainer.max_epochs=10", "img.model.adv_weight=0.01", "data=pc15k", "trainer.max_epochs=1",
                    "+ae.data.foo=1", "paths.data_dir=/d"]
    parsed = split_overrides(back)
    assert parsed == {"common": ["data=pc15k", "trainer.max_epochs=1", "paths.data_dir=/d"],
                      "ae": ["trainer.max_epochs=10", "+data.foo=1"], "img": ["model.adv_weight=0.01"]}
    with pytest.raises(ValueError, match="deleting a stage key"):
        hydra_args(["~ae.trainer.max_epochs"])


def test_pipeline_is_a_hydra_app(tmp_path):
    env = {**os.environ, "PC3D_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run([sys.executable, "-m", "pc3d.cli.pipeline", "--cfg", "job", "ae.trainer.max_epochs=3",
                           "data=pc15k", "retrieval=false"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "retrieval: false" in proc.stdout and "max_epochs: 3" in proc.stdout and "data: pc15k" in proc.stdout
