"""Sharded evaluation (pc3d.metrics.sharded): 2 gloo ranks give exactly the single-process numbers.

The ranks are spawned with torch.multiprocessing (MASTER_ADDR=127.0.0.1, a free port); every rank
computes the metrics with ``group=`` the default group and writes what it got; the parent compares
them with the same metrics computed in one process: bit-for-bit (``==`` on floats, ``torch.equal``
on matrices), not approximately.
"""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from pc3d.metrics.fpd import compute_features, feature_statistics, fpd
from pc3d.metrics.generative import evaluate_generation
from pc3d.metrics.pairwise import distance_matrix
from pc3d.metrics.sharded import row_blocks, sharded_distance_matrix
from tests.metrics.test_metrics_ddp import _TinyFeatures  # the FPD stand-in both DDP test files use

WORLD = 2


def _data():
    """7 samples, 6 references (uneven row blocks), with exact ties: sample 3 == reference 2."""
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0, 0.0], [0.6, 0.0, 0.0], [0.0, 0.6, 0.0]])
    s = centres[torch.arange(7) % 3, None] + 0.15 * torch.randn(7, 20, 3, generator=g)
    r = centres[torch.arange(6) % 3, None] + 0.15 * torch.randn(6, 20, 3, generator=g)
    s[3] = r[2]
    ref_clouds = 0.2 * torch.randn(9, 20, 3, generator=g)
    return s, r, ref_clouds


def _metrics(s, r, ref_clouds, group):
    out = {}
    for method in ("exact", "approx"):
        for pruning in (True, False):
            res = evaluate_generation(s, r, distances=("cd", "emd"), emd_method=method, emd_pruning=pruning,
                                      group=group)
            out[f"{method}_{'pruned' if pruning else 'full'}"] = res
    net = _TinyFeatures()
    out["fpd_clouds"] = fpd(s, ref_clouds, net, batch_size=2, group=group)
    stats = feature_statistics(compute_features(net, ref_clouds, batch_size=4))
    out["fpd_stats"] = fpd(s, stats, net, batch_size=3, group=group)
    return out


def _matrices(s, r, group):
    mats = {}
    for dist_name in ("cd", "emd"):
        mats[f"{dist_name}_sr"] = sharded_distance_matrix(s, r, distance=dist_name, emd_method="approx", group=group)
        mats[f"{dist_name}_ss"] = sharded_distance_matrix(s, None, distance=dist_name, emd_method="approx",
                                                          group=group)
    return mats


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        s, r, ref_clouds = _data()
        group = dist.group.WORLD
        out = _metrics(s, r, ref_clouds, group)
        mats = _matrices(s, r, group)
        feats = compute_features(_TinyFeatures(), s, batch_size=2, group=group)
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(out, fh)
        torch.save({**mats, "features": feats}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_row_blocks_balance_and_cover():
    blocks = row_blocks(7, 2, (7 - 1 - np.arange(7)).astype(float))  # upper-triangle rows: 6 5 4 3 2 1 0 pairs
    assert blocks == [(0, 2), (2, 7)]  # 11 pairs | 10 pairs
    for n, world in ((5, 3), (1, 3), (200, 2), (7, 7)):
        blocks = row_blocks(n, world)
        assert blocks[0][0] == 0 and blocks[-1][1] == n and len(blocks) == world
        assert all(b0 <= b1 == c0 for (b0, b1), (c0, _) in zip(blocks, blocks[1:]))  # contiguous, in order
        sizes = [b1 - b0 for b0, b1 in blocks]
        assert max(sizes) - min(sizes) <= 1


def test_single_process_group_none_is_distance_matrix():
    s, r, _ = _data()
    for b in (r, None):
        assert torch.equal(sharded_distance_matrix(s, b, distance="emd", emd_method="approx"),
                           distance_matrix(s, b, distance="emd", emd_method="approx"))


@pytest.mark.slow  # two spawned interpreters: ~45 s on the shared 2-core CPU
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_two_gloo_ranks_equal_one_process(tmp_path):
    mp.spawn(_worker, args=(WORLD, _free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    got = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(WORLD)]
    assert got[0] == got[1]
    torch.set_num_threads(1)
    s, r, ref_clouds = _data()
    want = _metrics(s, r, ref_clouds, None)
    assert got[0] == json.loads(json.dumps(want))  # every metric, bit for bit
    # pruned == full, in one process and across ranks
    for method in ("exact", "approx"):
        assert want[f"{method}_pruned"] == want[f"{method}_full"]
    assert want["exact_full"]["cov_emd"] < 1.0 or want["exact_full"]["1nna_emd"] < 1.0  # not a degenerate case
    mats = [torch.load(tmp_path / f"rank{k}.pt", weights_only=True) for k in range(WORLD)]
    for name, m in mats[0].items():
        assert torch.equal(m, mats[1][name]), name
    for dist_name in ("cd", "emd"):
        assert torch.equal(mats[0][f"{dist_name}_sr"], distance_matrix(s, r, distance=dist_name, emd_method="approx"))
        assert torch.equal(mats[0][f"{dist_name}_ss"],
                           distance_matrix(s, None, distance=dist_name, emd_method="approx"))
    assert torch.equal(mats[0]["features"], compute_features(_TinyFeatures(), s, batch_size=2))
