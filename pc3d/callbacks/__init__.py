"""Lightning callbacks: things that do not change what is learned (evaluation metrics, saved
samples, media, RNG, provenance). The evaluation protocols and their logged keys are in
:mod:`pc3d.callbacks.evaluation`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from pc3d.callbacks.evaluation import GenerationMetrics, LinearProbe, ReconstructionMetrics
from pc3d.io import atomic_save_npy

__all__ = [
    "ConfigInCheckpoint",
    "GenerationMetrics",
    "LinearProbe",
    "RNGStateCheckpoint",
    "ReconstructionMetrics",
    "SaveGeneratedSamples",
    "SaveReconstructions",
    "atomic_save_npy",
]


class SaveReconstructions(L.Callback):
    """Save a few validation inputs and their reconstructions as ``.npy`` at every validation.

    Files: ``<dirpath>/epoch_<EEEE>/<k>_<model_id>_input.npy`` and ``..._recon.npy`` (N, 3) float32,
    ``k`` = 00, 01, ... in the order picked, in the data's normalised units. The ``n`` clouds are
    spread over the categories: the first cloud of each category seen in the validation loader (in
    loader order), then, when there are fewer categories than ``n``, the next clouds of the first
    batches. Batches without ``"category"`` count as one category. Rank 0 only. Expects the
    model's ``validation_step`` to return a dict with ``"recon"`` (B, N, 3).
    """

    def __init__(self, dirpath: str | os.PathLike, n: int = 4) -> None:
        super().__init__()
        self.dirpath = Path(dirpath)
        self.n = int(n)
        self._seen: set[int] = set()
        self._spare: list[tuple[str, Any, Any]] = []
        self._saved = 0

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._seen, self._spare, self._saved = set(), [], 0

    def _save(self, trainer, model_id: str, points: Any, recon: Any) -> None:
        folder = self.dirpath / f"epoch_{trainer.current_epoch:04d}"
        stem = f"{self._saved:02d}_{model_id}"
        atomic_save_npy(folder / f"{stem}_input.npy", points.detach().cpu().float().numpy())
        atomic_save_npy(folder / f"{stem}_recon.npy", recon.detach().cpu().float().numpy())
        self._saved += 1

    @rank_zero_only
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or self._saved >= self.n or not isinstance(outputs, dict):
            return
        recon = outputs.get("recon")
        if recon is None:
            return
        ids = batch.get("model_id") or [f"{batch_idx:03d}-{i:03d}" for i in range(len(recon))]
        cats = batch.get("category")
        for i in range(len(recon)):
            cat = int(cats[i]) if cats is not None else 0
            if cat not in self._seen and self._saved < self.n:
                self._seen.add(cat)
                self._save(trainer, str(ids[i]), batch["points"][i], recon[i])
            elif len(self._spare) < self.n:
                self._spare.append((str(ids[i]), batch["points"][i].detach().cpu(), recon[i].detach().cpu()))

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        for model_id, points, recon in self._spare[: max(self.n - self._saved, 0)]:
            self._save(trainer, model_id, points, recon)
        self._spare = []


class SaveGeneratedSamples(L.Callback):
    """Save the clouds generated from the model's fixed noise at every validation (rank 0).

    File: ``<dirpath>/epoch_<EEEE>-step_<SSSSSSS>.npy``, float32 of shape (n_fixed_samples, N, 3)
    in the data's normalised units, written atomically. Expects ``pl_module.sample_fixed()``
    (see :class:`pc3d.models.TreeGAN`, :class:`pc3d.models.LatentGAN`). ``every_n_epochs`` thins
    the saves; sanity checks are skipped.
    """

    def __init__(self, dirpath: str | os.PathLike, every_n_epochs: int = 1) -> None:
        super().__init__()
        self.dirpath = Path(dirpath)
        self.every_n_epochs = max(1, int(every_n_epochs))
        self.last_path: Path | None = None

    @rank_zero_only
    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if (
            trainer.sanity_checking
            or trainer.current_epoch % self.every_n_epochs
            or not hasattr(pl_module, "sample_fixed")
        ):
            return
        samples = pl_module.sample_fixed()
        if len(samples) == 0:
            return
        path = self.dirpath / f"epoch_{trainer.current_epoch:04d}-step_{trainer.global_step:07d}.npy"
        atomic_save_npy(path, samples.detach().cpu().float().numpy())
        self.last_path = path


class RNGStateCheckpoint(L.Callback):
    """Store the Python, NumPy and torch (CPU and CUDA) RNG states in checkpoints, restore on resume.

    Lightning checkpoints do not hold RNG states; without them a resumed run draws different
    random point subsets, dropout masks and GAN noise than an uninterrupted one. States are saved
    as plain lists and tensors (:func:`pc3d.data.sampling.rng_states`) so that
    ``torch.load(..., weights_only=True)`` can read the checkpoint.

    When they are restored matters, for a resumed run to be bitwise equal to an uninterrupted one:

    * at load (so that anything before training draws from them, as before);
    * again at the next ``on_train_epoch_start`` when Lightning builds a new train iterator after
      it: on a restart from a checkpoint saved at the end of an epoch's validation, Lightning
      builds a train-loader iterator, re-runs the end of the saved epoch and builds the next
      epoch's iterator; the first one drew from the restored states (its shuffle seed, its first
      batch) and is thrown away (a checkpoint from ``on_train_epoch_end`` keeps the first one);
    * a checkpoint taken mid-epoch is resumed by the train loader itself when it is a
      :class:`pc3d.data.sampling.ResumableDataLoader` (it refetches the pending batch from the
      states before it and then sets the states saved here); ``on_train_epoch_start`` is not
      called then, and the pending restore is dropped at the first training batch.
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        from pc3d.data.sampling import rng_states

        return rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        from pc3d.data.sampling import set_rng_states

        if not state_dict:
            return
        set_rng_states(state_dict)
        self._pending = state_dict

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        from pc3d.data.sampling import set_rng_states

        state, self._pending = self._pending, None
        loop = trainer.fit_loop
        # the condition under which Lightning's epoch loop builds a new train iterator after this hook
        if state is not None and trainer.current_epoch > 0 and not loop.is_resuming and not loop.epoch_loop.restarting:
            set_rng_states(state)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._pending = None


