"""End-to-end smoke run of experiments/generators_side_by_side.py (and the plot script) at a tiny size:
30 built-in chairs (10/10/10), a 15 s budget per variant, 10 vs 10 clouds scored, the FPD classifier
trained for one epoch on the tiny 8-category set. Slow (~2 min on 2 cores): run with -m slow. The stage
configs are also checked without training (fast)."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest

from tests.helpers import TINY_SYNTHETIC

BUDGET = 15


def _fpd_overrides(tiny_builtin) -> list[str]:
    args = [f"data.synthetic.root={tiny_builtin}", "data.batch_size=8"]
    args += [f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    return [x for a in args for x in ("--fpd-override", a)]


@pytest.mark.slow
def test_side_by_side_smoke(tiny_builtin, tmp_path):
    from experiments import generators_side_by_side as sbs
    from experiments import plot_quality_vs_time as pq

    out = tmp_path / "out"
    argv = ["--out", str(out), "--chairs-root", str(tmp_path / "chairs30"), "--n-chairs", "30",
            "--splits", "1/3,1/3,1/3", "--n-eval", "10", "--budget", str(BUDGET), "--ae-epochs", "1",
            "--fpd-epochs", "1", *_fpd_overrides(tiny_builtin), "--grid", "--grid-out", str(tmp_path / "grid.png")]
    t0 = time.perf_counter()
    result = sbs.main(argv)
    print(f"smoke run: {time.perf_counter() - t0:.0f} s")

    summary = json.loads((out / "side_by_side.json").read_text())
    assert summary["data"]["counts"] == {"train": 10, "val": 10, "test": 10}
    variants = summary["variants"]
    assert variants[:4] == ["faithful", "treegan_warm", "lgan_fc", "lgan_tree"]
    assert ("treegan_warm_unif" in variants) != ("treegan_warm_unif" in summary["skipped"])
    rows = summary["rows"]
    assert set(rows) == {*variants, "real (train vs test)"}
    for name, row in rows.items():
        for key in ("1nna_cd", "1nna_emd", "cov_cd", "cov_emd", "mmd_cd", "mmd_emd", "fpd"):
            assert math.isfinite(row["metrics"][key]), (name, key)
        assert 0 <= row["metrics"]["1nna_cd"] <= 1 and 0 <= row["metrics"]["cov_emd"] <= 1
    for v in variants:
        samples = np.load(out / v / "eval_samples.npy")
        assert samples.shape == (10, 512, 3) and samples.dtype == np.float32
        gan = rows[v]["gan_stage"]
        # one budget: the GAN stage gets what the AE stage left
        ae_s = rows[v]["ae_s"] or 0.0
        assert gan["max_time"] == sbs.max_time(BUDGET - ae_s)
        assert rows[v]["total_s"] == pytest.approx(ae_s + gan["seconds"])
        assert (out / v / "csv" / "metrics.csv").is_file()
    assert rows["faithful"]["ae_s"] is None
    # lgan_tree reuses treegan_warm's autoencoder (one checkpoint, counted in both budgets)
    assert rows["lgan_tree"]["ae_stage"]["run_dir"] == rows["treegan_warm"]["ae_stage"]["run_dir"]
    assert rows["lgan_tree"]["ae_s"] == rows["treegan_warm"]["ae_s"]
    # the warm-started generator has the autoencoder decoder's knobs; the faithful one the paper's
    warm = rows["treegan_warm"]["gan_stage"]["overrides"]
    assert "++model.generator.init=node" in warm and "++model.generator.ancestor_scale=mean" in warm
    assert not any("model.generator.init" in o for o in rows["faithful"]["gan_stage"]["overrides"])
    assert "| faithful |" in result["markdown"] and "real (train vs test)" in result["markdown"]
    assert (tmp_path / "grid.png").stat().st_size > 0
    assert (out / "fpd_classifier.ckpt").is_file()

    # --resume reuses every stage and evaluation (and trains treegan_warm_unif if its key appeared meanwhile)
    again = sbs.main([*argv, "--resume"])
    for v in variants:
        assert again["rows"][v]["metrics"] == rows[v]["metrics"]
        assert again["rows"][v]["gan_s"] == rows[v]["gan_s"]

    pytest.importorskip("matplotlib")
    png = pq.main([str(out), "--png", str(tmp_path / "q.png")])
    assert png.stat().st_size > 0
    curves = pq.read_curves(out)
    assert set(curves) == set(again["variants"])
    assert all(not c["scaled"] and c["t"][0] >= c["ae_seconds"] for c in curves.values())


@pytest.mark.parametrize("variant", ["faithful", "treegan_warm", "lgan_fc", "lgan_tree"])
def test_stage_configs(variant, tmp_path):
    """Fast (not slow): every stage composes from conf/ with the intended sizes, budgets and knobs."""
    from experiments import generators_side_by_side as sbs

    args = sbs.build_parser().parse_args(["--out", str(tmp_path), "--budget", "10m", "--ae-epochs", "7"])
    args.data_dir = str(tmp_path / "data")
    r = sbs.Runner(args)
    assert sbs.max_time(r.budget) == "00:00:10:00" and sbs.max_time(r.ae_budget) == "00:00:05:00"
    assert sbs.parse_seconds("00:01:30:00") == 5400 and sbs.parse_seconds("90s") == 90
    assert sbs.parse_splits(args.splits) == pytest.approx([2 / 3, 1 / 6, 1 / 6])

    def cfg(overrides):
        return sbs.compose([*overrides, *r.data_overrides(), *r.common(), f"paths.output_dir={tmp_path}"])

    data = cfg(r.ae_overrides("tree")).data
    assert data.categories == "chair" and data.n_points == sbs.N_POINTS and data.synthetic.n_views == 0
    assert data.synthetic.categories == "chair" and data.synthetic.n_per_category == 600
    if variant in ("treegan_warm", "lgan_tree"):
        ae = cfg(r.ae_overrides("tree"))
        dec = ae.model.decoder
        assert list(dec.features) == sbs.TREE_FEATURES and list(dec.degrees) == sbs.TREE_DEGREES
        assert dec.init == "node" and dec.ancestor_scale == "mean" and ae.model.latent_dim == 96
        assert ae.model.scheduler.T_max == 7 == ae.trainer.max_epochs and ae.data.batch_size == 16
        assert ae.trainer.max_time == "00:00:05:00" and ae.model.optimizer.lr == 1e-3
    if variant == "lgan_fc":
        ae = cfg(r.ae_overrides("fc"))
        assert ae.model.decoder._target_.endswith("FCDecoder") and ae.model.latent_dim == 128
        assert ae.data.batch_size == 32 and ae.model.scheduler.T_max == 7
    kind = "lgan" if variant.startswith("lgan") else "tree"
    ckpt = None if variant == "faithful" else "/ae.ckpt"
    gan = cfg(r.gan_overrides(kind, 300, ckpt, 96 if variant != "lgan_fc" else 128))
    assert gan.trainer.max_time == "00:00:05:00" and gan.data.n_points == sbs.N_POINTS
    if kind == "tree":
        faithful = cfg(r.gan_overrides("tree", 600))
        g = gan.model.generator
        assert list(g.degrees) == sbs.TREE_DEGREES and g.features[1:] == faithful.model.generator.features[1:]
        assert gan.model.latent_dim == 96 and gan.model.warm_start_ckpt_path == ckpt
        if ckpt:
            assert g.init == "node" and g.ancestor_scale == "mean"
        else:
            assert g.get("init", "official") == "official" and g.get("ancestor_scale", "sum") == "sum"
    else:
        assert gan.model.ae_ckpt_path == ckpt and gan.model.latent_dim == (128 if variant == "lgan_fc" else 96)
