"""Shared fixtures: a tiny built-in dataset generated once per session, and config composition."""

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
