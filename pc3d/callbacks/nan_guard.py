"""NaN / inf guards for training: inputs, losses, gradients, parameters and checkpoint files.

Without them a batch holding NaN (a corrupt file, a degenerate normalisation) trains silently:
the tree-GAN's parameters turn NaN, ``fit`` returns normally, and ``last.ckpt`` is overwritten
with non-finite tensors. Two pieces, both wired by ``pc3d-train`` (``conf/callbacks/default.yaml``
and the two checkpoint callbacks of ``conf/train.yaml``):

* :class:`NaNGuard`, a callback with a policy, ``nan_policy=raise`` (the default) or
  ``nan_policy=skip`` (the top-level key of ``conf/train.yaml``, passed as ``callbacks.nan_guard.policy``;
  ``pc3d-train nan_policy=skip``);
* :class:`FiniteModelCheckpoint`, a ``ModelCheckpoint`` that never writes a checkpoint holding
  non-finite tensors: it keeps the previous file and logs a warning naming the one not written.

Every check reads tensors and nothing else (no RNG draw, no change to any value): a run whose
numbers stay finite trains bit for bit as without the guard.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from pc3d.models._guards import SKIP_FLAG

__all__ = ["POLICIES", "FiniteModelCheckpoint", "NaNGuard", "NonFiniteError", "nonfinite_tensors"]

log = logging.getLogger("pc3d.nan_guard")

#: The values of ``nan_policy``.
POLICIES = ("raise", "skip")


class NonFiniteError(RuntimeError):
    """A NaN / inf met by :class:`NaNGuard` under ``nan_policy=raise`` (or a checkpoint refused)."""


# ---------------------------------------------------------------------------- helpers (read-only)
def _all_finite(tensors: list[torch.Tensor]) -> bool:
    """True when every entry of every tensor is finite (one device sync for all of them)."""
    tensors = [t for t in tensors if t.is_floating_point() or t.is_complex()]
    if not tensors:
        return True
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


def _describe(t: torch.Tensor) -> str:
    t = t.detach()
    n_nan = int(torch.isnan(t).sum())
    n_inf = int(torch.isinf(t).sum())
    return f"{n_nan} NaN and {n_inf} inf of {t.numel()} values"


def nonfinite_tensors(named: Iterable[tuple[str, torch.Tensor]]) -> tuple[list[str], int]:
    """Names of the floating tensors in ``named`` that hold a NaN or an inf, and how many floating
    tensors were checked. Read-only."""
    named = [(n, t) for n, t in named if isinstance(t, torch.Tensor) and (t.is_floating_point() or t.is_complex())]
    if _all_finite([t for _, t in named]):
        return [], len(named)
    return [n for n, t in named if not bool(torch.isfinite(t).all())], len(named)


def _batch_tensors(batch: Any, name: str = "batch") -> Iterator[tuple[str, torch.Tensor]]:
    """The floating tensors of a batch (dicts, lists and tuples, recursively), with their keys."""
    if isinstance(batch, torch.Tensor):
        if batch.is_floating_point() or batch.is_complex():
            yield name, batch
    elif isinstance(batch, dict):
        for k, v in batch.items():
            yield from _batch_tensors(v, f"{name}[{k!r}]")
    elif isinstance(batch, list | tuple):
        for i, v in enumerate(batch):
            yield from _batch_tensors(v, f"{name}[{i}]")


def _checkpoint_tensors(checkpoint: dict[str, Any]) -> Iterator[tuple[str, torch.Tensor]]:
    """The weights (``state_dict``) and optimizer-state tensors of a Lightning checkpoint dict."""
    for k, v in (checkpoint.get("state_dict") or {}).items():
        yield k, v
    for i, opt in enumerate(checkpoint.get("optimizer_states") or []):
        for pid, st in (opt.get("state") or {}).items() if isinstance(opt, dict) else ():
            for k, v in st.items() if isinstance(st, dict) else ():
                yield f"optimizer_states[{i}].state[{pid}][{k!r}]", v


def _module_tensors(trainer: L.Trainer, pl_module: L.LightningModule) -> Iterator[tuple[str, torch.Tensor]]:
    """What a checkpoint of ``pl_module`` would hold: its state dict and its optimizers' states."""
    for k, v in pl_module.state_dict().items():
        yield k, v
    names = {id(p): n for n, p in pl_module.named_parameters()}
    for i, opt in enumerate(trainer.optimizers):
        for j, (p, st) in enumerate(opt.state.items()):
            for k, v in st.items():
                yield f"optimizer {i} state of {names.get(id(p), j)} {k!r}", v


