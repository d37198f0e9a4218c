"""The event log, written by a child process so the driver only hands events over.

```
 listener bus ──EventLogClient (a listener)──batches of plain tuples, pickled──▶ stdin pipe
                                                                                    │
                      python -m sparkctl.scheduler.event_log_child DIR ◀────────────┘
                        └─ EventLoggingListener: Spark's JSON lines into DIR/APP_ID(.inprogress)
```
Turning a task's events into Spark's JSON costs several microseconds, a sizeable share of
what the driver spends on a tiny task; handing them over costs well under one. The client
batches events and sends a batch when the bus has nothing left to deliver, when a job,
stage or executor event arrives (Spark flushes those at once too), or every ``BATCH``
events. The pipe is the child's stdin, so only the driver can write to it, and when the
driver goes (even by SIGKILL) the child reads EOF, writes what it has and exits, leaving
the log ``.inprogress`` as Spark leaves the log of an application that did not stop.
"""
from __future__ import annotations

import logging
import os
import pickle
import posixpath
import struct
import subprocess
import sys
from typing import Any

from sparkctl.fs import LOCAL, filesystem_for
from sparkctl.scheduler.event_logging import FLUSH_NOW, check_directory, local_dir
from sparkctl.scheduler.events import TaskEndRaw, TaskStartRaw

log = logging.getLogger("sparkctl.eventlog")

BATCH = 2048
HEADER = struct.Struct(">I")  # each batch: its length, then its pickle


class EventLogClient:
    """A bus listener that ships events to the writer process."""

    def __init__(self, directory: str, overwrite: bool = False, log_block_updates: bool = False,
                 conf: Any = None) -> None:
        self.fs = filesystem_for(directory, conf)
        check_directory(directory, self.fs)  # here, so a bad directory stops the driver at once
        self.remote = self.fs is not LOCAL
        self.directory = directory if self.remote else local_dir(directory)
        self.overwrite = overwrite
        self.path = self.final_path = ""
        args = [sys.executable, "-m", "sparkctl.scheduler.event_log_child", self.directory,
                "1" if overwrite else "0", "1" if log_block_updates else "0"]
        self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, close_fds=True,
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p)))
        # a URL's filesystem, credentials and all, goes over the private pipe, never argv
        self.batch: list[Any] = [("fs", self.fs)] if self.remote else []
        self.pending = bytearray()  # handed over but not yet taken by the pipe
        self.failed = False
        _widen_pipe(self.proc)
        assert self.proc.stdin is not None
        os.set_blocking(self.proc.stdin.fileno(), False)

    # ------------------------------------------------------------- the listener interface
    def open(self, app_id: str) -> None:
        self.final_path = posixpath.join(self.directory, app_id)
        self.path = self.final_path + ".inprogress"
        exists = self.fs.exists(self.fs.strip(self.final_path)) if self.remote else os.path.exists(self.final_path)
        if exists and not self.overwrite:
            raise ValueError(f"the event log {self.final_path} exists already "
                             "(set spark.eventLog.overwrite=true to replace it)")
        self.batch.append(("open", app_id))
        self._send()

    def on_event(self, event: dict[str, Any]) -> None:
        self.batch.append(("event", event))
        if event.get("Event") in FLUSH_NOW or len(self.batch) >= BATCH:
            self._send()

    def on_task_start_raw(self, raw: TaskStartRaw) -> None:
        self.batch.append(tuple(raw))
        if len(self.batch) >= BATCH:
            self._send()

    def on_task_end_raw(self, raw: TaskEndRaw) -> None:
        self.batch.append((raw.ts, tuple(raw.start), raw.is_map, raw.state, raw.error_type, raw.error_message,
                           raw.traceback, raw.metrics, raw.result_size))
        if len(self.batch) >= BATCH:
            self._send()

    def on_idle(self) -> None:
        if self.batch or self.pending:
            self._send()

    def stop(self) -> None:
        self.batch.append(("stop",))  # the application ended: the log is complete
        self._send(wait=True)
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(30)
        except (OSError, subprocess.TimeoutExpired) as e:
            log.error("the event log writer did not finish: %s", e)
            proc.kill()
            proc.wait(5)
        if proc.returncode:
            log.error("the event log writer exited with code %s; the log %s may be incomplete", proc.returncode,
                      self.path)
        elif self.final_path:
            log.info("Event log written to %s", self.final_path)

    # ------------------------------------------------------------- transport
    def _send(self, wait: bool = False) -> None:
        """Hand the batch over. The pipe is non-blocking: what does not fit waits here for
        the next call (the writer runs at a low priority), so the bus never waits on it;
        ``wait`` (at stop) writes everything."""
        batch, self.batch = self.batch, []
        proc = self.proc
        if proc is None or self.failed:
            return
        if batch:
            data = pickle.dumps(batch, pickle.HIGHEST_PROTOCOL)
            self.pending += HEADER.pack(len(data)) + data
        assert proc.stdin is not None
        fd = proc.stdin.fileno()
        if wait:
            os.set_blocking(fd, True)
        try:
            while self.pending:
                try:
                    n = os.write(fd, self.pending)
                except BlockingIOError:
                    return
                del self.pending[:n]
        except OSError as e:
            self.failed = True
            self.pending.clear()
            log.error("the event log writer is gone (%s): no more events are logged to %s", e, self.path)


def _widen_pipe(proc: subprocess.Popen[bytes]) -> None:
    """Room for a few batches in the pipe (Linux), so a writer that lags behind a burst of
    tasks does not make the bus wait."""
    import fcntl
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", 1031)
    try:
        assert proc.stdin is not None
        fcntl.fcntl(proc.stdin.fileno(), setpipe, 1 << 20)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size, or not Linux: the default pipe does
