"""The project's promises to a newcomer: the README's two commands, the conf template,
and every sample job run end to end with `sparkctl submit`."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sparkctl.conf import DEFAULTS, render_template

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(180)


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README opens with a bash block"
    return [ln for ln in block.group(1).splitlines() if ln.strip()]


def test_readme_opens_with_two_commands_and_ci_runs_the_second() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert "sample_jobs/" in commands[0] and "submit" in commands[0]
    assert "pytest" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_conf_template_lists_every_setting() -> None:
    text = (ROOT / "conf" / "sparkctl-defaults.conf").read_text()
    assert text == render_template(), "regenerate conf/sparkctl-defaults.conf from sparkctl.conf.render_template()"
    for key in DEFAULTS:
        assert f"# {key}" in text


def submit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(cwd))
    return subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=150)


def test_wordcount_matches_plain_python(tmp_path: Path) -> None:
    out_dir = tmp_path / "counts"
    data = ROOT / "sample_jobs" / "data" / "words.txt"
    r = submit("--master", "local[2]", str(ROOT / "sample_jobs" / "wordcount.py"), str(data), str(out_dir),
               cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    word = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
    expected = Counter(w for line in data.read_text().splitlines() for w in word.findall(line.lower()))
    saved: dict[str, int] = {}
    for part in sorted(out_dir.glob("part-*")):
        for line in part.read_text().splitlines():
            w, _, n = line.rpartition("\t") if "\t" in line else line.rpartition(" ")
            saved[w.strip("()'\", ")] = int(n.strip("() "))
    assert (out_dir / "_SUCCESS").exists()
    assert saved == dict(expected)
    top = sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    for w, n in top:
        assert re.search(rf"\b{re.escape(w)}\s+{n}\b", r.stdout), r.stdout


@pytest.mark.parametrize("job, args, expect", [
    ("pi.py", ["4"], r"Pi is roughly 3\.1\d"),
    ("pagerank.py", [], r"\d\.\d"),
    ("join.py", [], r"\w"),
    ("sort.py", [], r"\w"),
])
def test_sample_job_runs(tmp_path: Path, job: str, args: list[str], expect: str) -> None:
    r = submit("--master", "local[2]", str(ROOT / "sample_jobs" / job), *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert re.search(expect, r.stdout), r.stdout


def test_wordcount_on_local_cluster(tmp_path: Path) -> None:
    r = submit("--master", "local-cluster[2,1,512]", str(ROOT / "sample_jobs" / "wordcount.py"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Top 10 words" in r.stdout
