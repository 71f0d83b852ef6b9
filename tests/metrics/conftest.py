"""An EMD for the metric tests: ``pc3d.ops.emd`` when it exists, else an exact scipy stand-in."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch


def scipy_emd(x, y, *, method="exact", squared=False, reduction="mean"):
    """Mean matched euclidean distance by ``linear_sum_assignment`` (float64), per pair."""
    from scipy.optimize import linear_sum_assignment

    vals = []
    for a, b in zip(x.detach().cpu().double().numpy(), y.detach().cpu().double().numpy()):
        cost = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
        r, c = linear_sum_assignment(cost)
        vals.append(cost[r, c].mean())
    out = torch.tensor(vals, dtype=torch.float64)
    return out if reduction == "none" else (out.mean() if reduction == "mean" else out.sum())


@pytest.fixture
def emd_op(monkeypatch):
    """The EMD used by pc3d.metrics: the real op if importable, else the scipy stand-in."""
    try:
        from pc3d.ops.emd import emd  # noqa: F401

        return emd
    except ImportError:
        mod = types.ModuleType("pc3d.ops.emd")
        mod.emd = scipy_emd
        monkeypatch.setitem(sys.modules, "pc3d.ops.emd", mod)
        return scipy_emd
