"""The torchmetrics wrappers under DDP: 2 CPU processes (gloo), states concatenated across ranks.

Each rank updates with its own (uneven) shard; ``compute()`` on every rank must equal the
single-process value on the union of the shards.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from pc3d.metrics.fpd import FPD, FeatureStats, compute_features, feature_statistics
from pc3d.metrics.generative import GenerationMetrics, evaluate_generation

SHARDS = (5, 3)  # samples per rank: uneven on purpose (the gather pads and trims)


def _clouds(n, pts=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, pts, 3, generator=g) - 0.5) * 0.5  # inside the JSD sphere


class _TinyFeatures(nn.Module):
    """A deterministic stand-in for the FPD classifier: features (B, 6) = max and mean of a linear map."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, -0.5], [0.3, 0.0, 1.0]]))
            self.lin.bias.zero_()

    def features(self, points):
        h = self.lin(points)
        return torch.cat([h.amax(dim=1), h.mean(dim=1)], dim=1)


def _data():
    samples = _clouds(sum(SHARDS), seed=1)
    refs = _clouds(6, seed=2)
    ref_stats = feature_statistics(compute_features(_TinyFeatures(), _clouds(12, seed=3)))
    return samples, refs, ref_stats


def _shard(x, rank):
    start = sum(SHARDS[:rank])
    return x[start : start + SHARDS[rank]]


def _worker(rank: int, world: int, store: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        samples, refs, ref_stats = _data()
        mine = _shard(samples, rank)
        fixed = GenerationMetrics(refs=refs, distances=("cd", "jsd"))
        fixed.update(mine[:2])
        fixed.update(mine[2:])
        accumulated = GenerationMetrics(distances=("cd",))  # refs sharded too: rank r gets refs[r::2]
        accumulated.update(mine, refs[rank::world])
        fpd_metric = FPD(_TinyFeatures(), ref_stats)
        fpd_metric.update(mine)
        out = {
            "fixed": {k: float(v) for k, v in fixed.compute().items()},
            "accumulated": {k: float(v) for k, v in accumulated.compute().items()},
            "fpd": float(fpd_metric.compute()),
        }
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as fh:
            json.dump(out, fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: ~40 s on the 2-core CPU
@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo backend")
def test_gathered_metrics_equal_single_process_union(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert results[0] == results[1]  # every rank computes the same gathered value

    samples, refs, ref_stats = _data()
    want_fixed = evaluate_generation(samples, refs, distances=("cd", "jsd"))
    assert results[0]["fixed"] == pytest.approx(want_fixed, rel=1e-6, abs=1e-7)
    # the gathered refs come in rank order: refs[0::2] then refs[1::2] (a permutation of refs)
    want_acc = evaluate_generation(samples, torch.cat([refs[0::2], refs[1::2]]), distances=("cd",))
    assert results[0]["accumulated"] == pytest.approx(want_acc, rel=1e-6, abs=1e-7)
    assert results[0]["accumulated"] == pytest.approx(evaluate_generation(samples, refs), rel=1e-6, abs=1e-7)
    want_fpd = FPD(_TinyFeatures(), ref_stats)
    want_fpd.update(samples)
    assert results[0]["fpd"] == pytest.approx(float(want_fpd.compute()), rel=1e-5)
    # and the union is really what was scored: a single shard gives a different value
    part = FPD(_TinyFeatures(), FeatureStats(ref_stats.mu, ref_stats.sigma, ref_stats.n, {}))
    part.update(_shard(samples, 0))
    assert float(part.compute()) != pytest.approx(results[0]["fpd"], rel=1e-3)
