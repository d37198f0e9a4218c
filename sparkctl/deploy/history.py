"""The history server: the UI and REST API of applications, replayed from their event logs.

```
 spark.history.fs.logDirectory ──scan every spark.history.fs.update.interval──▶ FsHistoryProvider
   APP              (finished)                                                    │ new lines of each log
   APP.inprogress   (running: followed as it grows)                                ▼
   eventlog_v2_APP/events_N_APP (Spark's rolling logs, uncompressed)         AppStatusListener per app
                                                                                   │
 browser / tools ──GET /, /history/APP/jobs/, /api/v1/...──▶ UIServer ◀────────────┘
```
As Spark's ``FsHistoryProvider``, it reads the logs incrementally: each scan feeds only
the complete lines appended since the last one, so a running application's pages follow it,
and a finished one is read once. Logs written by sparkctl and by Apache Spark (plain JSON
lines) both load; compressed logs are skipped with a message naming them.

Run as a daemon with ``sparkctl history start`` (port 18080, pid file and log as the other
daemons), or ``python -m sparkctl.deploy.history``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field

from sparkctl.scheduler.event_logging import IN_PROGRESS, local_dir
from sparkctl.ui.server import UIServer, start_ui_server
from sparkctl.ui.status_listener import AppStatusListener

log = logging.getLogger("sparkctl.history")

DEFAULT_PORT = 18080
DEFAULT_LOG_DIR = "/tmp/spark-events"
DEFAULT_UPDATE_INTERVAL = 10.0
_COMPRESSED = (".lz4", ".lzf", ".snappy", ".zstd", ".zst", ".gz")


@dataclass
class _LogState:
    files: list[str]
    listener: AppStatusListener
    offsets: dict[str, int] = field(default_factory=dict)
    inodes: dict[str, int] = field(default_factory=dict)
    pending: dict[str, bytes] = field(default_factory=dict)
    bad_lines: int = 0


def _app_key(name: str) -> str | None:
    """The application a log belongs to, from its file name; None for files that are not logs."""
    if name.startswith(".") or name.endswith(".crc") or name.endswith(".tmp"):
        return None
    if name.startswith("eventlog_v2_"):
        return name[len("eventlog_v2_"):]
    if name.endswith(IN_PROGRESS):
        name = name[:-len(IN_PROGRESS)]
    if name.endswith(_COMPRESSED):
        return None
    return name


class FsHistoryProvider:
    """Applications found in one log directory, each replayed into its status listener."""

    def __init__(self, log_dir: str, retained_tasks: int = 100000) -> None:
        self.log_dir = local_dir(log_dir)
        self.retained_tasks = retained_tasks
        self.logs: dict[str, _LogState] = {}
        self.lock = threading.Lock()
        self._warned: set[str] = set()

    def applications(self) -> dict[str, AppStatusListener]:
        with self.lock:
            return {st.listener.app.app_id or key: st.listener for key, st in self.logs.items()}

    def _log_files(self) -> dict[str, list[str]]:
        """App key -> its files in reading order."""
        found: dict[str, list[str]] = {}
        try:
            names = sorted(os.listdir(self.log_dir))
        except OSError as e:
            if self.log_dir not in self._warned:
                self._warned.add(self.log_dir)
                log.warning("Cannot read the log directory %s: %s", self.log_dir, e.strerror or e)
            return found
        for name in names:
            path = os.path.join(self.log_dir, name)
            if name.endswith(_COMPRESSED) and not name.startswith("."):
                if path not in self._warned:
                    self._warned.add(path)
                    log.warning("Skipping %s: compressed event logs are not supported (write them with "
                                "spark.eventLog.compress=false)", path)
                continue
            key = _app_key(name)
            if key is None:
                continue
            if os.path.isdir(path) and name.startswith("eventlog_v2_"):
                parts = [p for p in os.listdir(path) if p.startswith("events_") and not p.endswith(_COMPRESSED)]
                parts.sort(key=lambda p: int(p.split("_")[1]) if p.split("_")[1].isdigit() else 0)
                found[key] = [os.path.join(path, p) for p in parts]
            elif os.path.isfile(path):
                # APP.inprogress renamed to APP: the same log (followed by inode)
                found.setdefault(key, []).append(path)
        for key, files in found.items():
            if len(files) > 1 and any(f.endswith(IN_PROGRESS) for f in files):
                found[key] = [f for f in files if not f.endswith(IN_PROGRESS)]
        return found

    def scan(self) -> int:
        """Read what was appended to every log since the last scan; the number of events read."""
        total = 0
        for key, files in self._log_files().items():
            with self.lock:
                state = self.logs.get(key)
            if state is None:
                state = _LogState(files, AppStatusListener(retained_tasks=self.retained_tasks, live=False))
            state.files = files
            total += self._read(state)
            state.listener.app.log_path = os.path.abspath(files[-1] if len(files) == 1 else os.path.dirname(files[-1]))
            with self.lock:
                if state.listener.app.app_id or state.listener.events_seen:
                    self.logs[key] = state
        return total

    def _read(self, state: _LogState) -> int:
        count = 0
        for path in state.files:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                continue
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                known = state.inodes.get(_stem(path))
                if known is not None and known != st.st_ino:
                    # a different file under this app's name (rewritten log): start over
                    state.listener = AppStatusListener(retained_tasks=self.retained_tasks, live=False)
                    state.offsets.clear()
                    state.pending.clear()
                state.inodes[_stem(path)] = st.st_ino
                offset = state.offsets.get(_stem(path), 0)
                if st.st_size <= offset:
                    continue
                f.seek(offset)
                data = state.pending.pop(_stem(path), b"") + f.read(st.st_size - offset)
                state.offsets[_stem(path)] = st.st_size
            lines = data.split(b"\n")
            if lines and lines[-1]:
                state.pending[_stem(path)] = lines[-1]  # a line still being written
            for line in lines[:-1]:
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    state.bad_lines += 1
                    if state.bad_lines == 1:
                        log.warning("Skipping a malformed line in %s", path)
                    continue
                if isinstance(event, dict):
                    state.listener.on_event(event)
                    count += 1
        return count


def _stem(path: str) -> str:
    return path[:-len(IN_PROGRESS)] if path.endswith(IN_PROGRESS) else path


class HistoryServer:
    def __init__(self, host: str, port: int, log_dir: str, update_interval: float = DEFAULT_UPDATE_INTERVAL,
                 allowed_hosts: str | None = None) -> None:
        self.provider = FsHistoryProvider(log_dir)
        self.update_interval = update_interval
        self.host, self.port, self.allowed_hosts = host, port, allowed_hosts
        self.server: UIServer | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HistoryServer":
        self.provider.scan()
        self.server = start_ui_server(self.host, self.port, self.provider.applications, history=True,
                                      title="sparkctl History Server", max_retries=0, allowed=self.allowed_hosts)
        self._thread = threading.Thread(target=self._run, daemon=True, name="history-scan")
        self._thread.start()
        log.info("History server at %s, reading %s every %g s", self.server.url, self.provider.log_dir,
                 self.update_interval)
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.update_interval):
            try:
                self.provider.scan()
            except Exception:
                log.warning("scanning %s failed", self.provider.log_dir, exc_info=True)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop()


# ----------------------------------------------------------------- the daemon
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sparkctl.deploy.history",
                                description="Serve the UI of applications from their event logs.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"web port, 0 = any free (default {DEFAULT_PORT})")
    p.add_argument("--log-directory", default=None,
                   help="event log directory (default: spark.history.fs.logDirectory, else /tmp/spark-events)")
    p.add_argument("--update-interval", type=float, default=None,
                   help="seconds between scans (default: spark.history.fs.update.interval, else 10)")
    p.add_argument("--ready-fd", type=int, default=None, help="file descriptor to write 'READY URL' to, then close")
    p.add_argument("--log-file", default=None, help="append logs here instead of stderr")
    return p.parse_args(argv)


def settings_from_defaults() -> tuple[str, float]:
    from sparkctl.conf import SparkConf

    conf = SparkConf()
    directory = conf.get("spark.history.fs.logDirectory") or DEFAULT_LOG_DIR
    interval = conf.get_duration("spark.history.fs.update.interval") or DEFAULT_UPDATE_INTERVAL
    return directory, interval


def main(argv: list[str] | None = None) -> int:
    os.umask(0o077)
    args = _parse_args(argv)
    from sparkctl.deploy.daemon import notify_ready, setup_daemon_logging, stop_on_signals

    try:
        setup_daemon_logging(args.log_file)
    except OSError as e:
        print(f"sparkctl history: cannot open the log file: {e}", file=sys.stderr)
        return 1
    stop = stop_on_signals(log)
    try:
        directory, interval = settings_from_defaults()
        directory = args.log_directory or directory
        interval = args.update_interval if args.update_interval is not None else interval
        if not os.path.isdir(local_dir(directory)):
            raise ValueError(f"the event log directory {directory} does not exist "
                             "(spark.history.fs.logDirectory, or --log-directory)")
        server = HistoryServer(args.host, args.port, directory, interval).start()
    except (OSError, ValueError) as e:
        log.error("Cannot start the history server: %s", e)
        print(f"sparkctl history: {e}", file=sys.stderr)
        return 1
    notify_ready(args.ready_fd, f"READY {server.url}\n")
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        log.info("History server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
