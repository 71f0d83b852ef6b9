"""Smoke run of experiments/completion.py on the tiny built-in set: hole partials of 256 points, 4 test
shapes, 2 fine-tuning steps, 1 + 1 inversion steps from 1 start; then a --reuse rerun from the cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest


@pytest.fixture(scope="module")
def partial_root(tiny_builtin, tmp_path_factory):
    """A private copy of the tiny built-in root with hole partials of every split."""
    import pc3d.data.partial as partial

    root = tmp_path_factory.mktemp("completion") / "pc3d_synthetic"
    shutil.copytree(tiny_builtin, root, ignore=shutil.ignore_patterns("ShapeNetRendering"))
    partial.write_partial_set(root, kinds="hole", splits=("train", "val", "test"), n_points=256)
    return root


# ~9 s on an idle core (three shipped models loaded, two runs); it took 96 s on a core shared with 5 jobs
def test_completion_smoke(partial_root, tmp_path):
    from experiments import completion

    argv = ["--root", str(partial_root), "--kinds", "hole", "--n-test", "4", "--ft-steps", "2", "--ft-batch", "4",
            "--ft-val-every", "1", "--inv-z-steps", "1", "--inv-g-steps", "1", "--inv-n-starts", "1",
            "--inv-batch", "4", "--nn-shortlist", "3", "--nn-probe", "64", "--cache", str(tmp_path / "cache"),
            "--json", str(tmp_path / "out.json"), "--figure", str(tmp_path / "fig.png"),
            "--morph", str(tmp_path / "morph.png"), "--morph-frames", "3", "--image-size", "64", "--reuse"]
    res = completion.main(argv)
    assert res["same_autoencoder"] is True  # the shipped l-GAN decodes through the shipped AE
    kind = res["kinds"]["hole"]
    rows = kind["rows"]
    assert set(rows) == set(completion.METHODS)
    for m, r in rows.items():
        for key in ("cd", "fscore", "ucd", "uhd", "seconds_per_shape"):
            assert np.isfinite(r[key]), (m, key)
        assert 0.0 <= r["fscore"] <= 1.0
    assert rows["partial"]["ucd"] == 0.0 and rows["partial"]["uhd"] == 0.0  # the partial covers itself
    v = kind["verdict"]
    assert v["inv_over_nearest_cd"] == pytest.approx(rows["inversion"]["cd"] / rows["nearest"]["cd"])
    assert v["inv_over_finetuned_cd"] == pytest.approx(rows["inversion"]["cd"] / rows["finetuned"]["cd"])
    # (a) returns the train shape its one-sided CD picked: never worse than the first ranking's best
    nn = kind["extra"]["nearest"]
    assert len(nn["train_index"]) == 4 and min(nn["one_sided_cd"]) >= 0
    assert kind["extra"]["finetune"]["steps"] == 2
    assert kind["extra"]["finetune"]["val_cd_best"] <= kind["extra"]["finetune"]["val_cd_start"]
    assert "| (c) GAN inversion |" in res["markdown"] and "inversion/(b) CD" in res["markdown"]
    assert json.loads((tmp_path / "out.json").read_text())["kinds"]["hole"]["rows"] == rows
    for png in ("fig.png", "morph.png"):
        assert (tmp_path / png).stat().st_size > 0

    again = completion.main(argv)  # everything that trains or fits comes from the cache
    assert "reused" in again["kinds"]["hole"]["extra"]["finetune"]
    assert again["kinds"]["hole"]["rows"]["inversion"]["cd"] == rows["inversion"]["cd"]
    assert again["kinds"]["hole"]["rows"]["finetuned"]["cd"] == rows["finetuned"]["cd"]


def test_nearest_train_shape_matches_exhaustive_search():
    from experiments.completion import nearest_train_shape

    rng = np.random.default_rng(0)
    train = rng.random((12, 50, 3)) - 0.5
    parts = train[[3, 7]][:, :20] + 0.001 * rng.standard_normal((2, 20, 3))  # pieces of shapes 3 and 7
    idx, d, _ = nearest_train_shape(parts, train, shortlist=4, probe=10)
    full, dfull, _ = nearest_train_shape(parts, train, probe=0)
    assert idx.tolist() == full.tolist() == [3, 7]
    brute = [np.mean(np.min(((p[:, None] - train[j][None]) ** 2).sum(-1), 1)) for p, j in zip(parts, idx)]
    np.testing.assert_allclose(d, brute, rtol=1e-12)
    np.testing.assert_allclose(dfull, brute, rtol=1e-12)
