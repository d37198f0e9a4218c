"""Event logs as Spark writes them: one JSON object per line, in ``spark.eventLog.dir``.

The file is ``<dir>/<app id>.inprogress`` while the application runs, renamed to
``<dir>/<app id>`` when it stops (an existing one is replaced only with
``spark.eventLog.overwrite``). Spark's History Server and ``sparkctl history`` both read it.
Lines are written as the bus delivers events and reach the file at once for job, stage,
executor and application events (as Spark flushes them), at least every ``FLUSH_INTERVAL``
seconds while tasks stream, and whenever the bus has nothing left to deliver, so a history
server following a running application is at most one bus poll behind. The file is private to the user (0600), as logs can
carry settings and data.

Not written (as Spark by default): block updates (``spark.eventLog.logBlockUpdates.enabled``).

``spark.eventLog.dir`` may be a URL (``s3a://bucket/spark-events``...). Object stores have
no appends, so the log is written to a private local file and uploaded: as
``<app id>.inprogress`` at most every ``UPLOAD_INTERVAL`` seconds while the application
runs (and when the driver is gone), and as ``<app id>`` when it stops.
"""
from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
import tempfile
import time
from typing import IO, Any

from sparkctl.fs import LOCAL, FileSystem
from sparkctl.scheduler import events as ev
from sparkctl.scheduler.events import TaskEndRaw, TaskStartRaw

log = logging.getLogger("sparkctl.eventlog")

IN_PROGRESS = ".inprogress"
FLUSH_INTERVAL = 1.0
_BLOCK_UPDATED = ("org.apache.spark.scheduler.SparkListenerBlockUpdated", "SparkListenerBlockUpdated")
# as Spark, these reach the file at once (a history server following the log sees them)
FLUSH_NOW = frozenset(("SparkListenerJobStart", "SparkListenerJobEnd", "SparkListenerStageSubmitted",
                        "SparkListenerStageCompleted", "SparkListenerExecutorAdded", "SparkListenerExecutorRemoved",
                        "SparkListenerBlockManagerAdded", "SparkListenerUnpersistRDD",
                        "SparkListenerEnvironmentUpdate", "SparkListenerApplicationStart",
                        "SparkListenerApplicationEnd"))


UPLOAD_INTERVAL = 10.0


def log_path(directory: str, app_id: str) -> str:
    return os.path.join(directory, app_id)


def local_dir(uri: str) -> str:
    """``spark.eventLog.dir`` as a local path (``file:`` URIs too)."""
    return LOCAL.strip(uri)


def check_directory(directory: str, fs: FileSystem) -> None:
    """A usable ``spark.eventLog.dir``: an existing local directory, or a store we can reach
    (an object store's "directory" is only a key prefix, and may have no object yet)."""
    if fs is LOCAL:
        if not os.path.isdir(local_dir(directory)):
            raise ValueError(f"spark.eventLog.dir={directory!r} is not an existing directory")
        return
    path = fs.strip(directory)
    if not fs.exists(path) and not fs.object_store:
        raise ValueError(f"spark.eventLog.dir={directory!r} is not an existing directory")


