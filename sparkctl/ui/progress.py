"""The console progress bar, like Spark's: ``[Stage 2:=====>      (3 + 2) / 8]`` on stderr.

Drawn only when stderr is a terminal, only for stages running longer than half a second,
and redrawn at most five times a second from a daemon thread that reads the task
scheduler's state under the runtime's lock.
"""
from __future__ import annotations

import shutil
import sys
import threading
import time
from typing import Any

FIRST_DELAY = 0.5
INTERVAL = 0.2


class ConsoleProgressBar:
    def __init__(self, runtime: Any, stream: Any = None) -> None:
        self.runtime = runtime
        self.stream = stream or sys.stderr
        self.first_seen: dict[tuple[int, int], float] = {}
        self.last_line = ""
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="progress-bar")
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.refresh(time.monotonic())

    def snapshot(self) -> list[tuple[int, int, int, int]]:
        """(stage id, done, running, total) for each active stage."""
        with self.runtime.lock:
            return [(t.stage_id, t.num_succeeded, len(t.running), len(t.partitions))
                    for t in self.runtime.tasks.task_sets if not t.zombie]

    def render(self, stages: list[tuple[int, int, int, int]], width: int) -> str:
        if not stages:
            return ""
        bar_width = max(10, width // len(stages))
        parts = []
        for sid, done, running, total in stages:
            header = f"[Stage {sid}:"
            tailer = f"({done} + {running}) / {total}]"
            w = bar_width - len(header) - len(tailer)
            if w > 0:
                percent = w * done // max(total, 1)
                bar = "=" * percent + (">" if percent < w else "") + " " * max(0, w - percent - 1)
                parts.append(header + bar[:w] + tailer)
            else:
                parts.append(header + tailer)
        return "".join(parts)

    def refresh(self, now: float) -> None:
        stages = self.snapshot()
        shown = []
        live = set()
        for st in stages:
            key = (st[0], st[3])
            live.add(key)
            first = self.first_seen.setdefault(key, now)
            if now - first >= FIRST_DELAY:
                shown.append(st)
        for key in [k for k in self.first_seen if k not in live]:
            del self.first_seen[key]
        width = shutil.get_terminal_size((80, 20)).columns
        line = self.render(shown, width - 1)
        if line != self.last_line:
            self.stream.write("\r" + line.ljust(len(self.last_line)) + ("\r" if not line else ""))
            self.stream.flush()
            self.last_line = line

    def stop(self) -> None:
        self._stop.set()
        if self.last_line:
            self.stream.write("\r" + " " * len(self.last_line) + "\r")
            self.stream.flush()
            self.last_line = ""
