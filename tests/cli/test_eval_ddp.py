"""pc3d-eval as a DDP job: ``torchrun --nproc_per_node 2`` gives the single-process JSON, written once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist

from pc3d.cli.eval import evaluate
from tests.cli.test_eval import compose_eval


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sets(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0]])
    samples = centres[np.arange(7) % 3, None] + 0.1 * rng.standard_normal((7, 48, 3))
    refs = centres[np.arange(6) % 3, None] + 0.1 * rng.standard_normal((6, 48, 3))
    samples[3] = refs[2]  # an exact tie
    np.save(tmp_path / "samples.npy", samples.astype(np.float32))
    np.save(tmp_path / "refs.npy", refs.astype(np.float32))
    return [f"samples={tmp_path / 'samples.npy'}", f"refs={tmp_path / 'refs.npy'}", "metrics.distances=[cd,emd]",
            "metrics.emd_method=approx", "metrics.jsd=false"]


@pytest.mark.slow  # two torchrun'd interpreters: ~30 s on the 2-core CPU
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_torchrun_two_ranks_equals_single_process(tmp_path):
    args = _sets(tmp_path)
    out_ddp = tmp_path / "ddp" / "metrics.json"
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(PC3D_LOG_DIR=str(tmp_path / "outputs"), OMP_NUM_THREADS="1", WANDB_MODE="offline")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), "-m", "pc3d.cli.eval", *args, f"out={out_ddp}", "device=cpu"]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, timeout=600, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("json:") == 1  # only rank 0 prints the table
    ddp = json.loads(out_ddp.read_text())
    assert ddp["world_size"] == 2
    assert sorted(p.name for p in out_ddp.parent.iterdir()) == ["metrics.json"]  # written once, no leftovers

    single = evaluate(compose_eval([*args, f"out={tmp_path / 'single.json'}"], tmp_path / "single_run"))
    assert ddp["metrics"] == json.loads(json.dumps(single["metrics"]))  # bit-identical numbers
    assert ddp["protocol"] == single["protocol"] and ddp["protocol"]["emd_pruning"] is True
    assert 0.0 < ddp["metrics"]["mmd_emd"] and ddp["metrics"]["1nna_emd"] < 1.0
