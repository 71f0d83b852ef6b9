"""NaN guards (pc3d.callbacks.nan_guard): every system, poisoned inputs (NaN, inf), huge learning rates,
checkpoints that never hold non-finite tensors, and the ``nan_policy`` key of pc3d-train."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from pc3d.callbacks.nan_guard import FiniteModelCheckpoint, NaNGuard, NonFiniteError, nonfinite_tensors
from pc3d.models import Autoencoder, Image2Cloud, PointCloudClassifier, TreeGAN
from pc3d.nn import FCDecoder, PointCritic, PointNetClassifier, PointNetEncoder, ResNetImageEncoder, TreeGenerator

N, LATENT, S = 16, 8, 32
N_BATCHES, BS, POISONED = 4, 2, 1  # 4 batches of 2 clouds; batch 1 holds one NaN / inf value
N_CRITIC = 2


# ---------------------------------------------------------------------------- tiny systems
def _ae(lr=1e-3, opt=torch.optim.Adam):
    return Autoencoder(PointNetEncoder(in_dim=3, hidden=(8, 16), latent_dim=LATENT),
                       FCDecoder(latent_dim=LATENT, n_points=N, hidden=(16,)), latent_dim=LATENT,
                       optimizer=lambda p: opt(p, lr=lr))


def _cls(lr=1e-3, opt=torch.optim.Adam):
    return PointCloudClassifier(PointNetClassifier(k=2), optimizer=lambda p: opt(p, lr=lr))


def _treegan(lr=1e-4, opt=torch.optim.Adam):
    return TreeGAN(TreeGenerator([LATENT, 16, 8, 3], [2, 2, 4], support=2), PointCritic(conv=(8, 16), head=(16, 8)),
                   latent_dim=LATENT, n_critic=N_CRITIC, eval_samples=0, n_fixed_samples=2,
                   optimizer_g=lambda p: opt(p, lr=lr), optimizer_d=lambda p: opt(p, lr=lr))


def _lgan(tmp_path: Path, lr=1e-4, opt=torch.optim.Adam):
    from tests.models.test_lgan import lgan_config, write_ae_ckpt

    model = instantiate(lgan_config(write_ae_ckpt(tmp_path, "fc"), n_critic=N_CRITIC, eval_samples=0))
    model.optimizer_g_factory = model.optimizer_d_factory = lambda p: opt(p, lr=lr)
    return model


def _img2cloud(lr=1e-3, opt=torch.optim.Adam):
    return Image2Cloud(ResNetImageEncoder("resnet18", latent_dim=LATENT, input_size=S),
                       FCDecoder(latent_dim=LATENT, n_points=N, hidden=(16,)), latent_dim=LATENT,
                       latent_weight=0.0, adv_weight=0.1, critic=PointCritic(conv=(8, 16), head=(16, 8)),
                       n_critic=N_CRITIC, optimizer=lambda p: opt(p, lr=lr), optimizer_d=lambda p: opt(p, lr=lr))


# name -> (build(tmp_path, lr, opt), optimizer steps per batch, the input key poisoned)
SYSTEMS = {
    "autoencoder": (lambda tmp, **kw: _ae(**kw), 1, "points"),
    "classifier": (lambda tmp, **kw: _cls(**kw), 1, "points"),
    "treegan": (lambda tmp, **kw: _treegan(**kw), N_CRITIC + 1, "points"),
    "lgan": (lambda tmp, **kw: _lgan(tmp, **kw), N_CRITIC + 1, "points"),
    "image2cloud": (lambda tmp, **kw: _img2cloud(**kw), N_CRITIC + 1, "image"),
}


def _loader(poison_key: str | None = None, value: float = float("nan"), n_batches: int = N_BATCHES) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    items = [{"points": torch.randn(N, 3, generator=g) * 0.3, "image": torch.rand(3, S, S, generator=g),
              "category": i % 2} for i in range(n_batches * BS)]
    if poison_key is not None:
        items[POISONED * BS + 1][poison_key].view(-1)[5] = value
    return DataLoader(items, batch_size=BS, shuffle=False)


def _fit(model, loader, tmp_path: Path, policy: str, **kw):
    """Fit one epoch with a NaNGuard and a FiniteModelCheckpoint writing last.ckpt after every batch."""
    guard = NaNGuard(policy)
    ckpt = FiniteModelCheckpoint(dirpath=tmp_path / "ckpt", filename="last", monitor=None, save_top_k=1,
                                 every_n_train_steps=1, enable_version_counter=False)
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=kw.pop("max_epochs", 1), logger=False,
                        callbacks=[guard, ckpt, *kw.pop("callbacks", [])], enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, **kw)
    trainer.fit(model, train_dataloaders=loader)
    return trainer, guard


def _assert_finite_checkpoints(folder: Path) -> int:
    """Every checkpoint file in ``folder`` holds finite weights and optimizer states; returns how many."""
    from pc3d.callbacks.nan_guard import _checkpoint_tensors

    files = sorted(folder.glob("*.ckpt")) if folder.is_dir() else []
    for f in files:
        bad, n = nonfinite_tensors(_checkpoint_tensors(torch.load(f, map_location="cpu", weights_only=False)))
        assert n > 0 and not bad, (f, bad)
    return len(files)


def _assert_finite_parameters(model) -> None:
    bad, _ = nonfinite_tensors(model.state_dict().items())
    assert not bad, bad


# ---------------------------------------------------------------------------- poisoned inputs
@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_raise_names_the_step_and_the_input_and_keeps_finite_checkpoints(name, value, tmp_path):
    build, _, key = SYSTEMS[name]
    torch.manual_seed(0)
    model = build(tmp_path)
    with pytest.raises(NonFiniteError) as err:
        _fit(model, _loader(key, value), tmp_path, "raise")
    msg = str(err.value)
    kind = "1 NaN and 0 inf" if value != value else "0 NaN and 1 inf"
    assert "non-finite input at epoch 0, global step " in msg and f"batch {POISONED}:" in msg, msg
    assert f"batch['{key}'] has {kind}" in msg, msg
    assert _assert_finite_checkpoints(tmp_path / "ckpt") == 1  # last.ckpt of batch 0, untouched
    _assert_finite_parameters(model)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_skip_counts_every_skipped_step_and_keeps_parameters_finite(name, value, tmp_path):
    build, steps_per_batch, key = SYSTEMS[name]
    torch.manual_seed(0)
    model = build(tmp_path)
    trainer, guard = _fit(model, _loader(key, value), tmp_path, "skip")
    _assert_finite_parameters(model)
    assert guard.skipped_steps == steps_per_batch  # one poisoned batch: all its optimizer steps
    assert float(trainer.callback_metrics["train/skipped_steps"]) == steps_per_batch
    # the skipped batch applied no update; Lightning still counts the (empty) step of an automatic-optimization
    # batch in global_step, a manual-optimization system took none
    assert trainer.global_step == (N_BATCHES if model.automatic_optimization else (N_BATCHES - 1) * steps_per_batch)
    assert _assert_finite_checkpoints(tmp_path / "ckpt") == 1


def test_skip_leaves_the_model_as_if_the_batch_were_not_there(tmp_path):
    """Autoencoder: skipping the poisoned batch equals training on the other batches (same weights, same BN stats)."""
    torch.manual_seed(0)
    skipped = _ae()
    torch.manual_seed(0)
    reference = _ae()
    _fit(skipped, _loader("points"), tmp_path / "a", "skip")
    kept = [b for i, b in enumerate(_loader()) if i != POISONED]
    _fit(reference, DataLoader(kept, batch_size=None), tmp_path / "b", "skip")
    for (k, a), (_, b) in zip(skipped.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_finite_data_trains_bit_identically_with_the_guard(tmp_path):
    def run(callbacks):
        torch.manual_seed(0)
        model = _treegan()
        L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                  callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                  limit_val_batches=0).fit(model, _loader())
        return model.state_dict()

    plain, guarded = run([]), run([NaNGuard("raise")])
    for k in plain:
        assert torch.equal(plain[k], guarded[k]), k


# ---------------------------------------------------------------------------- losses, gradients, parameters
class _PoisonLoss(L.Callback):
    """Turn the first parameter of ``module`` to NaN before batch ``at`` (finite inputs, non-finite loss)."""

    def __init__(self, at: int, module: str) -> None:
        self.at, self.module = at, module

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.at:
            with torch.no_grad():
                next(getattr(pl_module, self.module).parameters()).view(-1)[0] = float("nan")


def test_raise_names_the_loss_of_the_critic_and_the_parameters(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(NonFiniteError) as err:
        _fit(_treegan(), _loader(), tmp_path, "raise", callbacks=[_PoisonLoss(2, "critic")])
    msg = str(err.value)
    assert "non-finite loss of optimizer 1 (critic)" in msg and "epoch 0" in msg and "batch 2" in msg, msg
    assert "non-finite gradients of" in msg and "critic." in msg, msg
    assert _assert_finite_checkpoints(tmp_path / "ckpt") == 1


class _Overflowing(torch.optim.SGD):
    """SGD whose update overflows: finite gradients, +-inf weights after every step."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.mul_(3e38).mul_(3e38)
        return loss


