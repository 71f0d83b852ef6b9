"""Plain progress lines when stdout is not a terminal (SLURM logs, | tee)."""

from __future__ import annotations

import io
import re

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import RichProgressBar
from torch.utils.data import DataLoader, TensorDataset

from pc3d.callbacks.progress import TextProgressBar, progress_bar


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = self.lin(x).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val/cd", self.lin(x).abs().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _loader(n: int) -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(n, 3)), batch_size=2)


def test_text_lines_every_n_steps(capsys):
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        callbacks=[progress_bar(every_n_steps=3, tty=False)])
    assert isinstance(trainer.progress_bar_callback, TextProgressBar)
    trainer.fit(Tiny(), _loader(14), _loader(4))  # 7 batches per epoch
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("[train] epoch")]
    # batches 3, 6 and the last (7) of each of the 2 epochs
    assert [re.search(r"batch (\d+)/7", line).group(1) for line in lines] == ["3", "6", "7"] * 2
    assert lines[0].startswith("[train] epoch 1/2  batch 3/7  step 3  ")
    assert lines[-1].startswith("[train] epoch 2/2  batch 7/7  step 14  ")
    for line in lines:
        assert re.search(r"[\d.e+]+ it/s  ETA \d+:\d\d:\d\d", line), line
        assert re.search(r"train/loss=[-\d.e]+", line), line
    assert re.search(r"ETA 0:00:00", lines[-1])
    assert len([line for line in out.splitlines() if line.startswith("[val] epoch")]) == 2
    assert "val/cd=" in out and "[train] done: 14 batches" in out


def test_stream_and_choice():
    buf = io.StringIO()
    bar = TextProgressBar(every_n_steps=1, stream=buf)
    trainer = L.Trainer(accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False,
                        enable_model_summary=False, limit_val_batches=0, callbacks=[bar])
    trainer.fit(Tiny(), _loader(8))
    assert buf.getvalue().count("[train] epoch") == 2 and "batch 2/4" in buf.getvalue()
    assert isinstance(progress_bar(tty=True), RichProgressBar)
    with pytest.raises(ValueError, match="every_n_steps"):
        TextProgressBar(every_n_steps=0)


def test_default_callbacks_pick_text_lines_without_a_terminal():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from pc3d.cli._common import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["callbacks.progress_bar.every_n_steps=7", "paths.output_dir=."])
    bar = instantiate(cfg.callbacks.progress_bar)  # pytest captures stdout: not a terminal
    assert isinstance(bar, TextProgressBar) and bar.every_n_steps == 7
