"""bin/sparkctl on a machine whose python3 lacks sparkctl's dependencies: it hands over to
the checkout's .venv, and without one it says in one line how to set the checkout up."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def bare_python(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run *script* with this interpreter cut off from its site-packages (-S), as the
    machine's own python3 without our packages would run it."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARKCTL_BIN_VENV")}
    return subprocess.run([sys.executable, "-S", str(script), *args], capture_output=True, text=True,
                          timeout=60, env=env)


@pytest.mark.timeout(60)
def test_without_a_venv_one_line_says_how_to_set_up(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    shutil.copy(ROOT / "bin" / "sparkctl", tmp_path / "bin" / "sparkctl")
    (tmp_path / "sparkctl").symlink_to(ROOT / "sparkctl")
    r = bare_python(tmp_path / "bin" / "sparkctl", "status")
    assert r.returncode == 2, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "lacks click" in lines[0] and f"cd {tmp_path} && python3 -m venv .venv" in lines[0]


@pytest.mark.timeout(60)
def test_the_checkouts_venv_takes_over() -> None:
    venv_python = ROOT / ".venv" / "bin" / "python"
    if not os.access(venv_python, os.X_OK):
        pytest.skip("this checkout has no .venv (the README's commands make one)")
    r = bare_python(ROOT / "bin" / "sparkctl", "worker", "start", "--master", "spark://h:1", "--cores", "0")
    assert r.returncode == 2, r
    assert r.stderr.strip().splitlines() == [
        "sparkctl: --cores must be at least 1, got 0 (see 'sparkctl worker start --help')"]
