"""pc3d-invert end to end on tiny settings (a few optimisation steps), every mode, outputs read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pc3d.cli._common import CONFIG_DIR
from pc3d.cli.invert import invert

TINY = ["stages=[{steps:2,lr_z:0.05,lr_g:0},{steps:2,lr_z:0.01,lr_g:1e-4}]", "n_starts=2",
        "render.backend=numpy", "render.image_size=48"]
REPO = Path(__file__).resolve().parents[2]


def cfg_of(tmp_path, **kw):
    from hydra import compose, initialize_config_dir

    overrides = [*TINY, f"paths.output_dir={tmp_path / 'run'}", *(f"{k}={v}" for k, v in kw.items())]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose("invert", overrides=overrides)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """Two clouds of the shipped l-GAN, a partial one cut from the first, as .npy / .ply / .pcd files."""
    from pc3d.cli.generate import save_ply
    from pc3d.inversion import InvertibleGenerator

    d = tmp_path_factory.mktemp("invert_inputs")
    gen = InvertibleGenerator.from_checkpoint("pretrained:lgan")
    with torch.no_grad():
        full = gen(gen.sample_z(2, seed=11)).numpy()
    partial = full[0][full[0][:, 0] > np.median(full[0][:, 0])]
    np.save(d / "full.npy", full)
    np.save(d / "partial.npy", partial)
    save_ply(d / "a.ply", full[0])
    save_ply(d / "b.pcd", full[1])
    save_ply(d / "partial.pcd", partial)
    return d


def _read(path):
    from pc3d.viz.io import load_clouds

    return load_clouds(path)[0]


def test_complete_to_a_npy_file(shapes, tmp_path):
    out = tmp_path / "done.npy"
    res = invert(cfg_of(tmp_path, mode="complete", input=shapes / "partial.npy", out=out))
    got = np.load(out)
    assert got.shape == (2048, 3) and got.dtype == np.float32 and np.array_equal(got, res["clouds"][0])
    assert np.allclose(_read(tmp_path / "done.ply")[0], got, atol=1e-6)  # pc3d's readers take the .ply
    assert (tmp_path / "done.png").stat().st_size > 0 and not (tmp_path / "done.gif").exists()
    record = json.loads((tmp_path / "done.json").read_text())
    assert record["mode"] == "complete" and record["n_shapes"] == 1
    shape = record["shapes"][0]
    assert shape["steps"] == 4 and shape["cd"] > 0 and shape["seconds"] > 0
    assert record["config"]["stages"][1] == {"steps": 2, "lr_z": 0.01, "lr_g": 1e-4}  # every knob recorded
    assert record["config"]["mask"]["kind"] == "knn" and not (tmp_path / "run").exists()


@pytest.mark.parametrize("kind", ["distance", "voxel"])
def test_complete_pcd_input_other_masks(shapes, tmp_path, kind):
    out = tmp_path / "done.pcd"
    invert(cfg_of(tmp_path, mode="complete", input=shapes / "partial.pcd", out=out, **{"mask.kind": kind},
                  **{"render.png": "false"}))
    assert _read(out).shape == (1, 2048, 3)
    assert json.loads((tmp_path / "done.json").read_text())["config"]["mask"]["kind"] == kind


def test_reconstruct_batch_to_a_folder(shapes, tmp_path):
    out = tmp_path / "fit"
    res = invert(cfg_of(tmp_path, mode="reconstruct", input=shapes / "full.npy", out=out, batch_size=1))
    clouds = np.load(out / "clouds.npy")
    assert clouds.shape == (2, 2048, 3) and np.array_equal(clouds, res["clouds"])
    assert [p.name for p in sorted((out / "ply").glob("*.ply"))] == ["cloud_0000.ply", "cloud_0001.ply"]
    assert np.allclose(_read(out / "ply" / "cloud_0001.ply")[0], clouds[1], atol=1e-6)
    record = json.loads((out / "clouds.json").read_text())
    assert [s["index"] for s in record["shapes"]] == [0, 1] and (out / "clouds.png").is_file()


def test_diversity(shapes, tmp_path):
    res = invert(cfg_of(tmp_path, mode="diversity", input=shapes / "partial.npy", out=tmp_path / "d", n_samples=3))
    clouds = np.load(tmp_path / "d" / "clouds.npy")
    assert clouds.shape == (3, 2048, 3)
    assert all(not np.allclose(clouds[i], clouds[j]) for i in range(3) for j in range(i + 1, 3))
    assert (tmp_path / "d" / "clouds.gif").stat().st_size > 0
    assert len(res["shapes"][0]["cd"]) == 3


def test_jitter_from_ply(shapes, tmp_path):
    invert(cfg_of(tmp_path, mode="jitter", input=shapes / "a.ply", out=tmp_path / "j", n_samples=3,
                  **{"jitter.sigma": 0.5}))
    clouds = _read(tmp_path / "j" / "clouds.npy")
    assert clouds.shape == (3, 2048, 3) and not np.allclose(clouds[0], clouds[1])
    assert (tmp_path / "j" / "clouds.gif").is_file()


def test_morph_ply_out(shapes, tmp_path):
    out = tmp_path / "m.ply"
    res = invert(cfg_of(tmp_path, mode="morph", input=shapes / "a.ply", input2=shapes / "b.pcd", out=out,
                        **{"morph.frames": 4}))
    frames = [_read(tmp_path / f"m_{i:04d}.ply")[0] for i in range(4)]
    assert np.allclose(frames[0], res["clouds"][0], atol=1e-6) and not np.allclose(frames[0], frames[3])
    assert (tmp_path / "m.gif").is_file() and (tmp_path / "m.png").is_file()
    assert json.loads((tmp_path / "m.json").read_text())["n_results"] == 4


@pytest.mark.parametrize("content, match", [
    (np.zeros((0, 3), np.float32), r"input=.*empty\.npy: .*the cloud is empty"),
    (np.array([[0.0, np.nan, 0.0], [1, 1, 1]], np.float32), r"input=.*nan\.npy: .*NaN"),
    (np.zeros((5, 4), np.float32), r"input=.*shape\.npy: .*expected a cloud of shape \(N, 3\)"),
])
def test_bad_input_files(tmp_path, content, match):
    name = {0: "empty", 2: "nan", 5: "shape"}[len(content)]
    np.save(tmp_path / f"{name}.npy", content)
    with pytest.raises(ValueError, match=match):
        invert(cfg_of(tmp_path, mode="complete", input=tmp_path / f"{name}.npy", out=tmp_path / "o.npy"))


@pytest.mark.parametrize("kw, exc, match", [
    ({"mode": "inpaint"}, ValueError, "mode must be one of reconstruct, complete, diversity, jitter, morph"),
    ({"mode": "complete", "mask.kind": "sphere"}, ValueError, "mask.kind must be one of knn, distance, voxel"),
    ({"mode": "morph"}, ValueError, "mode=morph needs input2="),
    ({"mode": "complete", "n_samples": 0}, ValueError, "n_samples must be an int >= 1"),
    ({"mode": "complete", "out": "x.json"}, ValueError, "expected a .npy / .ply / .pcd file or a folder"),
    ({"mode": "complete", "input": "missing.npy"}, FileNotFoundError, "input=missing.npy: no such file"),
])
def test_bad_config(shapes, tmp_path, kw, exc, match):
    kw = {"input": shapes / "partial.npy", "out": tmp_path / "o.npy", **kw}
    with pytest.raises(exc, match=match):
        invert(cfg_of(tmp_path, **kw))


def test_entry_point_writes_the_run_folder(shapes, tmp_path, monkeypatch, capsys):
    """``main`` (the console script) in-process: no out= -> ${paths.log_dir}/invert/runs/<time>/."""
    from pc3d.cli.invert import main

    monkeypatch.setenv("PC3D_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pc3d-invert", "mode=complete", f"input={shapes / 'partial.npy'}", *TINY])
    main()
    runs = list((tmp_path / "logs" / "invert" / "runs").iterdir())
    assert len(runs) == 1 and np.load(runs[0] / "clouds.npy").shape == (2048, 3)
    assert (runs[0] / "clouds.json").is_file() and "pc3d-invert: complete: 1 cloud(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_command_line_subprocess(shapes, tmp_path):
    env = {**os.environ, "PC3D_LOG_DIR": str(tmp_path / "logs"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "pc3d.cli.invert", "mode=complete", f"input={shapes / 'partial.npy'}",
           f"out={tmp_path / 'done.npy'}", *TINY]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert np.load(tmp_path / "done.npy").shape == (2048, 3)
    bad = subprocess.run([*cmd, "mode=inpaint"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert bad.returncode != 0 and "mode must be one of" in bad.stderr + bad.stdout
