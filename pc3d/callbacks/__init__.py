"""Lightning callbacks: things that do not change what is learned (evaluation metrics, saved
samples, media, RNG, provenance). The evaluation protocols and their logged keys are in
:mod:`pc3d.callbacks.evaluation`."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
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

    Files: ``<dirpath>/epoch_<EEEE>/<model_id>_input.npy`` and ``..._recon.npy`` (N, 3) float32,
    from the first validation batch, in the data's normalised units. Rank 0 only. Expects the
    model's ``validation_step`` to return a dict with ``"recon"`` (B, N, 3).
    """

    def __init__(self, dirpath: str | os.PathLike, n: int = 4) -> None:
        super().__init__()
        self.dirpath = Path(dirpath)
        self.n = int(n)

    @rank_zero_only
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx != 0 or trainer.sanity_checking or self.n <= 0 or not isinstance(outputs, dict):
            return
        recon = outputs.get("recon")
        if recon is None:
            return
        folder = self.dirpath / f"epoch_{trainer.current_epoch:04d}"
        ids = batch.get("model_id") or [f"{i:03d}" for i in range(len(recon))]
        for i in range(min(self.n, len(recon))):
            atomic_save_npy(folder / f"{ids[i]}_input.npy", batch["points"][i].detach().cpu().float().numpy())
            atomic_save_npy(folder / f"{ids[i]}_recon.npy", recon[i].detach().cpu().float().numpy())


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
    random point subsets than an uninterrupted one. States are saved as plain lists and tensors
    so that ``torch.load(..., weights_only=True)`` can read the checkpoint.
    """

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        py_state = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                      "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
            "python": {"version": py_state[0], "state": list(py_state[1]),
                       "gauss": py_state[2] if py_state[2] is None else float(py_state[2])},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        torch.set_rng_state(state_dict["torch"])
        n = state_dict["numpy"]
        np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
        p = state_dict["python"]
        random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class ConfigInCheckpoint(L.Callback):
    """Put the resolved run configuration (plain containers, no OmegaConf) into every checkpoint.

    ``checkpoint["pc3d_config"]`` is what :func:`pc3d.models.load_model` uses to rebuild the
    networks, so checkpoints load with ``torch.load(..., weights_only=True)``.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint["pc3d_config"] = self.config
