"""3D-R2N2 renderings paired with PC15k clouds: pairing by id, swapped pairs, views, the DataModule."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pc3d.data import PC15kDataset
from pc3d.data.renderings import (
    ImageCloudDataModule,
    ImageCloudDataset,
    check_silhouettes,
    load_view,
    read_rendering_folder,
)
from pc3d.data.synthetic import ensure_generated

RENDER = "ShapeNetRendering"
PC = "ShapeNetCore.v2.PC15k"


@pytest.fixture(scope="module")
def multiview(tmp_path_factory) -> Path:
    """Built-in data with 3 views of 48 px, two categories (a few seconds)."""
    root = tmp_path_factory.mktemp("multiview") / "pc3d_synthetic"
    ensure_generated(
        root,
        progress=False,
        n_per_category=5,
        n_points=1200,
        n_views=3,
        image_size=48,
        seed=0,
        categories=["airplane", "mug"],
    )
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst


def clouds(root: Path, split: str = "train", **kw) -> PC15kDataset:
    return PC15kDataset(root / PC, split=split, n_points=256, sampling="fixed", **kw)


def test_items_pair_images_and_clouds_by_id(tiny_builtin):
    cl = clouds(tiny_builtin)
    ds = ImageCloudDataset(cl, tiny_builtin / RENDER, view="seeded")
    assert len(ds) == len(cl) and not ds.unpaired
    for i in range(len(ds)):
        item = ds[i]
        folder = tiny_builtin / RENDER / item["synset"] / item["model_id"] / "rendering"
        pngs, meta = read_rendering_folder(folder)
        assert meta.shape == (len(pngs), 5)
        # the image is that model's view, composited onto white
        rgba = np.asarray(Image.open(pngs[item["view"]]), dtype=np.float32) / 255
        expect = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert torch.allclose(item["image"], torch.from_numpy(expect.transpose(2, 0, 1)), atol=1e-6)
        # and the cloud is that model's cloud
        assert torch.equal(item["points"], cl[i]["points"])
        assert item["model_id"] == cl.model_ids[i]


def test_background_colour(tiny_builtin):
    cl = clouds(tiny_builtin)
    png = read_rendering_folder(tiny_builtin / RENDER / cl.synset_of_item[0] / cl.model_ids[0] / "rendering")[0][0]
    alpha = np.asarray(Image.open(png))[..., 3]
    black = load_view(png, background=(0, 0, 0))
    red = load_view(png, background=(1, 0, 0))
    empty = torch.from_numpy(alpha == 0)
    assert empty.any() and (~empty).any()
    assert torch.all(black[:, empty] == 0)
    assert torch.all(red[0, empty] == 1) and torch.all(red[1:, empty] == 0)
    assert torch.allclose(black[:, ~empty], red[:, ~empty])  # opaque pixels do not depend on it


def test_missing_or_renamed_rendering_folder_is_detected(tiny_builtin, tmp_path):
    root = _copy(tiny_builtin, tmp_path)
    cl = clouds(root)
    synset, mid = cl.synset_of_item[1], cl.model_ids[1]
    folder = root / RENDER / synset / mid
    folder.rename(folder.with_name("0" * 32))  # the rendering folder's id no longer matches the cloud
    with pytest.raises(ValueError, match=f"{synset}/{mid}: .*no rendering folder"):
        ImageCloudDataset(cl, root / RENDER)
    ds = ImageCloudDataset(cl, root / RENDER, missing="skip")
    assert len(ds) == len(cl) - 1
    assert len(ds.unpaired) == 1 and ds.unpaired[0].startswith(f"{synset}/{mid}:")
    assert mid not in [ds[i]["model_id"] for i in range(len(ds))]


def test_bad_metadata_and_listing_are_detected(tiny_builtin, tmp_path):
    root = _copy(tiny_builtin, tmp_path)
    cl = clouds(root)
    folder = root / RENDER / cl.synset_of_item[0] / cl.model_ids[0] / "rendering"
    meta = folder / "rendering_metadata.txt"
    meta.write_text(meta.read_text() + "10 20 0 0.9 25\n")  # one line more than views
    with pytest.raises(ValueError, match="2 metadata lines for 1 views"):
        ImageCloudDataset(cl, root / RENDER)
    meta.write_text("10 twenty 0 0.9 25\n")
    with pytest.raises(ValueError, match="line 1: expected 5 numbers"):
        read_rendering_folder(folder)
    meta.write_text("10 20 0 0.9 25\n")
    (folder / "renderings.txt").write_text("00.png\n07.png\n")
    with pytest.raises(FileNotFoundError, match="missing file"):
        read_rendering_folder(folder)


def test_swapped_pair_is_detected_by_the_silhouette_check(multiview, tmp_path):
    root = _copy(multiview, tmp_path)
    cl = clouds(root)
    ds = ImageCloudDataset(cl, root / RENDER)
    good = check_silhouettes(ds)
    assert not good["bad"], good["bad"]
    assert min(good["scores"].values()) > 0.9
    # swap the renderings of an airplane and a mug: ids still pair, the content does not
    a = next(i for i in range(len(cl)) if cl.synset_of_item[i] == cl.synsets[0])
    m = next(i for i in range(len(cl)) if cl.synset_of_item[i] == cl.synsets[1])
    fa = root / RENDER / cl.synset_of_item[a] / cl.model_ids[a] / "rendering"
    fm = root / RENDER / cl.synset_of_item[m] / cl.model_ids[m] / "rendering"
    tmp = fa.with_name("tmp")
    fa.rename(tmp)
    fm.rename(fa)
    tmp.rename(fm)
    swapped = check_silhouettes(ImageCloudDataset(cl, root / RENDER))
    bad = {b.split(":")[0] for b in swapped["bad"]}
    assert bad == {f"{cl.synset_of_item[a]}/{cl.model_ids[a]}", f"{cl.synset_of_item[m]}/{cl.model_ids[m]}"}


def test_views_random_in_train_fixed_by_seed_in_eval(multiview):
    cl = clouds(multiview)
    fixed = ImageCloudDataset(cl, multiview / RENDER, view="seeded", seed=0)
    again = ImageCloudDataset(cl, multiview / RENDER, view="seeded", seed=0)
    other = ImageCloudDataset(cl, multiview / RENDER, view="seeded", seed=1)
    views = [fixed[i]["view"] for i in range(len(fixed))]
    assert views == [fixed[i]["view"] for i in range(len(fixed))] == [again[i]["view"] for i in range(len(again))]
    assert views != [other[i]["view"] for i in range(len(other))]
    rand = ImageCloudDataset(cl, multiview / RENDER, view="random")
    torch.manual_seed(0)
    drawn = {rand[0]["view"] for _ in range(30)}
    assert drawn == {0, 1, 2}
    item = ImageCloudDataset(cl, multiview / RENDER, view=2)[3]
    assert item["view"] == 2
    with pytest.raises(ValueError, match="view must be"):
        ImageCloudDataset(cl, multiview / RENDER, view="all")
    assert fixed.variant(sampling="fixed").view == "seeded"
    assert rand.variant(sampling="fixed").view == "seeded"


def test_datamodule_batches(multiview):
    dm = ImageCloudDataModule(
        synthetic={
            "root": str(multiview),
            "n_per_category": 5,
            "n_points": 1200,
            "n_views": 3,
            "image_size": 48,
            "seed": 0,
            "categories": ["airplane", "mug"],
        },
        n_points=128,
        batch_size=4,
        image_size=32,
        in_memory=True,
    )
    dm.prepare_data()
    dm.setup("fit")
    assert dm.render_root == multiview / RENDER
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["points"].shape == (4, 128, 3)
    assert batch["view"].shape == (4,) and batch["category"].shape == (4,)
    assert float(batch["image"].min()) >= 0 and float(batch["image"].max()) <= 1
    a = next(iter(dm.probe_dataloader("test")))
    b = next(iter(dm.probe_dataloader("test")))
    assert torch.equal(a["view"], b["view"]) and torch.equal(a["image"], b["image"])
    assert dm.num_classes == 2 and len(dm.synsets) == 2
    with pytest.raises(ValueError, match="render_root"):
        ImageCloudDataModule(root=str(multiview / PC))
