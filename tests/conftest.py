"""Shared fixtures: a tiny built-in dataset generated once per session, a tiny Image2Cloud checkpoint
trained on it, and config composition."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import TINY_SYNTHETIC

os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_MODE", "offline")


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory) -> Path:
    """Root of a tiny built-in dataset (all categories, 5 shapes each)."""
    from pc3d.data.synthetic import ensure_generated

    root = tmp_path_factory.mktemp("builtin") / "pc3d_synthetic"
    ensure_generated(root, progress=False, **TINY_SYNTHETIC)
    return root


@pytest.fixture(scope="session")
def img_ckpt(tiny_builtin, tmp_path_factory) -> Path:
    """A tiny Image2Cloud checkpoint trained for one step on the tiny built-in data (no autoencoder)."""
    from tests.helpers import train_tiny_img2cloud

    return train_tiny_img2cloud(tiny_builtin, tmp_path_factory.mktemp("img2cloud"))