def test_parameters_that_overflow_raise_and_are_never_saved(tmp_path, caplog):
    torch.manual_seed(0)
    with pytest.raises(NonFiniteError, match=r"parameters became non-finite .* global step 1, batch 0"):
        _fit(_ae(opt=_Overflowing), _loader(), tmp_path, "raise")
    assert _assert_finite_checkpoints(tmp_path / "ckpt") == 0
    # skip cannot undo the update: it says so, and the checkpoint callback keeps the previous file (none here)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="pc3d.nan_guard"):
        _fit(_ae(opt=_Overflowing), _loader(n_batches=1), tmp_path / "skip", "skip")
    assert "cannot undo it" in caplog.text
    assert "FiniteModelCheckpoint: not writing" in caplog.text and "last.ckpt" in caplog.text
    assert _assert_finite_checkpoints(tmp_path / "skip" / "ckpt") == 0


class _BreakWeights(L.Callback):
    """After batch ``at``, make a weight NaN behind the optimizer's back (as an overflow would)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == self.at:
            with torch.no_grad():
                next(pl_module.parameters()).view(-1)[0] = float("nan")


def test_checkpoint_callback_keeps_the_previous_file_and_says_so(tmp_path, caplog):
    torch.manual_seed(0)
    model = _ae()
    with caplog.at_level(logging.WARNING, logger="pc3d.nan_guard"):
        trainer, _ = _fit(model, _loader(), tmp_path, "skip", callbacks=[_BreakWeights(N_BATCHES - 1)])
    last = tmp_path / "ckpt" / "last.ckpt"
    assert f"not writing {last}" in caplog.text and "the previous file is kept" in caplog.text
    # written after batch N_BATCHES - 2, then kept (the saves after the last batch and at epoch end were refused)
    assert torch.load(last, weights_only=False)["global_step"] == N_BATCHES - 1
    _assert_finite_checkpoints(tmp_path / "ckpt")
    # any other writer is refused before the file is touched
    with pytest.raises(NonFiniteError, match="refusing to save a checkpoint"):
        trainer.save_checkpoint(tmp_path / "ckpt" / "manual.ckpt")
    assert not (tmp_path / "ckpt" / "manual.ckpt").exists()


# ---------------------------------------------------------------------------- huge learning rates
@pytest.mark.parametrize("policy", ["raise", "skip"])
@pytest.mark.parametrize("name", sorted(SYSTEMS))
def test_huge_learning_rate_never_writes_a_non_finite_checkpoint(name, policy, tmp_path):
    build, _, _ = SYSTEMS[name]
    torch.manual_seed(0)
    model = build(tmp_path, lr=1e30)
    finished = False
    try:
        _fit(model, _loader(n_batches=6), tmp_path, policy, max_epochs=2)
        finished = True
    except NonFiniteError as e:
        assert policy == "raise", e
    except ValueError as e:  # an op refusing an overflowed cloud (chamfer_distance), with the step in a note
        assert "NaNGuard: raised while training at epoch" in "\n".join(getattr(e, "__notes__", [])), e
    _assert_finite_checkpoints(tmp_path / "ckpt")
    if finished:
        assert policy == "skip"
        assert nonfinite_tensors(model.named_buffers())[0] == []  # BatchNorm statistics put back



# ---------------------------------------------------------------------------- configuration
def test_policy_is_checked():
    with pytest.raises(ValueError, match="nan_policy"):
        NaNGuard("ignore")


@pytest.mark.parametrize("overrides, policy", [([], "raise"), (["nan_policy=skip"], "skip")])
def test_pc3d_train_wires_nan_policy(overrides, policy, tmp_path):
    from pc3d.cli._common import instantiate_group
    from tests.helpers import compose_train

    cfg = compose_train(overrides, tmp_path)
    callbacks = instantiate_group(cfg.callbacks)
    assert isinstance(callbacks["nan_guard"], NaNGuard) and callbacks["nan_guard"].policy == policy
    assert isinstance(callbacks["model_checkpoint"], FiniteModelCheckpoint)
    assert isinstance(callbacks["last_checkpoint"], FiniteModelCheckpoint)
