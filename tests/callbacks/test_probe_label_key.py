"""LinearProbe(label_key=...): the probe on another label (the built-in set's fine_label)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from pc3d.callbacks import LinearProbe
from pc3d.metrics.probe import linear_probe
from pc3d.models import Autoencoder
from pc3d.nn import FCDecoder, PointNetEncoder

LATENT, N = 4, 16


def _items(n: int, seed: int, fine: bool = True, unknown: tuple[int, ...] = ()) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        item = {"points": torch.randn(N, 3, generator=g) * 0.2 + (i % 2) + 0.5 * (i % 3), "category": i % 2}
        if fine:
            item["fine_label"] = torch.tensor(-1 if i in unknown else i % 3, dtype=torch.int64)
        out.append(item)
    return out


class _DM(L.LightningDataModule):
    def __init__(self, **kw) -> None:
        super().__init__()
        self.kw = kw

    def test_dataloader(self):
        return DataLoader(_items(9, 1, **self.kw), batch_size=4)

    def probe_dataloader(self, split: str):
        return DataLoader(_items(12, 0, **self.kw), batch_size=4)


def _trainer(*callbacks) -> L.Trainer:
    return L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, callbacks=list(callbacks))


def _model() -> Autoencoder:
    torch.manual_seed(0)
    return Autoencoder(PointNetEncoder(in_dim=3, hidden=(8,), latent_dim=LATENT),
                       FCDecoder(latent_dim=LATENT, n_points=N, hidden=(8,)), latent_dim=LATENT)


def _latents(model, items):
    model.eval()
    with torch.no_grad():
        z = model.encode(torch.stack([it["points"] for it in items]))
    return z, {k: torch.tensor([int(it[k]) for it in items]) for k in ("category", "fine_label") if k in items[0]}


def test_default_is_the_category_probe():
    probe = LinearProbe()
    assert probe.label_key == "category" and probe.prefix == "test/linear_probe"
    assert LinearProbe(label_key="fine_label").prefix == "test/linear_probe_fine"
    with pytest.raises(ValueError, match="label_key"):
        LinearProbe(label_key="")


def test_fine_label_probe_beside_the_category_probe():
    model, dm = _model(), _DM()
    t = _trainer(LinearProbe(), LinearProbe(label_key="fine_label"))
    t.test(model, datamodule=dm, verbose=False)
    m = t.callback_metrics
    assert {"test/linear_probe_acc", "test/linear_probe_train_acc",
            "test/linear_probe_fine_acc", "test/linear_probe_fine_train_acc"} <= set(m)
    z_tr, y_tr = _latents(model, _items(12, 0))
    z_te, y_te = _latents(model, _items(9, 1))
    for key, prefix in (("category", "test/linear_probe"), ("fine_label", "test/linear_probe_fine")):
        want = linear_probe(z_tr, y_tr[key], z_te, y_te[key])
        assert float(m[f"{prefix}_acc"]) == pytest.approx(want.accuracy)
        assert float(m[f"{prefix}_train_acc"]) == pytest.approx(want.train_accuracy)


def test_unknown_labels_are_left_out():
    model, dm = _model(), _DM(unknown=(0, 4))
    t = _trainer(LinearProbe(label_key="fine_label"))
    t.test(model, datamodule=dm, verbose=False)
    z_tr, y_tr = _latents(model, _items(12, 0, unknown=(0, 4)))
    z_te, y_te = _latents(model, _items(9, 1, unknown=(0, 4)))
    ktr, kte = y_tr["fine_label"] >= 0, y_te["fine_label"] >= 0
    want = linear_probe(z_tr[ktr], y_tr["fine_label"][ktr], z_te[kte], y_te["fine_label"][kte])
    assert float(t.callback_metrics["test/linear_probe_fine_acc"]) == pytest.approx(want.accuracy)
    assert "test/linear_probe_acc" not in t.callback_metrics


def test_missing_label_key_is_a_no_op():
    t = _trainer(LinearProbe(label_key="fine_label"))
    with pytest.warns(UserWarning, match="fine_label"):
        t.test(_model(), datamodule=_DM(fine=False), verbose=False)
    assert not any(k.startswith("test/linear_probe") for k in t.callback_metrics)