def _names(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _where(trainer: L.Trainer, batch_idx: int | None) -> str:
    b = "" if batch_idx is None else f", batch {batch_idx}"
    return f"epoch {trainer.current_epoch}, global step {trainer.global_step}{b}"


# ---------------------------------------------------------------------------- the guard
class NaNGuard(L.Callback):
    """Stop (``policy="raise"``) or skip (``policy="skip"``) training steps that meet a NaN / inf.

    Set from the command line with the top-level key ``nan_policy`` (``pc3d-train nan_policy=skip``;
    ``conf/callbacks/default.yaml`` passes it as ``callbacks.nan_guard.policy``). Works for every
    pc3d system, automatic (Autoencoder, PointCloudClassifier) and manual optimization (TreeGAN,
    LatentGAN, Image2Cloud: every critic and generator step is checked on its own).

    Checked, in this order:

    * **inputs** (``on_train_batch_start``): every floating tensor of the batch (``points``,
      ``image`` ...);
    * **losses** (``on_before_backward``): every loss given to ``backward`` / ``manual_backward``;
    * **gradients** (``on_before_optimizer_step``): the gradients of the parameters that optimizer
      is about to update (not under fp16 mixed precision, whose GradScaler already skips steps
      with inf gradients);
    * **parameters** (``on_train_batch_end``): an update can overflow with finite gradients (a
      huge learning rate).

    ``raise``: :class:`NonFiniteError` at once, naming the epoch, the global step, the batch and
    what was non-finite (the input key with its NaN / inf counts; the loss, by the optimizer whose
    step it was for, e.g. ``optimizer 1 (critic)``; the parameter names). Nothing is saved after
    it: the checkpoints on disk are the last finite ones.

    ``skip``: a batch with a non-finite input runs neither its forward pass nor any optimizer step
    (the system's ``training_step`` returns at once, :func:`pc3d.models._guards.skip_flagged_batch`);
    a step whose loss or gradients are non-finite is not applied (its gradients are set to
    ``None``, so the optimizer leaves the parameters and its state as they were). Logged:
    ``train/skipped_steps``, the number of optimizer steps not applied since the start of the run
    (epoch value; kept in checkpoints). One poisoned batch counts 1 for the Autoencoder and the
    classifier, ``n_critic + 1`` for TreeGAN / LatentGAN (every critic step and the generator
    step), 1 (+ ``n_critic`` with a critic) for Image2Cloud. Parameters that became non-finite
    anyway (an overflowing update) cannot be skipped: a warning says so and
    :class:`FiniteModelCheckpoint` keeps the previous checkpoint files. Under DDP, ``skip`` of a
    batch that only one rank sees as non-finite desynchronises the ranks: use ``raise``.

    Whatever the policy, a checkpoint holding non-finite tensors is refused: ``on_save_checkpoint``
    raises :class:`NonFiniteError` before the file is written (the previous file stays).
    :class:`FiniteModelCheckpoint` checks before it saves and skips with a warning instead.

    Every check is read-only; with finite numbers the training is unchanged, bit for bit.
    """

    def __init__(self, policy: str = "raise", log_skipped: bool = True) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"NaNGuard: policy (nan_policy) must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.log_skipped = bool(log_skipped)
        self.skipped_steps = 0
        self._batch_idx: int | None = None
        self._bad_losses: list[str] = []
        self._names: dict[int, str] = {}
        self._buffers: dict[str, torch.Tensor] | None = None
        self._skipped_in_batch = 0
        self._warned_params = False

    # ---------------------------------------------------------------- state (resume continues the count)
    def state_dict(self) -> dict[str, Any]:
        return {"skipped_steps": self.skipped_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.skipped_steps = int(state_dict.get("skipped_steps", 0))

    # ---------------------------------------------------------------- hooks
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._names = {id(p): n for n, p in pl_module.named_parameters()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch_idx = batch_idx
        self._skipped_in_batch = 0
        pl_module.__dict__.pop(SKIP_FLAG, None)
        if self.policy == "skip":  # put back if a step of this batch is skipped (BatchNorm statistics ...)
            self._buffers = {k: v.detach().clone() for k, v in pl_module.named_buffers()}
        named = list(_batch_tensors(batch))
        if _all_finite([t for _, t in named]):
            return
        bad = "; ".join(f"{n} has {_describe(t)}" for n, t in named if not bool(torch.isfinite(t).all()))
        if self.policy == "raise":
            raise NonFiniteError(f"NaNGuard: non-finite input at {_where(trainer, batch_idx)}: {bad} "
                                 "(nan_policy=skip skips such batches)")
        log.warning("NaNGuard: skipping the batch at %s: non-finite input: %s", _where(trainer, batch_idx), bad)
        setattr(pl_module, SKIP_FLAG, {"input": bad, "steps": None})

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            value = loss.detach().flatten()[0].item() if loss.numel() else float("nan")
            self._bad_losses.append(f"{value} (at {_where(trainer, self._batch_idx)})")

    def _optimizer_label(self, trainer: L.Trainer, optimizer) -> str:
        idx = next((i for i, o in enumerate(trainer.optimizers) if o is optimizer), None)
        roots = sorted({self._names.get(id(p), "?").split(".")[0]
                        for g in optimizer.param_groups for p in g["params"]})
        return f"optimizer {'?' if idx is None else idx} ({', '.join(roots)})"

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        flag = pl_module.__dict__.get(SKIP_FLAG)
        if flag and flag.get("steps") is not None:  # the system skipped the batch: nothing to step
            return
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        reasons = []
        if flag:
            reasons.append(f"non-finite input: {flag['input']}")
        if self._bad_losses:
            reasons.append(f"non-finite loss of {self._optimizer_label(trainer, optimizer)}: "
                           f"{', '.join(self._bad_losses)}")
        self._bad_losses = []
        if getattr(trainer.precision_plugin, "scaler", None) is None and not _all_finite([p.grad for p in params]):
            bad = [self._names.get(id(p), "?") for p in params if not bool(torch.isfinite(p.grad).all())]
            reasons.append(f"non-finite gradients of {len(bad)} of {len(params)} parameters: {_names(bad)}")
        if not reasons:
            return
        where = f"{_where(trainer, self._batch_idx)}, step of {self._optimizer_label(trainer, optimizer)}"
        if self.policy == "raise":
            raise NonFiniteError(f"NaNGuard: {'; '.join(reasons)} at {where} (nan_policy=skip skips such steps)")
        if not flag:
            log.warning("NaNGuard: skipping the optimizer step at %s: %s", where, "; ".join(reasons))
        for p in params:  # a None gradient: the optimizer leaves the parameter and its state alone
            p.grad = None
        self.skipped_steps += 1
        self._skipped_in_batch += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        flag = pl_module.__dict__.pop(SKIP_FLAG, None)
        buffers, self._buffers = self._buffers, None
        if flag and flag.get("steps") is not None:
            self.skipped_steps += flag["steps"]
        elif buffers is not None and (self._skipped_in_batch or nonfinite_tensors(pl_module.named_buffers())[0]):
            # a forward pass whose step was skipped (or that overflowed) updated buffers: put them back
            with torch.no_grad():
                for k, v in pl_module.named_buffers():
                    if k in buffers:
                        v.copy_(buffers[k])
        bad, n = nonfinite_tensors(pl_module.named_parameters())
        if bad:
            msg = (f"NaNGuard: {len(bad)} of {n} parameters became non-finite after the optimizer step(s) at "
                   f"{_where(trainer, batch_idx)} (their gradients were finite: an update overflowed; lower the "
                   f"learning rate): {_names(bad)}")
            if self.policy == "raise":
                raise NonFiniteError(msg)
            if not self._warned_params:
                log.warning("%s; nan_policy=skip cannot undo it, checkpoints keep their last finite files", msg)
                self._warned_params = True
        if self.policy == "skip" and self.log_skipped:
            pl_module.log("train/skipped_steps", float(self.skipped_steps), on_step=False, on_epoch=True,
                          reduce_fx="max", batch_size=1)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # an op that refuses non-finite values itself (e.g. chamfer_distance on an overflowed reconstruction)
        # raises before any loss exists: say where it happened
        text = str(exception).lower()
        if (not isinstance(exception, NonFiniteError) and self._batch_idx is not None and hasattr(exception, "add_note")
                and any(w in text for w in ("nan", "inf", "finite"))):
            exception.add_note(f"NaNGuard: raised while training at {_where(trainer, self._batch_idx)} "
                               f"(nan_policy={self.policy}; an op refused non-finite values before a loss existed)")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        bad, n = nonfinite_tensors(_checkpoint_tensors(checkpoint))
        if bad:
            raise NonFiniteError(f"NaNGuard: refusing to save a checkpoint at {_where(trainer, None)}: {len(bad)} of "
                                 f"{n} tensors are non-finite ({_names(bad)}); the previous file is kept")


# ---------------------------------------------------------------------------- checkpoints
class FiniteModelCheckpoint(ModelCheckpoint):
    """A :class:`~lightning.pytorch.callbacks.ModelCheckpoint` that never writes non-finite tensors.

    Before each save (top-k, ``save_last``, on exception) the module's state dict and its
    optimizers' states are checked (read-only); when one holds a NaN or an inf, nothing is
    written and nothing is removed, the bookkeeping (best / last paths, top-k scores) is left as
    it was, and a warning names the file not written: the previous checkpoint stays the one to
    resume from. Same arguments as ``ModelCheckpoint``; its state in checkpoints is stored under
    ``ModelCheckpoint``'s key, so runs resume across the two classes.
    """

    def _generate_state_key(self, **kwargs: Any) -> str:
        return f"{ModelCheckpoint.__qualname__}{kwargs!r}"

    def _finite(self, trainer: L.Trainer, monitor_candidates: dict[str, Any], what: str) -> bool:
        bad, n = nonfinite_tensors(_module_tensors(trainer, trainer.lightning_module))
        if not bad:
            return True
        try:
            name = self.format_checkpoint_name(monitor_candidates, what) if what else self.format_checkpoint_name(
                monitor_candidates)
        except Exception:  # naming only
            name = f"a checkpoint in {self.dirpath}"
        log.warning("FiniteModelCheckpoint: not writing %s at %s: %d of %d tensors are non-finite (%s); the previous "
                    "file is kept", name, _where(trainer, None), len(bad), n, _names(bad))
        return False

    def _save_checkpoint(self, trainer: L.Trainer, filepath: str) -> None:
        """``save_weights_only=True``: the model's weights, plus what the callbacks that mark themselves
        ``in_weights_only_checkpoints`` (:class:`~pc3d.callbacks.ConfigInCheckpoint`: the build data that
        ``pc3d.models.load_model`` needs) put into a checkpoint; no optimizer, scheduler or
        callback state (Lightning's own weights-only save calls no callback hooks). Such a file is a
        third of a full one for Adam-trained models and scores, samples and tests like it, but cannot
        resume a fit."""
        if not self.save_weights_only:
            super()._save_checkpoint(trainer, filepath)
            return
        with trainer.profiler.profile("save_checkpoint"):
            checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=True)
            for cb in trainer.callbacks:
                if getattr(cb, "in_weights_only_checkpoints", False):
                    cb.on_save_checkpoint(trainer, trainer.lightning_module, checkpoint)
            trainer.strategy.save_checkpoint(checkpoint, filepath)
            trainer.strategy.barrier("FiniteModelCheckpoint.save_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            from weakref import proxy

            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def _save_topk_checkpoint(self, trainer, monitor_candidates) -> None:
        if self.save_top_k == 0 or self._finite(trainer, monitor_candidates, ""):
            super()._save_topk_checkpoint(trainer, monitor_candidates)

    def _save_last_checkpoint(self, trainer, monitor_candidates) -> None:
        if not self.save_last or self._finite(trainer, monitor_candidates, self.CHECKPOINT_NAME_LAST):
            super()._save_last_checkpoint(trainer, monitor_candidates)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not self._should_save_on_exception(trainer) or self._finite(trainer, self._monitor_candidates(trainer), ""):
            super().on_exception(trainer, pl_module, exception)
