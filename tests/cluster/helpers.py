"""What the cluster tests share: the tiny pc3d-train overrides and a ``pc3d-train`` subprocess.

Also :class:`Throttle`, a callback the preemption test adds with ``+callbacks.throttle._target_=...``
(importable in the SLURM jobs, which run in the repository root), so that a tiny fit lasts long
enough to be interrupted."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import lightning as L

from tests.helpers import TINY_SYNTHETIC

ROOT = Path(__file__).resolve().parents[2]
#: one fast, deterministic pc3d-train job on the tiny built-in data (24 training shapes, 6 batches of 4)
TRAIN_SHAPES, BATCH_SIZE = 24, 4
#: ``pc3d-train`` through the console script's function (the same process layout as the script)
TRAIN = [sys.executable, "-c", "import sys; from pc3d.cli.train import main; sys.exit(main())"]
#: the local cluster has no GPUs (the launcher's gpus_per_node is ${trainer.devices} otherwise)
SLURM = ["hydra/launcher=submitit_slurm", "hydra.launcher.gpus_per_node=null", "hydra.launcher.timeout_min=10"]


def tiny_overrides(builtin_root: Path) -> list[str]:
    """``experiment=ae_synthetic`` on the tiny built-in data at ``builtin_root``, on the CPU, small model."""
    synthetic = [f"data.synthetic.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    return ["experiment=ae_synthetic", "trainer.accelerator=cpu", f"data.synthetic.root={builtin_root}",
            *synthetic, "data.num_workers=0", f"data.batch_size={BATCH_SIZE}", "data.n_points=128",
            "model.latent_dim=8", "callbacks.progress_bar=null", "callbacks.model_summary=null",
            "callbacks.curves=null", "callbacks.save_reconstructions=null"]


def env() -> dict[str, str]:
    """This process' environment (``SLURM_CONF`` of the local cluster) with one thread per process."""
    out = dict(os.environ)
    out.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="1")
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), out.get("PYTHONPATH", "")) if p)
    return out


def run_train(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """``pc3d-train <args>`` in the repository root; fails the test with its output when it fails."""
    done = subprocess.run([*TRAIN, *args], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"pc3d-train {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n" \
                                 f"{done.stderr[-6000:]}"
    return done


def start_train(args: list[str], log: Path) -> subprocess.Popen:
    """``pc3d-train <args>`` started in the background, its output in ``log``."""
    fh = open(log, "w")  # noqa: SIM115 (the child holds it)
    return subprocess.Popen([*TRAIN, *args], cwd=ROOT, env=env(), stdout=fh, stderr=subprocess.STDOUT, text=True)


def task_logs(sweep_dir: Path) -> dict[str, str]:
    """submitit's per-task logs of a sweep (``<sweep>/.submitit/<job>/<job>_<task>_log.{out,err}``), by name."""
    return {p.name: p.read_text(errors="replace") for p in sorted((sweep_dir / ".submitit").glob("*/*_log.*"))}


def wait_for(predicate, timeout: float, what: str, poll: float = 0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class Throttle(L.Callback):
    """Sleep ``seconds`` after every training batch (no effect on the numbers)."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = float(seconds)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        time.sleep(self.seconds)
