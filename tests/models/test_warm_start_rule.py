"""Warm starts refuse weights trained under another TreeGCN forward rule (same shapes, other function)."""

from __future__ import annotations

import pytest
import torch

from pc3d.models.treegan import load_generator_weights
from pc3d.nn import TreeGenerator

SIZES = dict(features=[8, 16, 8, 3], degrees=[2, 2, 4])


def _save_ae_like(path, scale: str | None) -> TreeGenerator:
    torch.manual_seed(0)
    dec = TreeGenerator(**SIZES, init="node", ancestor_scale=scale or "sum")
    cfg = {"model": {"decoder": {"_target_": "pc3d.nn.TreeGenerator", **SIZES}}}
    if scale is not None:
        cfg["model"]["decoder"]["ancestor_scale"] = scale
    state = {f"decoder.{k}": v for k, v in dec.state_dict().items()}
    torch.save({"state_dict": state, "pc3d_config": cfg}, path)
    return dec


def test_warm_start_with_the_same_rule_copies_the_function(tmp_path):
    src = _save_ae_like(tmp_path / "ae.ckpt", "mean")
    gen = TreeGenerator(**SIZES, ancestor_scale="mean")
    assert load_generator_weights(gen, tmp_path / "ae.ckpt") == "decoder."
    z = torch.randn(3, 8)
    assert torch.equal(gen(z), src(z))


@pytest.mark.parametrize("saved, ours", [("mean", "sum"), (None, "mean")])
def test_warm_start_across_rules_is_refused(tmp_path, saved, ours):
    _save_ae_like(tmp_path / "ae.ckpt", saved)
    gen = TreeGenerator(**SIZES, ancestor_scale=ours)
    before = {k: v.clone() for k, v in gen.state_dict().items()}
    with pytest.raises(ValueError, match="ancestor_scale"):
        load_generator_weights(gen, tmp_path / "ae.ckpt")
    assert all(torch.equal(before[k], v) for k, v in gen.state_dict().items())  # nothing loaded
