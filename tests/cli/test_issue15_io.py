"""Issue 15: pc3d outputs are pc3d inputs (generate -> eval), data overrides without ``+``, FPD
statistics metadata checks, ``pc3d-view --index`` per file and ``--colors file`` warnings."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from pc3d.cli.eval import _drop_nulls, evaluate, load_clouds
from pc3d.io import read_cloud_folder
from tests.cli.test_eval import StandInGAN, compose_eval


def _compose(name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from pc3d.cli._common import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(name, overrides=overrides)


# ----------------------------------------------------------------------------- 4: data keys as in train


def test_eval_takes_data_overrides_with_the_train_keys(tmp_path):
    from omegaconf import OmegaConf

    cfg = compose_eval(["data.root=/some/where", "data.n_points=512", "data.categories=[chair]",
                        "data.synthetic.root=/syn"], tmp_path)
    overrides = _drop_nulls(OmegaConf.to_container(cfg.data, resolve=True))
    assert overrides == {"root": "/some/where", "n_points": 512, "categories": ["chair"],
                         "synthetic": {"root": "/syn"}}
    # nothing given: nothing overridden (the checkpoint's data config is kept)
    assert _drop_nulls(OmegaConf.to_container(compose_eval([], tmp_path).data, resolve=True)) == {}
    # keys not listed can still be added
    cfg = compose_eval(["++data.layout_options.part_labels=false"], tmp_path)
    assert _drop_nulls(OmegaConf.to_container(cfg.data))["layout_options"] == {"part_labels": False}


# ----------------------------------------------------------------------------- 5: folders of clouds


def _stand_in_ckpt(tmp_path, n_points=64):
    from pc3d.models.registry import register

    register("stand_in_gan", 1, StandInGAN)
    ckpt = tmp_path / "gan.ckpt"
    torch.save({"state_dict": StandInGAN(n_points).state_dict(),
                "pc3d_config": {"model": {"_target_": "tests.cli.test_eval.StandInGAN", "n_points": n_points}}}, ckpt)
    return ckpt


def test_generate_folder_round_trips_into_eval(tmp_path):
    """`pc3d-generate out=gen/ npy_per_cloud=true` then `pc3d-eval samples=gen/ refs=<folder>`."""
    from pc3d.cli.generate import generate

    ckpt = _stand_in_ckpt(tmp_path)
    gen = tmp_path / "gen"
    res = generate(_compose("generate", [f"ckpt_path={ckpt}", "n_samples=10", f"out={gen}", "npy_per_cloud=true",
                                         "ply=true", "device=cpu"]))
    assert (gen / "samples.npy").is_file() and len(res["npy_per_cloud"]) == 10 and len(res["ply"]) == 10
    # the folder is the 10 clouds, once (samples.npy beside npy/ and ply/ is not counted again)
    clouds = load_clouds(gen)
    assert torch.equal(clouds, torch.from_numpy(res["samples"]))
    refs = tmp_path / "refs"
    refs.mkdir()
    for i, c in enumerate(res["samples"][:6]):
        np.save(refs / f"r{i}.npy", c)
    out = tmp_path / "m.json"
    result = evaluate(compose_eval([f"samples={gen}", f"refs={refs}", f"out={out}", "metrics.jsd=false"], tmp_path))
    assert result["n_samples"] == 10 and result["n_refs"] == 6
    assert json.loads(out.read_text())["metrics"]["cov_cd"] == pytest.approx(1.0)
    # stacked file alone and per-cloud files alone read the same clouds
    only_stacked = tmp_path / "only_stacked"
    only_stacked.mkdir()
    np.save(only_stacked / "samples.npy", res["samples"])
    assert torch.equal(load_clouds(only_stacked), clouds)
    assert torch.equal(load_clouds(gen / "npy"), clouds)
    # a folder of .ply files only (generate npy=false)
    assert load_clouds(gen / "ply").shape == (10, 64, 3)


def test_folder_with_stacked_and_per_cloud_files_that_disagree_is_an_error(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        np.save(tmp_path / f"c{i}.npy", rng.random((8, 3)).astype(np.float32))
    assert len(read_cloud_folder(tmp_path)[0]) == 3
    np.save(tmp_path / "samples.npy", rng.random((5, 8, 3)).astype(np.float32))
    with pytest.raises(ValueError, match=r"3 per-cloud .* hold 5 clouds"):
        read_cloud_folder(tmp_path)
    # temp files of atomic writes are not clouds
    (tmp_path / "samples.npy").unlink()
    np.save(tmp_path / ".c9.123.deadbeef.pc3d-tmp.npy", np.zeros((4, 3), np.float32))
    assert len(read_cloud_folder(tmp_path)[0]) == 3


# ----------------------------------------------------------------------------- 12: FPD statistics metadata


def test_fpd_refuses_statistics_of_another_point_count_and_warns_on_categories(tmp_path):
    from pc3d.metrics.fpd import check_statistics, feature_statistics, fpd, save_statistics
    from pc3d.nn import PointNetClassifier

    torch.manual_seed(0)
    net = PointNetClassifier(k=4)
    feats = torch.randn(30, 1024 + 512 + 256 + 4)
    stats = feature_statistics(feats, meta={"n_points": 2048, "category_names": ["airplane", "chair"],
                                            "normalize_fpd": "none"})
    path = save_statistics(tmp_path / "ref.npz", stats)
    samples = torch.rand(4, 512, 3) - 0.5
    with pytest.raises(ValueError, match=r"2048-point clouds but the scored clouds have 512 points"):
        fpd(samples, path, net)
    ok = feature_statistics(feats, meta={"n_points": 512, "category_names": ["airplane", "chair"],
                                         "normalize_fpd": "none"})
    with pytest.warns(UserWarning, match=r"categories \['airplane', 'chair'\].*\['chair'\]"):
        fpd(samples, ok, net, categories=["chair"])
    with pytest.warns(UserWarning, match="normalize='unit_sphere'"):
        check_statistics(ok, n_points=512, normalize="unit_sphere")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_statistics(ok, n_points=512, categories=["chair", "airplane"], normalize="none") == []
        assert np.isfinite(fpd(samples, ok, net, categories=["chair", "airplane"]))


def test_eval_fpd_stats_file_records_categories_and_points(tiny_builtin, tmp_path):
    from pc3d.metrics.fpd import load_statistics
    from pc3d.nn import PointNetClassifier

    cls_path = tmp_path / "cls.pth"
    torch.save(PointNetClassifier(k=16).state_dict(), cls_path)
    stats = tmp_path / "ref.npz"
    cfg = compose_eval(["task=fpd_stats", f"fpd.classifier_ckpt_path={cls_path}", f"fpd.stats_out={stats}",
                        "split=val", "data._target_=pc3d.data.PointCloudDataModule", "data.n_points=128",
                        "data.batch_size=4", f"data.synthetic.root={tiny_builtin}", "data.categories=[chair,table]"],
                       tmp_path)
    evaluate(cfg)
    meta = load_statistics(stats).meta
    assert meta["n_points"] == 128 and sorted(meta["category_names"]) == ["chair", "table"]
    assert meta["normalize_fpd"] == "none"
    # scoring 64-point clouds against them: a clear error
    rng = np.random.default_rng(0)
    np.save(tmp_path / "s.npy", (rng.random((4, 64, 3)) - 0.5).astype(np.float32))
    with pytest.raises(ValueError, match="128-point clouds"):
        evaluate(compose_eval([f"samples={tmp_path / 's.npy'}", f"refs={tmp_path / 's.npy'}", "metrics.jsd=false",
                               f"fpd.classifier_ckpt_path={cls_path}", f"fpd.stats={stats}"], tmp_path))


# ----------------------------------------------------------------------------- 13: pc3d-view


def test_view_index_is_per_stacked_file(tmp_path, capsys):
    from pc3d.cli import view

    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    np.save(a, rng.random((64, 3)).astype(np.float32))
    np.save(b, rng.random((64, 3)).astype(np.float32))
    stacked = tmp_path / "s.npy"
    np.save(stacked, rng.random((5, 64, 3)).astype(np.float32))
    out = tmp_path / "v.png"
    # two single-cloud files with --index 0,1: both shown (the index is for stacked files)
    assert view.main([str(a), str(b), str(stacked), "--index", "1,3", "--out", str(out), "--backend", "numpy",
                      "--size", "64"]) == 0
    assert "4 cloud(s)" in capsys.readouterr().out or out.is_file()
    seen = []
    orig = view._select

    def spy(n, spec, limit):
        seen.append((n, spec))
        return orig(n, spec, limit)

    view._select = spy
    try:
        assert view.main([str(a), str(b), str(stacked), "--index", "1,3", "--out", str(out), "--backend", "numpy",
                          "--size", "64", "--captions", "a,b,s1,s3"]) == 0
    finally:
        view._select = orig
    assert seen == [(1, None), (1, None), (5, "1,3")]


def test_view_colors_file_warns_for_a_file_without_colours(tmp_path, capsys):
    import open3d as o3d

    from pc3d.cli import view

    pts = np.random.default_rng(0).random((50, 3))
    ply = tmp_path / "plain.ply"
    o3d.io.write_point_cloud(str(ply), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)))
    assert view.main([str(ply), "--colors", "file", "--out", str(tmp_path / "p.png"), "--backend", "numpy",
                      "--size", "64"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and str(ply) in err and "no per-point colours" in err


# ----------------------------------------------------------------------------- progress of long evaluations


def test_pairwise_matrices_report_progress_without_changing_numbers():
    from pc3d.metrics.generative import evaluate_generation
    from pc3d.metrics.pairwise import distance_matrix

    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(5, 32, 3, generator=g), torch.rand(4, 32, 3, generator=g)
    calls = []
    for dist, kw in (("emd", {"emd_method": "approx"}), ("cd", {"backend": "torch"}), ("cd", {})):
        plain = distance_matrix(a, b, distance=dist, batch_size=3, **kw)
        calls.clear()
        seen = distance_matrix(a, b, distance=dist, batch_size=3, progress=lambda d, t: calls.append((d, t)), **kw)
        assert torch.equal(plain, seen)
        assert calls[-1] == (20, 20) and all(t == 20 for _, t in calls)
    labels = []
    base = evaluate_generation(a, b, distances=["emd"], emd_method="approx", emd_pruning=False)
    res = evaluate_generation(a, b, distances=["emd"], emd_method="approx", emd_pruning=False,
                              progress=lambda label, d, t: labels.append((label, d, t)))
    assert res == base
    assert {lab for lab, _, _ in labels} == {"emd samples x refs", "emd samples x samples", "emd refs x refs"}
    assert ("emd samples x samples", 10, 10) in labels
    # the default (pruned nearest-neighbour search, issue 18): one progress label, the same numbers
    labels.clear()
    pruned = evaluate_generation(a, b, distances=["emd"], emd_method="approx",
                                 progress=lambda label, d, t: labels.append((label, d, t)))
    assert pruned == base
    assert {lab for lab, _, _ in labels} == {"emd nearest neighbours"} and labels[-1][1] == labels[-1][2]


def test_eval_progress_lines_when_not_a_terminal():
    import io

    from pc3d.cli.eval import PairProgress

    buf = io.StringIO()
    bar = PairProgress(stream=buf, interval=3600.0)
    for d in range(1, 11):
        bar("emd samples x refs", d, 10)
    bar("emd refs x refs", 3, 6)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("pc3d-eval: emd samples x refs: 1/10 pairs")
    assert lines[1].startswith("pc3d-eval: emd samples x refs: 10/10 pairs (100%")
    assert lines[2].startswith("pc3d-eval: emd refs x refs: 3/6 pairs") and len(lines) == 3
    tty = io.StringIO()
    bar = PairProgress(stream=tty, tty=True)
    for d in (2, 6):
        bar("cd samples x refs", d, 6)
    assert "pc3d-eval cd samples x refs" in tty.getvalue()


@pytest.mark.parametrize("prog,command", [("pc3d-generate", "generate"), ("pc3d-reconstruct", "reconstruct")])
def test_data_keys_on_commands_that_read_no_data_say_why(prog, command, capsys):
    """Issue 15, defect 4: eval takes train's data.* keys; generate / reconstruct read no data split, and a
    data.* override says so (instead of Hydra's "Key 'data' is not in struct")."""
    from pc3d.cli._common import hydra_entry

    def never():
        raise AssertionError("Hydra must not run")

    for arg in ("data.root=/somewhere", "+data.n_points=2048"):
        with pytest.raises(SystemExit) as e:
            hydra_entry(prog, command, never, ["ckpt_path=x.ckpt", arg])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"{prog}: {arg.split('=')[0].lstrip('+')} is not a key of this command" in err
        assert "reads" in err and "pc3d-eval" in err
