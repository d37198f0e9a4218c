"""The console progress bar, like Spark's: ``[Stage 2:=====>      (3 + 2) / 8]`` on stderr.

```
 progress-bar thread ── every 0.2 s: snapshot of the live task sets (under the runtime's lock)
                        ──▶ one line, redrawn in place with "\\r" (only when it changed)
 run_job (user's thread) ── job ended ──▶ job_ended(): the bar at its final count, then erased,
                                          before run_job returns and the program prints again
```

Drawn only when stderr is a terminal, only for stages running longer than half a
second. A stage running longer than five seconds also shows its name and how long it
has run, ``[Stage 3 (collect at app.py:12) 0:12:==>   (3 + 2) / 8]``, its name
shortened to fit the terminal's width.

The bar owns the line it draws: whatever the program prints next must start on a clean
line. So the end of a job is not left to the next periodic redraw, which would come
after the program's own output: the runtime calls :meth:`ConsoleProgressBar.job_ended`
synchronously before ``run_job`` returns, and one lock orders that against the
periodic redraw.
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sparkctl.scheduler.events import stage_name

FIRST_DELAY = 0.5
INTERVAL = 0.2
#: A stage running this long (seconds) shows its name and elapsed time.
LONG_STAGE = 5.0
#: The fewest '=' cells worth drawing; a name is shortened before the bar shrinks below it.
MIN_BAR = 10
#: Jobs remembered as ended, so a task set seen just before its job ended is not redrawn.
ENDED_KEPT = 1000


@dataclass(frozen=True)
class StageProgress:
    """One active stage attempt as the bar shows it."""

    stage_id: int
    attempt: int
    job_id: int
    done: int
    running: int
    total: int
    name: str = ""  # "collect at app.py:12"


def short_name(call_site: str) -> str:
    """``collect at /home/u/app.py:12`` -> ``collect at app.py:12``: the file's directory is
    what a user knows already and what the terminal cannot spare."""
    action, sep, where = call_site.partition(" at ")
    return f"{action} at {os.path.basename(where)}" if sep else call_site


def elapsed_text(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    s = max(int(seconds), 0)
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _fit_header(stage: StageProgress, elapsed: float | None, room: int) -> str:
    """``[Stage N (name) m:ss:`` in at most *room* characters: the name shortened first,
    then dropped, then the elapsed time dropped."""
    plain = f"[Stage {stage.stage_id}:"
    if elapsed is None:
        return plain
    clock = elapsed_text(elapsed)
    name = stage.name
    if name:
        full = f"[Stage {stage.stage_id} ({name}) {clock}:"
        if len(full) <= room:
            return full
        cut = room - len(f"[Stage {stage.stage_id} () {clock}:") - 2
        if cut >= 6:
            return f"[Stage {stage.stage_id} ({name[:cut]}..) {clock}:"
    timed = f"[Stage {stage.stage_id} {clock}:"
    return timed if len(timed) <= room else plain


def render(stages: list[StageProgress], width: int, elapsed: dict[tuple[int, int], float] | None = None) -> str:
    """The bar for *stages* in *width* columns; *elapsed* gives the seconds each long-running
    stage attempt has run (those show their name and time)."""
    if not stages:
        return ""
    bar_width = max(10, width // len(stages))
    parts = []
    for st in stages:
        tailer = f"({st.done} + {st.running}) / {st.total}]"
        since = (elapsed or {}).get((st.stage_id, st.attempt))
        header = _fit_header(st, since, bar_width - len(tailer) - MIN_BAR)
        w = bar_width - len(header) - len(tailer)
        if w > 0:
            percent = w * st.done // max(st.total, 1)
            bar = "=" * percent + (">" if percent < w else "") + " " * max(0, w - percent - 1)
            parts.append(header + bar[:w] + tailer)
        else:
            parts.append(header + tailer)
    return "".join(parts)


class ConsoleProgressBar:
    """Draws the bar of a runtime's active stages on *stream* from a thread of its own.

    Made, it registers itself as the runtime's ``progress_bar`` so that ``run_job`` can
    call :meth:`job_ended`; :meth:`stop` erases the bar and ends the thread."""

    def __init__(self, runtime: Any, stream: Any = None, clock: Callable[[], float] = time.monotonic,
                 start: bool = True) -> None:
        self.runtime = runtime
        self.stream = stream or sys.stderr
        self.clock = clock
        self.first_seen: dict[tuple[int, int], float] = {}
        self.last_line = ""
        self._shown: list[StageProgress] = []
        self._elapsed: dict[tuple[int, int], float] = {}  # of the long stages last drawn
        self._ended: deque[int] = deque(maxlen=ENDED_KEPT)
        self._lock = threading.Lock()  # one writer of the line at a time: redraw or job end
        self._stop = threading.Event()
        runtime.progress_bar = self
        self.thread = threading.Thread(target=self._run, daemon=True, name="progress-bar")
        if start:
            self.thread.start()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self.refresh(self.clock())

    def snapshot(self) -> list[StageProgress]:
        """Each active stage attempt: not a zombie, not complete, of a job not yet ended."""
        ended = set(self._ended)
        with self.runtime.lock:
            stages = []
            records = getattr(getattr(self.runtime, "status", None), "stages", None) or {}
            for t in self.runtime.tasks.task_sets:
                total = len(t.partitions)
                if t.zombie or t.num_succeeded >= total or t.job_id in ended:
                    continue
                name = short_name(self._stage_name(t.stage_id, records))
                stages.append(StageProgress(t.stage_id, t.stage_attempt, t.job_id, t.num_succeeded,
                                            len(t.running), total, name))
            return stages

    def _stage_name(self, stage_id: int, records: Any) -> str:
        """The stage's name as Spark gives it (a shuffle map stage: the call that made the
        RDD it shuffles, e.g. reduceByKey; a result stage: its action), read from the DAG
        scheduler's stage; else the name the status store has for it."""
        stage = getattr(getattr(self.runtime, "dag", None), "stages", {}).get(stage_id)
        if stage is not None:
            try:
                return stage_name(stage)
            except Exception:  # a stage without what names it: a bar without a name is still a bar
                pass
        return str(getattr(records.get(stage_id), "name", "") or "")

    def width(self) -> int:
        """Columns of the terminal the bar goes to (less one, so the line never wraps)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
        if columns <= 0:  # not a terminal, or one that never set its size (a fresh pty)
            columns = shutil.get_terminal_size((80, 20)).columns
        return max(columns - 1, 20)

    def refresh(self, now: float) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            stages = self.snapshot()
            shown = []
            live = set()
            elapsed = {}
            for st in stages:
                key = (st.stage_id, st.attempt)
                live.add(key)
                first = self.first_seen.setdefault(key, now)
                if now - first >= FIRST_DELAY:
                    shown.append(st)
                if now - first >= LONG_STAGE:
                    elapsed[key] = now - first
            for key in [k for k in self.first_seen if k not in live]:
                del self.first_seen[key]
            line = render(shown, self.width(), elapsed)
            self._shown = shown
            self._elapsed = elapsed
            self._draw(line)

    def _draw(self, line: str) -> None:
        if line == self.last_line:
            return
        if line:
            self.stream.write("\r" + line.ljust(len(self.last_line)))
        else:
            self.stream.write("\r" + " " * len(self.last_line) + "\r")
        self.stream.flush()
        self.last_line = line

    def job_ended(self, job_id: int, succeeded: bool = True) -> None:
        """Called by the runtime before ``run_job`` returns: a bar on the screen is drawn
        once more with this job's stages at their final count (when it succeeded), then
        erased, so the program's next output starts on a clean line. The next redraw brings
        back the stages of other jobs still running."""
        with self._lock:
            self._ended.append(job_id)  # its task sets are not drawn again, even if still listed
            if not self.last_line:
                return
            if succeeded:
                final = [replace(s, done=s.total, running=0) if s.job_id == job_id else s for s in self._shown]
                self._draw(render(final, self.width(), self._elapsed))
            self._draw("")
            self._shown = []

    def stop(self) -> None:
        """End the redraws and erase the bar (SparkContext.stop)."""
        with self._lock:
            self._stop.set()
            self._draw("")
        if getattr(self.runtime, "progress_bar", None) is self:
            self.runtime.progress_bar = None