#: Data arguments (at any depth of the data's build data, e.g. ``synthetic.root``) that hold a path.
DATA_PATH_KEYS = frozenset({"root", "render_root", "cache_dir", "bad_files_report"})


def absolute_data_paths(obj: Any, base: str | os.PathLike | None = None) -> Any:
    """A copy of data build data (or config) with every string value of a :data:`DATA_PATH_KEYS`
    key made absolute against ``base`` (default: the current directory). Other values (``None``,
    ``False``, numbers) and other keys are kept as they are; ``~`` is expanded."""
    base_path = Path.cwd() if base is None else Path(base)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in DATA_PATH_KEYS and isinstance(v, str) and v:
                p = Path(v).expanduser()
                out[k] = str(p if p.is_absolute() else (base_path / p).absolute())
            else:
                out[k] = absolute_data_paths(v, base_path)
        return out
    if isinstance(obj, list):
        return [absolute_data_paths(v, base_path) for v in obj]
    return obj


class ConfigInCheckpoint(L.Callback):
    """Put what to build, as data, into every checkpoint, and the run's config beside it as a record.

    ``checkpoint["pc3d_build"]``: the ``model`` and ``data`` of the resolved run configuration
    converted to registered names, versions and plain arguments
    (:func:`pc3d.models.registry.config_to_build`); :func:`pc3d.models.load_model` builds from it
    and nothing else, so a checkpoint never runs code. ``checkpoint["pc3d_config_record"]``: the
    whole config as YAML text, a record that nothing instantiates. When the config names a class
    that is not registered, only the record is written (with a warning): such a checkpoint holds
    weights but cannot be rebuilt by ``load_model``. Path-valued data arguments (``root``,
    ``render_root``, ``synthetic.root``, ...: :data:`DATA_PATH_KEYS`) are stored absolute, resolved
    against the directory the run started in, so ``pc3d-eval`` works from any directory.
    """

    #: also written into weights-only checkpoints (:class:`~pc3d.callbacks.nan_guard.FiniteModelCheckpoint`)
    in_weights_only_checkpoints = True

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        import logging

        from omegaconf import OmegaConf

        from pc3d.models.registry import BuildDataError, config_to_build

        self.config = config
        try:
            self.record = OmegaConf.to_yaml(OmegaConf.create(config)) if config else ""
        except Exception:  # a record only: never fail a run over it
            self.record = repr(config)
        self.build: dict[str, Any] | None = None
        try:
            self.build = config_to_build(config)
        except BuildDataError as e:
            logging.getLogger("pc3d.callbacks").warning(
                "checkpoints of this run hold no build data (pc3d.models.load_model cannot rebuild them): %s", e)
        if self.build is not None and self.build.get("data") is not None:
            # relative to where training ran: absolute now, so the checkpoint works from any directory
            self.build["data"] = absolute_data_paths(self.build["data"])

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        import copy

        from pc3d.models.registry import BUILD_KEY, RECORD_KEY

        checkpoint[RECORD_KEY] = self.record
        if self.build is not None:
            checkpoint[BUILD_KEY] = copy.deepcopy(self.build)