class EventLoggingListener:
    """Writes every event it hears to the application's event log.

    The log is named after the application's id, which a standalone master hands out only
    once the driver has registered: until ``open`` names it, events wait in memory."""

    def __init__(self, directory: str, overwrite: bool = False, log_block_updates: bool = False,
                 fs: FileSystem = LOCAL) -> None:
        check_directory(directory, fs)
        self.fs = fs
        self.remote_dir = "" if fs is LOCAL else fs.strip(directory)
        # a URL's log is written here first, then uploaded
        self.directory = local_dir(directory) if fs is LOCAL else tempfile.mkdtemp(prefix="sparkctl-eventlog-")
        self.last_upload = 0.0
        self.overwrite = overwrite
        self.log_block_updates = log_block_updates
        self.path = self.final_path = ""
        self.file: IO[str] | None = None
        self.waiting: list[str] | None = []  # lines before the log has a name
        self.last_flush = time.monotonic()
        self.dirty = False  # written since the last flush
        self.running: dict[int, str] = {}  # task id -> its Task Info's start (events.task_info_prefix)
        self._dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def open(self, app_id: str) -> None:
        """Create ``<dir>/<app_id>.inprogress`` and write what was held back."""
        self.final_path = log_path(self.directory, app_id)
        self.path = self.final_path + IN_PROGRESS
        exists = self.fs.exists(self._remote(app_id)) if self.remote_dir else os.path.exists(self.final_path)
        if exists and not self.overwrite:
            self.waiting = None
            raise ValueError(f"the event log {self._remote(app_id) or self.final_path} exists already "
                             "(set spark.eventLog.overwrite=true to replace it)")
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        self.file = os.fdopen(fd, "w", encoding="utf-8", buffering=1 << 16)
        held, self.waiting = self.waiting or [], None
        self._write(ev.log_start())
        for line in held:
            self._write_text(line)

    def _write(self, event: dict[str, Any]) -> None:
        self._write_text(self._dumps(event), event.get("Event") in FLUSH_NOW)

    def _write_text(self, text: str, flush: bool = False) -> None:
        f = self.file
        if f is None:
            if self.waiting is not None:
                self.waiting.append(text)
            return
        f.write(text)
        f.write("\n")
        now = time.monotonic()
        if flush or now - self.last_flush >= FLUSH_INTERVAL:
            f.flush()
            self.last_flush = now
            self.dirty = False
        else:
            self.dirty = True

    def on_event(self, event: dict[str, Any]) -> None:
        if event.get("Event") in _BLOCK_UPDATED and not self.log_block_updates:
            return
        self._write(event)

    def on_idle(self) -> None:
        """The bus has delivered everything: what is buffered goes to the file."""
        f = self.file
        if f is not None and self.dirty:
            f.flush()
            self.dirty = False
            self.last_flush = time.monotonic()
        if f is not None and self.remote_dir and time.monotonic() - self.last_upload >= UPLOAD_INTERVAL:
            self._upload(IN_PROGRESS)

    def _remote(self, app_id: str) -> str:
        return posixpath.join(self.remote_dir, app_id) if self.remote_dir else ""

    def _upload(self, suffix: str) -> None:
        """The local log, as it is, to the store as ``<app id><suffix>``."""
        name = os.path.basename(self.final_path)
        try:
            if self.file is not None:
                self.file.flush()
            with open(self.path, "rb") as f:
                self.fs.write_bytes(self._remote(name) + suffix, f.read())
            if not suffix:
                self.fs.rm(self._remote(name) + IN_PROGRESS)
        except OSError as e:  # the store is unreachable: try again later; the local copy stays whole
            log.warning("could not upload the event log to %s: %s", self.fs.url(self._remote(name)), e)
        self.last_upload = time.monotonic()

    def on_task_start_raw(self, raw: TaskStartRaw) -> None:
        prefix = self.running[raw.task_id] = ev.task_info_prefix(raw)
        self._write_text(ev.task_start_json(raw, prefix))

    def on_task_end_raw(self, raw: TaskEndRaw) -> None:
        self._write_text(ev.task_end_json(raw, self.running.pop(raw.start.task_id, None)))

    def stop(self) -> None:
        """The application ended: close the log and give it its final name."""
        f = self.file
        if f is None:
            return
        if self.remote_dir:
            f.flush()
            self._upload("")
            self.file = None
            f.close()
            shutil.rmtree(self.directory, ignore_errors=True)
            log.info("Event log written to %s", self.fs.url(self._remote(os.path.basename(self.final_path))))
            return
        self.file = None
        f.close()
        os.replace(self.path, self.final_path)
        log.info("Event log written to %s", self.final_path)

    def abandon(self) -> None:
        """The driver is gone without stopping: keep what was written, still in progress."""
        f = self.file
        if f is not None and self.remote_dir:
            self._upload(IN_PROGRESS)
        self.file = None
        if f is not None:
            f.close()
        if self.remote_dir:
            shutil.rmtree(self.directory, ignore_errors=True)
