"""README's two commands are the truth: CI must run exactly README's test command."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)][:2]


def test_ci_runs_readme_test_command_verbatim():
    main_cmd, test_cmd = _readme_commands()
    ci_lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines
    assert main_cmd.endswith("pc3d-train") and "pytest" in test_cmd


def test_console_scripts_declared():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'pc3d-train = "pc3d.cli.train:main"' in text and 'pc3d-data = "pc3d.cli.data:main"' in text
