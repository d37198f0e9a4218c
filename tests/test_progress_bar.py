"""The console progress bar: drawn like Spark's, long stages named and timed, and erased when
a job ends, before the program prints again (a real job on a pseudo-terminal proves that
no output lands on a stale bar)."""
from __future__ import annotations

import fcntl
import io
import os
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sparkctl.ui.progress import ConsoleProgressBar, StageProgress, elapsed_text, render, short_name
from tests.clusters import ROOT, assert_none_left


def screen_lines(raw: str) -> list[str]:
    """What a terminal shows for *raw*: "\\r" returns to the line's start and later text
    overwrites it, "\\n" ends the line (a pty turns "\\n" into "\\r\\n")."""
    lines: list[str] = []
    cells: list[str] = []
    col = 0
    for ch in raw:
        if ch == "\n":
            lines.append("".join(cells).rstrip())
            cells, col = [], 0
        elif ch == "\r":
            col = 0
        else:
            if col < len(cells):
                cells[col] = ch
            else:
                cells.append(ch)
            col += 1
    lines.append("".join(cells).rstrip())
    return lines


class FakeTaskSet:
    def __init__(self, stage_id: int, job_id: int, done: int, running: int, total: int, attempt: int = 0) -> None:
        self.stage_id = stage_id
        self.stage_attempt = attempt
        self.job_id = job_id
        self.num_succeeded = done
        self.running = {i: None for i in range(running)}
        self.partitions = list(range(total))
        self.zombie = False


class FakeRuntime:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tasks = type("Tasks", (), {"task_sets": []})()
        self.status = type("Status", (), {"stages": {}})()
        self.progress_bar: Any = None

    def add(self, ts: FakeTaskSet, name: str = "") -> FakeTaskSet:
        self.tasks.task_sets.append(ts)
        self.status.stages[ts.stage_id] = type("Rec", (), {"name": name})()
        return ts


def _bar(runtime: FakeRuntime, out: io.StringIO, columns: int = 80) -> ConsoleProgressBar:
    bar = ConsoleProgressBar(runtime, stream=out, start=False)  # refresh is driven by hand
    bar.width = lambda: columns - 1  # type: ignore[method-assign]
    return bar


@pytest.mark.timeout(10)
def test_renders_like_spark() -> None:
    line = render([StageProgress(2, 0, 0, 3, 2, 8)], 60)
    assert line.startswith("[Stage 2:") and line.endswith("(3 + 2) / 8]") and "=" in line and ">" in line
    assert len(line) == 60
    # the bar's filled part is proportional to the tasks done: 3 of 8
    inner = line[len("[Stage 2:"):-len("(3 + 2) / 8]")]
    assert inner.count("=") == len(inner) * 3 // 8
    two = render([StageProgress(1, 0, 0, 8, 0, 8), StageProgress(2, 0, 0, 0, 1, 4)], 80)
    assert two.index("[Stage 1:") < two.index("[Stage 2:") and len(two) <= 80
    assert "(8 + 0) / 8]" in two and ">" not in two.split("[Stage 2")[0]  # a full bar has no head


@pytest.mark.timeout(10)
def test_waits_half_a_second_and_clears() -> None:
    runtime = FakeRuntime()
    out = io.StringIO()
    bar = _bar(runtime, out)
    assert runtime.progress_bar is bar
    runtime.add(FakeTaskSet(1, 0, 1, 1, 4))
    bar.refresh(100.0)
    assert out.getvalue() == ""  # younger than half a second
    bar.refresh(100.6)
    assert "[Stage 1:" in out.getvalue() and "(1 + 1) / 4]" in out.getvalue()
    runtime.tasks.task_sets.clear()
    bar.refresh(101.0)
    assert bar.last_line == "" and screen_lines(out.getvalue()) == [""]
    bar.stop()
    assert runtime.progress_bar is None


