"""Evaluation callbacks (pc3d.callbacks.evaluation): the keys they log and the values behind them."""

from __future__ import annotations

import ast
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import pc3d
from pc3d.callbacks import GenerationMetrics, LinearProbe
from pc3d.metrics.probe import linear_probe
from pc3d.models import Autoencoder
from pc3d.nn import FCDecoder, PointNetEncoder

LATENT, N = 4, 16


def _items(n: int, seed: int) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    # two categories, shifted apart, so that the probe has something to find
    return [{"points": torch.randn(N, 3, generator=g) * 0.2 + (i % 2), "category": i % 2} for i in range(n)]


class _DM(L.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()

    def train_dataloader(self):
        return DataLoader(_items(8, 0), batch_size=4)

    def test_dataloader(self):
        return DataLoader(_items(6, 1), batch_size=4)

    def probe_dataloader(self, split: str):
        return DataLoader(_items(8, 0), batch_size=4)


def _trainer(*callbacks) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, max_epochs=1, callbacks=list(callbacks))


def test_linear_probe_logs_the_probe_of_the_test_latents():
    torch.manual_seed(0)
    model = Autoencoder(PointNetEncoder(in_dim=3, hidden=(8,), latent_dim=LATENT),
                        FCDecoder(latent_dim=LATENT, n_points=N, hidden=(8,)), latent_dim=LATENT)
    dm = _DM()
    t = _trainer(LinearProbe())
    t.test(model, datamodule=dm, verbose=False)
    m = t.callback_metrics
    assert {"test/cd", "test/linear_probe_acc", "test/linear_probe_train_acc"} <= set(m)
    z_tr, y_tr = model.embed(dm.probe_dataloader("train"))
    z_te, y_te = model.embed(dm.test_dataloader())
    want = linear_probe(z_tr, y_tr, z_te, y_te)
    assert float(m["test/linear_probe_acc"]) == pytest.approx(want.accuracy)
    assert float(m["test/linear_probe_train_acc"]) == pytest.approx(want.train_accuracy)
    # without the callback the model logs its own test metric only
    t = _trainer()
    t.test(model, datamodule=dm, verbose=False)
    assert "test/linear_probe_acc" not in t.callback_metrics and "test/cd" in t.callback_metrics


def test_generation_metrics_checks_its_arguments():
    with pytest.raises(ValueError, match="every_n_epochs"):
        GenerationMetrics(every_n_epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        GenerationMetrics(batch_size=0)


def test_models_do_not_import_callbacks_viz_or_cli():
    """Layers: pc3d.models sits below pc3d.callbacks, pc3d.viz and pc3d.cli."""
    root = Path(pc3d.__file__).parent / "models"
    bad = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[:2] in (["pc3d", "callbacks"], ["pc3d", "viz"],
                                                                                  ["pc3d", "cli"])]
    assert not bad
