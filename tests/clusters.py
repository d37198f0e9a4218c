"""A standalone cluster for tests: daemons started with the real CLI under private
conf/pid/log/work directories (so nothing is shared with the machine or other tests)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


class CliCluster:
    def __init__(self, base: Path, master_conf: str = "") -> None:
        self.base = base
        self.conf = base / "conf"
        self.conf.mkdir()
        (self.conf / "sparkctl-defaults.conf").write_text(master_conf)
        self.work = base / "work"
        self.env = dict(os.environ)
        self.env.update({
            "PYTHONPATH": str(ROOT),
            "SPARKCTL_CONF_DIR": str(self.conf),
            "SPARKCTL_PID_DIR": str(base / "pids"),
            "SPARKCTL_LOG_DIR": str(base / "logs"),
            "SPARKCTL_WORK_DIR": str(self.work),
        })
        self.env.pop("SPARKCTL_SECRET", None)
        self.env.pop("SPARKCTL_MASTER", None)
        self.url = ""

    def cli(self, *args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), *args], env=self.env, cwd=self.base,
                           capture_output=True, text=True, timeout=timeout)
        if check:
            assert r.returncode == 0, f"sparkctl {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}"
        return r

    def start(self, workers: list[tuple[str, int]]) -> None:
        out = self.cli("master", "start", "--host", "127.0.0.1", "--port", "0", "--webui-port", "0").stdout
        self.url = next(w for w in out.split() if w.startswith("spark://"))
        for host, cores in workers:
            self.cli("worker", "start", "--master", self.url, "--host", host, "--port", "0", "--webui-port", "0",
                     "--cores", str(cores), "--memory", "4g")

    def state(self) -> dict[str, Any]:
        return json.loads(self.cli("status", "--master", self.url, "--json").stdout)

    def stop(self) -> None:
        self.cli("worker", "stop", check=False)
        self.cli("master", "stop", check=False)


def wait_for(cond: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
