"""The layers of DESIGN.md, enforced: ``lint-imports`` (import-linter, configured in
pyproject.toml's ``[tool.importlinter]``) passes on the package and fails on an upward import.

Layer order, lowest first: pc3d.io, pc3d.geometry -> pc3d.ops -> pc3d.nn -> pc3d.data ->
pc3d.metrics -> pc3d.models -> pc3d.callbacks / pc3d.viz / pc3d.export -> pc3d.cli.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports")

pytestmark = pytest.mark.skipif(
    LINT_IMPORTS is None, reason="lint-imports (import-linter, in the dev extra) is not installed"
)


def _lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), *filter(None, [env.get("PYTHONPATH")])])
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layers_are_kept():
    res = _lint(ROOT)
    assert res.returncode == 0, f"lint-imports found imports that break the layers:\n{res.stdout}\n{res.stderr}"
    assert "broken" in res.stdout and "0 broken" in res.stdout


def test_an_upward_import_is_caught(tmp_path):
    """A copy of the package with ``pc3d.ops.knn`` importing ``pc3d.models`` must fail, naming it."""
    shutil.copytree(ROOT / "pc3d", tmp_path / "pc3d", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    knn = tmp_path / "pc3d" / "ops" / "knn.py"
    knn.write_text(knn.read_text() + "\nimport pc3d.models  # noqa: E402,F401  deliberate upward import\n")
    res = _lint(tmp_path, pythonpath=tmp_path)
    out = res.stdout + res.stderr
    assert res.returncode != 0, f"lint-imports accepted an upward import:\n{out}"
    assert "pc3d.ops.knn -> pc3d.models" in out, out
    # the unmodified copy passes: it is the edit that broke the contract, not the copy
    knn.write_text(knn.read_text().replace("\nimport pc3d.models  # noqa: E402,F401  deliberate upward import\n", ""))
    assert _lint(tmp_path, pythonpath=tmp_path).returncode == 0
