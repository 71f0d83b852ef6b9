"""PointCloudDataModule on small numpy fixtures (and one tiny built-in set)."""

from __future__ import annotations

import importlib.util

import lightning
import numpy as np
import pytest
import torch

from pc3d.data import PC15K_DIRNAME, PointCloudDataModule, RandomRotateY, collate
from tests.helpers import write_pc15k

NAME_MAP = {"airplane": "90000001", "chair": "90000002"}
SPEC = {"90000001": {"train": 6, "val": 3, "test": 2}, "90000002": {"train": 5, "val": 2, "test": 3}}


@pytest.fixture
def root(tmp_path):
    r = tmp_path / PC15K_DIRNAME
    write_pc15k(r, SPEC, name_map=NAME_MAP)
    (tmp_path / "pc3d_synthetic.json").write_text("{}")  # built-in ids need a complete set
    return r


def make_dm(root, **kw):
    kw = {"n_points": 16, "batch_size": 4, "eval_batch_size": 4, **kw}
    return PointCloudDataModule(root, **kw)


def check_batch(batch, b, n=16):
    assert batch["points"].shape == (b, n, 3) and batch["points"].dtype == torch.float32
    assert batch["category"].shape == (b,) and batch["category"].dtype == torch.int64
    assert batch["index"].shape == (b,) and batch["index"].dtype == torch.int64
    assert batch["shift"].shape == (b, 1, 3) and batch["shift"].dtype == torch.float32
    assert batch["scale"].shape == (b, 1, 1) and batch["scale"].dtype == torch.float32
    assert isinstance(batch["synset"], list) and len(batch["synset"]) == b
    assert isinstance(batch["model_id"], list) and all(isinstance(m, str) for m in batch["model_id"])


def test_setup_and_loaders(root):
    dm = make_dm(root, normalize="unit_sphere")
    dm.setup("fit")
    assert dm.num_classes == 2 and dm.synsets == ["90000001", "90000002"] and dm.names == ["airplane", "chair"]
    assert dm.test_set is None
    train = list(dm.train_dataloader())
    assert len(train) == 11 // 4  # drop_last
    for batch in train:
        check_batch(batch, 4)
    val = list(dm.val_dataloader())
    assert [len(b["synset"]) for b in val] == [4, 1]  # no drop_last for eval
    check_batch(val[0], 4)
    assert val[0]["index"].tolist() == [0, 1, 2, 3]  # no shuffle
    dm.setup("test")
    test = list(dm.test_dataloader())
    assert sum(len(b["synset"]) for b in test) == 5
    for batch in (*train, *val, *test):
        for syn, cat in zip(batch["synset"], batch["category"].tolist(), strict=True):
            assert dm.synsets[cat] == syn
    # Val is fixed: two passes give the same points.
    assert torch.equal(next(iter(dm.val_dataloader()))["points"], val[0]["points"])
    dm2 = make_dm(root, drop_last=False)
    dm2.setup("fit")
    assert len(dm2.train_dataloader()) == 3


def test_labels_follow_train_synsets(root):
    dm = make_dm(root, categories=["chair", "airplane"])
    dm.setup()
    assert dm.val_set.synsets == dm.test_set.synsets == dm.train_set.synsets == ["90000001", "90000002"]
    dm = make_dm(root, categories="chair")
    dm.setup("test")
    assert dm.num_classes == 1 and dm.val_set is None and len(dm.test_set) == 3


def test_train_loader_with_workers_differs_per_epoch_and_is_reproducible(root):
    dm = make_dm(root, num_workers=2, batch_size=11)
    dm.setup("fit")
    assert dm.persistent_workers

    def epoch(loader):
        batch = next(iter(loader))
        order = batch["index"].argsort()
        return batch["points"][order]

    lightning.seed_everything(7, workers=True, verbose=False)
    loader = dm.train_dataloader()
    e1, e2 = epoch(loader), epoch(loader)
    assert not torch.equal(e1, e2)
    lightning.seed_everything(7, workers=True, verbose=False)
    assert torch.equal(epoch(dm.train_dataloader()), e1)


def test_probe_dataloader_is_fixed_and_unaugmented(root):
    dm = make_dm(root, train_transform=RandomRotateY())
    dm.setup("fit")
    a = list(dm.probe_dataloader("train"))
    b = list(dm.probe_dataloader("train"))
    assert [len(x["synset"]) for x in a] == [4, 4, 3]
    assert torch.cat([x["index"] for x in a]).tolist() == list(range(11))
    assert all(torch.equal(x["points"], y["points"]) for x, y in zip(a, b, strict=True))
    assert dm.train_set.transform is not None and dm.probe_dataloader("train").dataset.transform is None
    raw = a[0]["points"] * a[0]["scale"] + a[0]["shift"]
    first = np.load(dm.train_set.files[0])
    assert (raw[0][:, None, :] == torch.from_numpy(first)[None]).all(-1).any(1).all()  # not rotated
    assert len(list(dm.probe_dataloader("test", batch_size=2))) == 3
    with pytest.raises(ValueError, match="split must be one of"):
        dm.probe_dataloader("holdout")


