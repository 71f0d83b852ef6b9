"""Issue 15, item 6: mesh folders with renderings (skip_bad while rendering, the image model on
your own meshes, rendering folders named by the model id without the suffix)."""

from __future__ import annotations

import pytest
import torch

from pc3d.data import PointCloudDataModule
from pc3d.data.meshes import MeshFolderDataset, render_ids
from pc3d.data.renderings import ImageCloudDataModule, mesh_datamodule
from tests.data.layouts import write_mesh_folder
from tests.helpers import compose_train

OPTS = {"surface_points": 100, "render_views": 2, "image_size": 16}


def _dm(root, **kw):
    kw = {"n_points": 16, "batch_size": 2, "eval_batch_size": 8, "layout": "meshes", "drop_last": False,
          "num_workers": 0, **kw}
    return PointCloudDataModule(root, **kw)


def test_skip_bad_mesh_does_not_stop_rendering(tmp_path):
    root = tmp_path / "assets"
    write_mesh_folder(root, {"crate": [".obj", ".off", ".ply"]})
    bad = root / "crate" / "broken.ply"
    bad.write_text("this is not a ply file\n")
    dm = _dm(root, skip_bad=True, layout_options=OPTS)
    dm.prepare_data()  # crashed in render_meshes before the fix
    rendered = sorted(p.name for p in (root / ".pc3d_cache" / "ShapeNetRendering" / "crate").iterdir())
    assert rendered == ["crate00", "crate01", "crate02"]
    dm.setup()
    assert [line.split(":")[0] for v in dm.bad_files.values() for line in v] == [str(bad)]
    # the report lists the bad mesh once, rendering included
    report = MeshFolderDataset(root, split="all", n_points=1, **OPTS).prepare()
    assert [line.split(":")[0] for line in report["bad_files"]] == [str(bad)]
    assert report["cached"] == 3
    # without skip_bad the bad file is still an error naming it
    with pytest.raises(ValueError, match="broken.ply"):
        _dm(root, layout_options=OPTS).prepare_data()


def test_render_folders_drop_the_suffix_unless_two_files_share_a_stem():
    assert render_ids(["a.obj", "sub__b.PLY", "c.glb"]) == {"a.obj": "a", "sub__b.PLY": "sub__b", "c.glb": "c"}
    assert render_ids(["a.obj", "a.ply", "b.stl"]) == {"a.obj": "a.obj", "a.ply": "a.ply", "b.stl": "b"}


def test_image_datamodule_on_a_mesh_folder(tmp_path):
    root = tmp_path / "assets"
    write_mesh_folder(root, {"crate": [".obj", ".off", ".ply", ".glb", ".stl"] * 2, "pillar": [".obj", ".glb"] * 3})
    dm = mesh_datamodule(root=root, layout="meshes", n_points=16, batch_size=2, drop_last=False, num_workers=0,
                         layout_options={"surface_points": 100, "image_size": 32, "render_views": None},
                         image_size=24)
    assert isinstance(dm, ImageCloudDataModule)
    dm.prepare_data()
    render_root = root / ".pc3d_cache" / "ShapeNetRendering"
    assert dm.render_root == render_root
    folder = render_root / "crate" / "crate00" / "rendering"
    assert len((folder / "renderings.txt").read_text().split()) == 24  # the default view count
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 24, 24) and batch["points"].shape == (2, 16, 3)
    assert batch["image"].min() >= 0 and batch["image"].max() <= 1 and (batch["image"] < 0.99).any()
    assert {p.parent.name for _, p in dm.train_set.pairs} <= {m.rsplit(".", 1)[0] for m in dm.train_set.model_ids}
    # no image_size: the plain point-cloud module, as before
    plain = mesh_datamodule(root=root, layout="meshes", n_points=16, layout_options={"surface_points": 100})
    assert type(plain) is PointCloudDataModule
    with pytest.raises(ValueError, match="image_size"):
        mesh_datamodule(root=root, layout="meshes", background="black")


def test_img2cloud_experiment_with_data_meshes_trains(tmp_path):
    """``pc3d-train experiment=img2cloud data=meshes data.root=...`` (failed: unexpected 'image_size')."""
    from pc3d.cli.train import train

    root = tmp_path / "assets"
    write_mesh_folder(root, {"crate": [".obj", ".off"] * 5, "pillar": [".glb", ".stl"] * 5})
    cfg = compose_train(["experiment=img2cloud", "data=meshes", f"data.root={root}", "model.ae_ckpt_path=null",
                         "model.latent_weight=0", "model.latent_dim=8", "model.decoder.features=[8,16,3]",
                         "model.decoder.degrees=[4,16]", "model.decoder.support=2", "model.emd_weight=0",
                         "data.n_points=64", "data.image_size=32", "model.encoder.input_size=32",
                         "data.num_workers=0", "data.batch_size=4", "data.layout_options.surface_points=200",
                         "data.layout_options.render_views=2", "data.layout_options.image_size=32",
                         "trainer.accelerator=cpu", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                         "trainer.limit_val_batches=1", "trainer.num_sanity_val_steps=0", "test=false",
                         "callbacks.progress_bar=null", "callbacks.model_summary=null"], tmp_path / "run")
    out = train(cfg)
    assert (root / ".pc3d_cache" / "ShapeNetRendering" / "crate" / "crate00" / "rendering" / "01.png").is_file()
    assert torch.load(out["last_ckpt"], map_location="cpu", weights_only=False)["state_dict"]


def test_inspect_keeps_healthy_classes_when_one_class_is_all_bad(tmp_path, capsys):
    """Issue 15, item 7: every .off of one ModelNet40 class is garbage."""
    import json

    from pc3d.cli.data import main
    from tests.data.layouts import write_modelnet40

    root = tmp_path / "mn"
    write_modelnet40(root, {"airplane": {"train": 4, "test": 2}, "chair": {"train": 4, "test": 2}})
    garbage = sorted((root / "chair").rglob("*.off"))
    for p in garbage:
        p.write_text("garbage\n")
    assert main(["inspect", str(root), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["counts"]["airplane"] == {"train": 3, "val": 1, "test": 2}
    assert report["counts"]["chair"] == {"train": 0, "val": 0, "test": 0}
    assert sorted(line.split(":")[0] for line in report["bad_files"]) == sorted(str(p) for p in garbage)
    assert all("chair" in line and "see bad_files" in line for line in report["problems"])
    # the text report shows the healthy class's row too
    assert main(["inspect", str(root)]) == 1
    text = capsys.readouterr().out
    assert "airplane" in text and f"problems: {len(report['problems']) + len(garbage)}" in text