@pytest.mark.timeout(10)
def test_long_stage_shows_its_name_and_elapsed_time_within_the_width() -> None:
    assert short_name("reduceByKey at /home/me/jobs/app.py:12") == "reduceByKey at app.py:12"
    assert [elapsed_text(s) for s in (7, 72, 3723)] == ["0:07", "1:12", "1:02:03"]
    runtime = FakeRuntime()
    out = io.StringIO()
    bar = _bar(runtime, out, columns=100)
    runtime.add(FakeTaskSet(3, 0, 3, 2, 8), "reduceByKey at /home/me/jobs/app.py:12")
    bar.refresh(10.0)
    bar.refresh(11.0)
    assert bar.last_line.startswith("[Stage 3:")  # a second old: no name yet
    bar.refresh(22.4)
    assert bar.last_line.startswith("[Stage 3 (reduceByKey at app.py:12) 0:12:=")
    assert bar.last_line.endswith("(3 + 2) / 8]") and len(bar.last_line) == 99
    # the DAG scheduler's stage names it as Spark does: a shuffle map stage by the call that made its RDD
    shuffle_stage = type("Stage", (), {"call_site": "reduceByKey at /home/me/jobs/app.py:9"})()
    runtime.dag = type("DAG", (), {"stages": {3: shuffle_stage}})()  # type: ignore[attr-defined]
    bar.refresh(23.0)
    assert bar.last_line.startswith("[Stage 3 (reduceByKey at app.py:9) 0:13:=")
    # a narrow terminal shortens the name, and keeps the line within its width
    stage = StageProgress(3, 0, 0, 3, 2, 8, "reduceByKey at app.py:12")
    narrow = render([stage], 55, {(3, 0): 12.0})
    assert narrow.startswith("[Stage 3 (reduceByKey at..) 0:12:=") and narrow.endswith("(3 + 2) / 8]")
    assert len(narrow) == 55
    # narrower still: the name goes, then the time; the bar keeps its ten cells
    assert render([stage], 45, {(3, 0): 12.0}).startswith("[Stage 3 0:12:=")
    assert render([stage], 30, {(3, 0): 12.0}).startswith("[Stage 3:=")


@pytest.mark.timeout(10)
def test_job_end_draws_the_final_count_then_erases_before_the_program_prints() -> None:
    runtime = FakeRuntime()
    out = io.StringIO()
    bar = _bar(runtime, out)
    ts = runtime.add(FakeTaskSet(0, 7, 10, 2, 12))
    bar.refresh(0.0)
    bar.refresh(1.0)
    assert "(10 + 2) / 12]" in bar.last_line
    # The job ends: the scheduler finished the task set, but the redraw thread has not run yet.
    ts.num_succeeded, ts.running = 12, {}
    bar.job_ended(7)
    drawn = out.getvalue()
    assert "(12 + 0) / 12]" in drawn  # its final count, once
    assert drawn.endswith("\r") and bar.last_line == ""
    out.write("1770\n")  # the program's next line starts on a clean line
    assert screen_lines(out.getvalue()) == ["1770", ""]
    # a late redraw of the ended job's task set (still listed) draws nothing
    ts.num_succeeded = 11
    bar.refresh(2.0)
    assert out.getvalue().endswith("1770\n")


@pytest.mark.timeout(10)
def test_failed_job_is_erased_without_a_full_bar_and_other_jobs_come_back() -> None:
    runtime = FakeRuntime()
    out = io.StringIO()
    bar = _bar(runtime, out)
    failing = runtime.add(FakeTaskSet(0, 1, 3, 1, 8))
    runtime.add(FakeTaskSet(5, 2, 1, 1, 4))
    bar.refresh(0.0)
    bar.refresh(1.0)
    assert "[Stage 0:" in bar.last_line and "[Stage 5:" in bar.last_line
    failing.zombie = True
    bar.job_ended(1, succeeded=False)
    assert "(8 + 0) / 8]" not in out.getvalue() and bar.last_line == ""
    bar.refresh(1.2)  # job 2 still runs: its stage is drawn again
    assert bar.last_line.startswith("[Stage 5:") and "[Stage 0:" not in bar.last_line


_APP = """
import sys, time
from sparkctl import SparkContext

def slow(x):
    time.sleep(0.2)
    return x

sc = SparkContext("local[2]", "progress-bar")
for n in (1770, 1771):
    total = sc.parallelize(range(12), 12).map(slow).count()
    print(n + total - 12, flush=True)
sc.stop()
print("done", flush=True)
"""


@pytest.mark.timeout(60)
def test_a_real_job_on_a_terminal_leaves_no_bar_under_the_next_output(tmp_path: Path) -> None:
    """A driver whose stdout and stderr are one pseudo-terminal, as in a shell: each job's
    bar shows, and the number printed after the job has its own, clean line."""
    (tmp_path / "app.py").write_text(_APP)
    conf = tmp_path / "conf"
    conf.mkdir()
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKCTL_")}
    env.update(PYTHONPATH=str(ROOT), SPARKCTL_CONF_DIR=str(conf))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "app.py")], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=slave, cwd=tmp_path, env=env)
    os.close(slave)
    raw = b""
    deadline = time.monotonic() + 45
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal has closed it
                break
            if not chunk:
                break
            raw += chunk
        assert proc.wait(15) == 0, raw.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    text = raw.decode("utf-8", "replace")
    assert "[Stage 0:" in text and "[Stage 1:" in text, text  # the bar was drawn for each job
    assert "(12 + 0) / 12]" in text, text  # at its final count when the job ended
    lines = screen_lines(text)
    assert "1770" in lines and "1771" in lines and "done" in lines, lines  # each on a line of its own
    assert not any("Stage" in line for line in lines), lines  # no bar left on the screen
    assert_none_left(tmp_path)