def test_global_stats_state_dict_round_trip(root, tmp_path):
    dm = make_dm(root, normalize="global")
    dm.setup()
    stats = dm.global_stats
    train = np.concatenate([np.load(p) for p in dm.train_set.files]).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], train.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["std"], train.reshape(-1).std(), rtol=1e-9)
    for ds in (dm.val_set, dm.test_set):
        np.testing.assert_allclose(ds[0]["shift"].numpy(), [stats["mean"]], rtol=1e-6)

    state = dm.state_dict()
    path = tmp_path / "state.pt"
    torch.save(state, path)
    loaded = torch.load(path, weights_only=True)  # plain types only
    assert loaded["global_stats"]["std"] == pytest.approx(stats["std"])

    # A fresh module restores the checkpoint's stats even after its own setup.
    loaded["global_stats"] = {"mean": [1.0, 2.0, 3.0], "std": 4.0}
    dm2 = make_dm(root, normalize="global")
    dm2.setup()
    dm2.load_state_dict(loaded)
    assert dm2.global_stats["mean"] == [1.0, 2.0, 3.0]
    for ds in (dm2.train_set, dm2.val_set, dm2.test_set):
        item = ds[0]
        assert item["shift"].tolist() == [[1.0, 2.0, 3.0]] and item["scale"].item() == 4.0
    probe = next(iter(dm2.probe_dataloader("val")))
    assert probe["scale"].flatten().tolist() == [4.0] * 4

    # Stats restored before setup are used instead of being recomputed.
    dm3 = make_dm(root, normalize="global")
    dm3.load_state_dict(loaded)
    dm3.setup("fit")
    assert dm3.train_set.global_stats["std"] == 4.0
    with pytest.warns(UserWarning, match="category labels may not match"):
        dm3.load_state_dict({"synsets": ["90000002"]})


def test_checkpoint_holds_plain_datamodule_state(root, tmp_path):
    class Tiny(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):
            return self.lin(batch["points"]).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = make_dm(root, normalize="global")
    trainer = lightning.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), datamodule=dm)
    ckpt = tmp_path / "x.ckpt"
    trainer.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["PointCloudDataModule"]["global_stats"]["mean"] == dm.global_stats["mean"]
    assert state["datamodule_hyper_parameters"]["normalize"] == "global"


def test_collate():
    items = [
        {"points": torch.zeros(5, 3), "shift": torch.zeros(1, 3), "scale": torch.ones(1, 1), "index": i, "synset": "a"}
        for i in range(3)
    ]
    batch = collate(items)
    assert batch["points"].shape == (3, 5, 3) and batch["shift"].shape == (3, 1, 3)
    assert batch["scale"].shape == (3, 1, 1) and batch["index"].tolist() == [0, 1, 2]
    assert batch["synset"] == ["a", "a", "a"]
    with pytest.raises(ValueError, match="different keys"):
        collate([{"a": 1}, {"b": 1}])


def test_argument_errors(root):
    with pytest.raises(ValueError, match="pass root"):
        PointCloudDataModule()
    with pytest.raises(ValueError, match="must include 'root'"):
        PointCloudDataModule(synthetic={"n_per_category": 3})
    dm = PointCloudDataModule(synthetic={"root": str(root.parent), "n_per_category": 3})
    assert dm.root == root and dm.hparams["synthetic"] == {"root": str(root.parent), "n_per_category": 3}
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        PointCloudDataModule(root, batch_size=0)
    dm = make_dm(root, batch_size=64)
    dm.setup("fit")
    with pytest.raises(ValueError, match="fewer than batch_size=64"):
        dm.train_dataloader()
    with pytest.raises(RuntimeError, match="setup"):
        _ = make_dm(root).num_classes
    with pytest.raises(FileNotFoundError):
        make_dm(root.parent / "missing").setup("fit")


@pytest.mark.skipif(importlib.util.find_spec("pc3d.data.synthetic") is None, reason="pc3d.data.synthetic missing")
def test_builtin_synthetic_set(tmp_path):
    synthetic = {
        "root": str(tmp_path / "builtin"),
        "n_per_category": 5,
        "n_points": 2000,
        "n_views": 1,
        "image_size": 32,
        "categories": ["chair", "table"],
        "progress": False,
        "workers": 1,  # in-process: a spawn pool costs ~10 s of start-up here
    }
    dm = PointCloudDataModule(synthetic=synthetic, n_points=256, batch_size=2, normalize="global")
    dm.prepare_data()
    dm.setup()
    assert dm.names == ["chair", "table"] and dm.num_classes == 2
    check_batch(next(iter(dm.train_dataloader())), 2, 256)
    assert len(dm.val_set) >= 1
    check_batch(next(iter(dm.test_dataloader())), min(2, len(dm.test_set)), 256)
    assert dm.train_set.validate() == []
    dm.prepare_data()  # already generated: a no-op
