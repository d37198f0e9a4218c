"""The master's recovery state: the snapshot format, and an append-only journal of changes.

A master started with a recovery directory (Spark's ``spark.deploy.recoveryMode
FILESYSTEM``) records its workers, applications (with their executors) and drivers there,
and a master started later on the same directory gets them back
(:meth:`~sparkctl.deploy.master_state.MasterStateMachine.restore`). Heartbeats are never
recorded: they mean nothing to a master that starts later.

Nothing is rewritten whole on an event. After each event the state machine lists what
changed (:meth:`~sparkctl.deploy.master_state.MasterStateMachine.take_changes`): one
record per worker, application, executor or driver put or removed, and the counters. The
:class:`Journal` appends them, one JSON line per event, to the current segment. From time to
time (when the segments outgrow the snapshot) the closed segments are folded into a new
snapshot, off the master's lock: the fold reads the files only, never the live state.

```
 event ─▶ state machine ─take_changes()─▶ Journal.append ─▶ journal-00000007.log  (0600, append-only)
                                         Journal.rotate  ─▶ journal-00000008.log
          compact (a thread): master-snapshot.jsonl + journal-...07.log ─▶ master-snapshot.jsonl (through 7)
 start: master-snapshot.jsonl + later segments, replayed in order ─▶ restore()
```

A crash in the middle of a write leaves a torn last line: it is skipped with a warning,
and the state is that of the events before it. ``master-state.json``, the whole-state
file older masters wrote, is read when no journal exists.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from dataclasses import asdict
from typing import Any, Iterator

from sparkctl.deploy.master_info import ApplicationInfo, DriverInfo, ExecutorInfo, WorkerInfo
from sparkctl.deploy.messages import DriverDescription, DriverFile
from sparkctl.util.fsutil import private_makedirs, write_private_atomic

__all__ = [
    "SNAPSHOT_VERSION", "LEGACY_SNAPSHOT_FILE", "SNAPSHOT_FILE", "Journal", "ReplayState",
    "worker_record", "app_record", "executor_record", "driver_record", "driver_from_record",
]

log = logging.getLogger("sparkctl.master")

SNAPSHOT_VERSION = 1
#: The whole-state snapshot an older master rewrote on every change; read if no journal exists.
LEGACY_SNAPSHOT_FILE = "master-state.json"
#: The compacted state: a header line (with the last journal segment folded into it), then
#: one record per line, in the journal's own record format.
SNAPSHOT_FILE = "master-snapshot.jsonl"
_SEGMENT = re.compile(r"journal-(\d{8})\.log")
#: Compact once the closed segments hold more than this many bytes and more than the snapshot.
MIN_COMPACT_BYTES = 1 << 20


# ----------------------------------------------------------------- records
def worker_record(w: WorkerInfo) -> dict[str, Any]:
    return {"id": w.id, "host": w.host, "port": w.port, "cores": w.cores, "memory": w.memory,
            "webui_port": w.webui_port, "state": w.state}


def app_record(a: ApplicationInfo) -> dict[str, Any]:
    """An application without its executors (they are records of their own)."""
    return {"id": a.id, "desc": asdict(a.desc), "submit_time": a.submit_time, "state": a.state,
            "end_time": a.end_time, "next_executor_id": a.next_executor_id,
            "failed_executors": a.failed_executors, "last_failure": a.last_failure,
            "last_log_tail": a.last_log_tail}


def executor_record(e: ExecutorInfo) -> dict[str, Any]:
    return {"executor_id": e.executor_id, "worker_id": e.worker_id, "cores": e.cores, "memory": e.memory,
            "state": e.state}


def _file_json(f: DriverFile) -> dict[str, str]:
    return {"name": f.name, "data": base64.b64encode(f.data).decode("ascii")}


def _file_from_json(d: dict[str, str]) -> DriverFile:
    return DriverFile(d["name"], base64.b64decode(d["data"]))


def driver_record(d: DriverInfo) -> dict[str, Any]:
    desc = d.desc
    return {
        "id": d.id, "submit_time": d.submit_time, "state": d.state, "worker_id": d.worker_id,
        "start_time": d.start_time, "end_time": d.end_time, "exit_code": d.exit_code, "message": d.message,
        "log_tail": d.log_tail, "launches": d.launches, "quick_failures": d.quick_failures,
        "not_before": d.not_before, "kill_requested": d.kill_requested,
        "desc": {"app_file": _file_json(desc.app_file), "app_args": list(desc.app_args),
                 "py_files": [_file_json(f) for f in desc.py_files], "settings": dict(desc.settings),
                 "cores": desc.cores, "memory": desc.memory, "supervise": desc.supervise, "user": desc.user,
                 "files": [_file_json(f) for f in desc.files], "archives": [_file_json(f) for f in desc.archives],
                 "archive_aliases": list(desc.archive_aliases)},
    }


def driver_from_record(dd: dict[str, Any]) -> DriverInfo:
    sd = dd["desc"]
    desc = DriverDescription(_file_from_json(sd["app_file"]), list(sd["app_args"]),
                             [_file_from_json(f) for f in sd["py_files"]], dict(sd["settings"]), int(sd["cores"]),
                             int(sd["memory"]), bool(sd["supervise"]), sd.get("user", ""),
                             [_file_from_json(f) for f in sd.get("files", [])],
                             [_file_from_json(f) for f in sd.get("archives", [])], list(sd.get("archive_aliases", [])))
    return DriverInfo(dd["id"], desc, float(dd["submit_time"]), dd["state"], dd.get("worker_id", ""),
                      dd.get("start_time"), dd.get("end_time"), dd.get("exit_code"), dd.get("message", ""),
                      dd.get("log_tail", ""), int(dd.get("launches", 0)), int(dd.get("quick_failures", 0)),
                      dd.get("not_before"), bool(dd.get("kill_requested", False)))


# ----------------------------------------------------------------- replay
class ReplayState:
    """A snapshot (as :meth:`MasterStateMachine.snapshot` makes it) with journal records applied."""

    def __init__(self, snapshot: dict[str, Any] | None = None) -> None:
        snapshot = snapshot or {}
        if snapshot and snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported master snapshot version {snapshot.get('version')!r}")
        self.workers: dict[str, dict[str, Any]] = {w["id"]: w for w in snapshot.get("workers", [])}
        self.apps: dict[str, dict[str, Any]] = {}
        self.executors: dict[str, dict[str, dict[str, Any]]] = {}
        for a in snapshot.get("apps", []):
            a = dict(a)
            self.executors[a["id"]] = {e["executor_id"]: e for e in a.pop("executors", [])}
            self.apps[a["id"]] = a
        self.drivers: dict[str, dict[str, Any]] = {d["id"]: d for d in snapshot.get("drivers", [])}
        self.meta: dict[str, Any] = {k: snapshot.get(k, d) for k, d in
                                     (("next_app_number", 0), ("completed", []), ("next_driver_number", 0),
                                      ("completed_drivers", []))}

    @staticmethod
    def _put(table: dict[str, Any], key: str, value: Any, new: bool) -> None:
        if new:
            table.pop(key, None)  # a new entry goes last, as in the master's own dicts
        table[key] = value

    def apply(self, r: dict[str, Any]) -> None:
        kind = r["t"]
        if kind == "worker":
            self._put(self.workers, r["v"]["id"], r["v"], r.get("new", False))
        elif kind == "-worker":
            self.workers.pop(r["id"], None)
        elif kind == "app":
            self._put(self.apps, r["v"]["id"], r["v"], r.get("new", False))
            if r.get("new", False) or r["v"]["id"] not in self.executors:
                self.executors[r["v"]["id"]] = {}
        elif kind == "-app":
            self.apps.pop(r["id"], None)
            self.executors.pop(r["id"], None)
        elif kind == "exec":
            table = self.executors.get(r["app"])
            if table is not None:
                self._put(table, r["v"]["executor_id"], r["v"], r.get("new", False))
        elif kind == "-exec":
            self.executors.get(r["app"], {}).pop(r["id"], None)
        elif kind == "driver":
            self._put(self.drivers, r["v"]["id"], r["v"], r.get("new", False))
        elif kind == "-driver":
            self.drivers.pop(r["id"], None)
        elif kind == "meta":
            self.meta.update(r["v"])
        else:
            raise ValueError(f"unknown journal record {kind!r}")

    def records(self) -> Iterator[dict[str, Any]]:
        """Records that rebuild this state when applied to an empty one, in order."""
        for w in self.workers.values():
            yield {"t": "worker", "v": w}
        for app_id, a in self.apps.items():
            yield {"t": "app", "v": a}
            for e in self.executors.get(app_id, {}).values():
                yield {"t": "exec", "app": app_id, "v": e}
        for d in self.drivers.values():
            yield {"t": "driver", "v": d}
        yield {"t": "meta", "v": self.meta}

    def snapshot(self) -> dict[str, Any]:
        return {
            "version": SNAPSHOT_VERSION,
            "next_app_number": self.meta["next_app_number"],
            "workers": list(self.workers.values()),
            "apps": [dict(a, executors=list(self.executors.get(i, {}).values())) for i, a in self.apps.items()],
            "completed": list(self.meta["completed"]),
            "next_driver_number": self.meta["next_driver_number"],
            "drivers": list(self.drivers.values()),
            "completed_drivers": list(self.meta["completed_drivers"]),
        }


# ----------------------------------------------------------------- the journal
def _segment_name(n: int) -> str:
    return f"journal-{n:08d}.log"


class Journal:
    """Segments of change records plus a snapshot, in one private directory.

    :meth:`append` and :meth:`rotate` are called under the master's lock and cost what the
    records cost; :meth:`compact` reads and writes files only and may run in any thread
    (one at a time).
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._file: Any = None
        self._segment = 0
        self._bytes_since_snapshot = 0
        self._snapshot_bytes = 0
        self._compact_lock = threading.Lock()

    # ------------------------------------------------------------- reading
    def _segments(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_SEGMENT.fullmatch, names) if m)

    def _load_snapshot(self) -> tuple[ReplayState | None, int]:
        """The snapshot file: a header line, then one record per line (read a line at a time,
        so a compaction in another thread never holds the interpreter for the whole file)."""
        path = os.path.join(self.directory, SNAPSHOT_FILE)
        try:
            with open(path, "rb") as f:
                header = json.loads(f.readline())
                if header.get("version") != SNAPSHOT_VERSION:
                    raise ValueError(f"unsupported master snapshot version {header.get('version')!r} in {path}")
                state = ReplayState()
                for line in f:
                    state.apply(json.loads(line))
        except FileNotFoundError:
            return None, 0
        self._snapshot_bytes = os.path.getsize(path)
        return state, int(header["through"])

    def _replay_segment(self, state: ReplayState, n: int, last: bool) -> None:
        path = os.path.join(self.directory, _segment_name(n))
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        # Every record ends with a newline: what follows the last one is a torn write.
        complete, tail = lines[:-1], lines[-1]
        for i, line in enumerate(complete):
            try:
                records = json.loads(line)
            except ValueError:
                if last and i == len(complete) - 1 and not tail:
                    tail = line  # a torn record that happened to end in a newline byte
                    break
                raise ValueError(f"{path}: record {i + 1} is not valid JSON") from None
            for record in records:
                state.apply(record)
        if tail:
            log.warning("Ignoring a torn last record (%d bytes) at the end of %s: the master stopped in the "
                        "middle of writing it", len(tail), path)

    def load(self) -> dict[str, Any] | None:
        """The recorded state as a snapshot (None if nothing was ever recorded here)."""
        loaded, through = self._load_snapshot()
        segments = [n for n in self._segments() if n > through]
        if loaded is None and not segments:
            legacy = os.path.join(self.directory, LEGACY_SNAPSHOT_FILE)
            if os.path.exists(legacy):
                with open(legacy, encoding="utf-8") as f:
                    return json.load(f)
            return None
        state = loaded or ReplayState()
        for i, n in enumerate(segments):
            self._replay_segment(state, n, i == len(segments) - 1)
        return state.snapshot()

    # ------------------------------------------------------------- writing
    def start(self, snapshot: dict[str, Any]) -> None:
        """Begin a fresh history from *snapshot* (the state after recovery): written whole,
        older segments and any legacy file removed, then a new segment opened."""
        private_makedirs(self.directory)
        previous = self._segments()
        self._segment = (previous[-1] if previous else 0) + 1
        has_history = bool(previous) or any(
            os.path.exists(os.path.join(self.directory, n)) for n in (SNAPSHOT_FILE, LEGACY_SNAPSHOT_FILE))
        empty = not any(snapshot.get(k) for k in ("workers", "apps", "drivers", "completed", "completed_drivers",
                                                   "next_app_number", "next_driver_number"))
        if has_history or not empty:  # a fresh directory and a fresh master: the empty journal says it all
            # Written before the older files go: a crash in between leaves a snapshot that
            # covers them, so they are skipped.
            self._write_snapshot(ReplayState(snapshot), self._segment - 1)
        for n in previous:
            self._remove(_segment_name(n))
        self._remove(LEGACY_SNAPSHOT_FILE)
        self._bytes_since_snapshot = 0
        self._open_segment()

    def _write_snapshot(self, state: ReplayState, through: int) -> None:
        # One small dumps per record, never one for the whole state: a C call that holds
        # the interpreter's lock for 15 ms at 5,000 workers would stall the master's events.
        lines = [json.dumps({"through": through, "version": SNAPSHOT_VERSION})]
        lines += [json.dumps(r, sort_keys=True, default=str, separators=(",", ":")) for r in state.records()]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        write_private_atomic(os.path.join(self.directory, SNAPSHOT_FILE), data)
        self._snapshot_bytes = len(data)

    def _remove(self, name: str) -> None:
        try:
            os.unlink(os.path.join(self.directory, name))
        except FileNotFoundError:
            pass

    def _open_segment(self) -> None:
        path = os.path.join(self.directory, _segment_name(self._segment))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
        self._file = os.fdopen(fd, "ab", buffering=0)

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append one event's *records* as one line, in one write."""
        if not records or self._file is None:
            return
        # One line per event: a torn line loses that event whole, never half of it.
        data = json.dumps(records, sort_keys=True, default=str, separators=(",", ":")).encode("utf-8") + b"\n"
        self._file.write(data)
        self._bytes_since_snapshot += len(data)

    def wants_compaction(self) -> bool:
        return self._bytes_since_snapshot > max(MIN_COMPACT_BYTES, self._snapshot_bytes)

    def rotate(self) -> int:
        """Close the current segment and open the next: the closed ones may be compacted."""
        closed = self._segment
        if self._file is not None:
            self._file.close()
        self._segment += 1
        self._open_segment()
        self._bytes_since_snapshot = 0
        return closed

    def compact(self, through: int) -> None:
        """Fold the snapshot and segments up to *through* (closed ones) into a new snapshot."""
        with self._compact_lock:
            loaded, done = self._load_snapshot()
            state = loaded or ReplayState()
            folded = [n for n in self._segments() if done < n <= through]
            for n in folded:
                self._replay_segment(state, n, False)
            self._write_snapshot(state, through)
            for n in folded:
                self._remove(_segment_name(n))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
