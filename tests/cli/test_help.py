"""Every console script answers ``--help`` with what it does and one example (subprocess, as users run it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def _script(name: str) -> list[str]:
    exe = Path(sys.executable).parent / name
    if exe.is_file():
        return [str(exe)]
    module, func = SCRIPTS[name].split(":")
    return [sys.executable, "-c", f"import sys; from {module} import {func}; sys.exit({func}())"]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_says_what_and_shows_an_example(name, tmp_path):
    env = {**os.environ, "PC3D_LOG_DIR": str(tmp_path / "logs")}
    proc = subprocess.run([*_script(name), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    examples = [line for line in text.splitlines() if line.strip().lower().startswith(("example", name))
                and name in line]
    assert examples, f"{name} --help shows no example line:\n{text}"
    assert len(text.strip().splitlines()) >= 3
    assert not (tmp_path / "logs").exists() and not (tmp_path / "outputs").exists()  # --help writes nothing
