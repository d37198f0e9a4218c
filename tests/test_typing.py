"""The type hints hold: mypy over every module and package of sparkctl, the DataFrame engine
(``sparkctl/sql``) included. Third-party packages without type information (cloudpickle,
paramiko, tabulate, fsspec, pyarrow, sqlglot's untyped parts) count as Any."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
UNCHECKED = {"__pycache__"}


def checked_paths() -> list[str]:
    package = ROOT / "sparkctl"
    paths = sorted(str(p.relative_to(ROOT)) for p in package.glob("*.py"))
    paths += sorted(str(p.relative_to(ROOT)) for p in package.iterdir() if p.is_dir() and p.name not in UNCHECKED)
    return paths


def test_the_checked_packages_pass_mypy(tmp_path: Path) -> None:
    paths = checked_paths()
    assert {"sparkctl/scheduler", "sparkctl/rpc", "sparkctl/sql", "sparkctl/context.py"} <= set(paths)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), *paths],
        cwd=ROOT, capture_output=True, text=True, timeout=280, env={**os.environ, "MYPY_FORCE_COLOR": "0"})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
