"""Bit-exact resume (issue 14): a run killed after a checkpoint and resumed with
``Trainer.fit(ckpt_path=...)`` trains on the same batches and ends with the same parameters and
optimizer states, bit for bit, as an uninterrupted run. Shuffled train loader, random point
subsets, dropout and a random loss term; num_workers 0 and 2; checkpoints mid-epoch, at the last
batch of an epoch and at the end of an epoch's validation; and a tiny tree-GAN (noise drawn from
the global RNG, critic/generator step counters)."""

from __future__ import annotations

import copy
import hashlib
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from pc3d.callbacks import RNGStateCheckpoint
from pc3d.data import PointCloudDataModule
from pc3d.data.sampling import ResumableBatchSampler
from tests.helpers import TINY_SYNTHETIC

BATCHES_PER_EPOCH = 6  # tiny built-in train split: 24 shapes, batch_size 4


class TinyDropoutNet(L.LightningModule):
    """Per-point MLP with dropout; the loss also draws from the global RNG."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))

    def training_step(self, batch, batch_idx):
        x = batch["points"]
        return ((self.net(x) - x) ** 2).mean() + 1e-3 * torch.randn(()).abs()

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", ((self.net(batch["points"]) - batch["points"]) ** 2).mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class BatchHashes(Callback):
    """Record a hash of every training batch (points and model ids), by global step."""

    def __init__(self) -> None:
        self.hashes: dict[int, str] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        data = batch["points"].numpy().tobytes() + "|".join(batch["model_id"]).encode()
        self.hashes[trainer.global_step] = hashlib.sha256(data).hexdigest()


class SaveAt(Callback):
    """Save ``step<S>.ckpt`` at the end of the training batches that reach the given global steps
    and ``epoch<E>.ckpt`` at the end of every epoch (validation end, or train epoch end without
    validation)."""

    def __init__(self, steps, dirpath: Path) -> None:
        self.steps, self.dirpath = set(steps), Path(dirpath)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            trainer.save_checkpoint(self.dirpath / f"step{trainer.global_step}.ckpt")

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            trainer.save_checkpoint(self.dirpath / f"epoch{trainer.current_epoch}.ckpt")

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.limit_val_batches == 0:
            trainer.save_checkpoint(self.dirpath / f"epoch{trainer.current_epoch}.ckpt")


def fit(root: Path, make_model, *, workers: int, out: Path, ckpt=None, save_steps=(), seed=0, n_points=64,
        epochs=2, val=True, step_every=1):
    L.seed_everything(seed, workers=True)
    dm = PointCloudDataModule(root=None, synthetic={"root": str(root), **TINY_SYNTHETIC}, n_points=n_points,
                              batch_size=4, num_workers=workers, in_memory=True)
    model, hashes = make_model(), BatchHashes()
    trainer = L.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=2 if val else 0,
        limit_val_batches=2 if val else 0, callbacks=[RNGStateCheckpoint(), hashes, SaveAt(save_steps, out)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, datamodule=dm, ckpt_path=ckpt)
    opt = trainer.optimizers
    return {
        "hashes": {s // step_every: h for s, h in hashes.hashes.items()},
        "params": {k: v.clone() for k, v in model.state_dict().items()},
        "optim": [copy.deepcopy(o.state_dict()) for o in opt],
        "steps": trainer.global_step,
        "optim_steps": trainer.fit_loop.epoch_loop.manual_optimization.optim_step_progress.total.completed,
    }


def assert_bitwise_equal(full: dict, resumed: dict) -> None:
    assert resumed["hashes"], "the resumed run trained on no batch"
    assert {s: full["hashes"][s] for s in resumed["hashes"]} == resumed["hashes"]
    assert full["params"].keys() == resumed["params"].keys()
    for k in full["params"]:
        assert torch.equal(full["params"][k], resumed["params"][k]), k
    assert len(full["optim"]) == len(resumed["optim"])
    for a, b in zip(full["optim"], resumed["optim"], strict=True):
        assert a["state"].keys() == b["state"].keys()
        for p in a["state"]:
            for name in a["state"][p]:
                assert torch.equal(torch.as_tensor(a["state"][p][name]), torch.as_tensor(b["state"][p][name])), name
    assert (full["steps"], full["optim_steps"]) == (resumed["steps"], resumed["optim_steps"])


def test_batch_sampler_matches_random_sampler_order_and_resumes():
    from torch.utils.data import BatchSampler, RandomSampler

    torch.manual_seed(3)
    expected = list(BatchSampler(RandomSampler(range(23)), 4, drop_last=True))
    after = torch.get_rng_state()
    torch.manual_seed(3)
    sampler = ResumableBatchSampler(23, 4, drop_last=True)
    assert [list(b) for b in sampler] == expected and len(sampler) == 5
    assert torch.equal(torch.get_rng_state(), after)  # the same single draw from the global RNG
    sampler.resume(sampler.epoch_seed, 3)
    assert [list(b) for b in sampler] == expected[3:]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_is_bitwise_equal_to_an_uninterrupted_run(tiny_builtin, tmp_path, workers):
    mid, last_batch = 3, BATCHES_PER_EPOCH
    full = fit(tiny_builtin, TinyDropoutNet, workers=workers, out=tmp_path, save_steps=(mid, last_batch))
    assert full["steps"] == 2 * BATCHES_PER_EPOCH
    again = fit(tiny_builtin, TinyDropoutNet, workers=workers, out=tmp_path / "unused")
    assert_bitwise_equal(full, again)
    for name in (f"step{mid}", f"step{last_batch}", "epoch0"):
        resumed = fit(tiny_builtin, TinyDropoutNet, workers=workers, out=tmp_path / "unused",
                      ckpt=tmp_path / f"{name}.ckpt", seed=123)
        assert_bitwise_equal(full, resumed)


def test_tree_gan_resume_is_bitwise_equal(tiny_builtin, tmp_path):
    from tests.models.test_treegan import N, tiny_gan

    def make():
        return tiny_gan(n_critic=2)

    per_iter = 3  # a training step is n_critic + 1 optimizer steps
    kw = {"workers": 0, "n_points": N, "val": False, "step_every": per_iter}
    full = fit(tiny_builtin, make, out=tmp_path, save_steps=(2 * per_iter,), **kw)
    for name in ("step6", "epoch0"):
        resumed = fit(tiny_builtin, make, out=tmp_path / "unused", ckpt=tmp_path / f"{name}.ckpt", seed=7, **kw)
        assert_bitwise_equal(full, resumed)
