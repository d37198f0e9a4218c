"""What the master shows: its status document (``/json``, ``sparkctl status``) and why an
application waits.

Part of :class:`~sparkctl.deploy.master_state.MasterStateMachine`. The document is made in
two steps so the daemon holds its lock only for the first: :meth:`json_parts` copies the
live state (workers as plain tuples), :func:`finish_json` builds the document from that copy.
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sparkctl.deploy.master_info import (
    ApplicationInfo,
    DriverInfo,
    MasterFields,
    WorkerInfo,
    plural as _plural,
)
from sparkctl.deploy.messages import (
    ALIVE,
    EXEC_RUNNING,
)


def _format_date(t: float) -> str:
    # Java's Date.toString, which Spark's JSON uses for "submitdate".
    return time.strftime("%a %b %d %H:%M:%S %Z %Y", time.localtime(t))


def _ms(t: float) -> int:
    return int(round(t * 1000))


class MasterStatusViews(MasterFields):
    """Status documents and explanations (a part of the master's state machine)."""

    # ------------------------------------------------------------- explanations
    def _room(self) -> _Room:
        """The ALIVE workers' extremes, in one pass (for explanations)."""
        return _Room(_worker_rows(self.workers.values()))

    def waiting_reason(self, app_id: str, room: _Room | None = None) -> str:
        """Why *app_id* has no running executor, in a sentence or two; "" once one runs.

        *room* (from :meth:`_room`) saves a walk over the workers when explaining many apps.
        """
        app = self.apps.get(app_id)
        if app is None:
            return f"no application {app_id} is registered with this master"
        if not app.active:
            return f"application {app_id} is {app.state}"
        if app.awaiting_driver_since is not None:
            return "its driver has not re-registered since the master restarted"
        if any(e.state == EXEC_RUNNING for e in app.executors.values()):
            return ""
        desc = app.desc
        unit = desc.executor_cores or 1
        if desc.executor_cores is not None and desc.cores_max is not None and desc.executor_cores > desc.cores_max:
            return (f"spark.executor.cores={desc.executor_cores} is more than spark.cores.max={desc.cores_max}, "
                    "so no executor can ever be launched")
        if self._out_of_retries(app):
            return self._failure_message(app)
        if app.failed_executors and app.last_failure:
            text = (f"its executors are failing to start ({app.failed_executors} in a row); "
                    f"the last, {app.last_failure}")
            tail = app.last_log_tail.strip()
            return f"{text}. Its log ends with:\n{tail}" if tail else text
        if app.executors:
            where = sorted({e.worker_id for e in app.executors.values()})
            return (f"{_plural(len(app.executors), 'executor')} launched on worker(s) {', '.join(where)} "
                    "and not running yet")
        room = room if room is not None else self._room()
        if not room.alive:
            if self.workers:
                return f"no worker is alive ({_plural(len(self.workers), 'worker')} registered, all DEAD)"
            return "no worker has registered with the master"
        need = f"needs {_plural(unit, 'core')} and {desc.executor_memory} MiB per executor"
        if unit > room.biggest_cores or desc.executor_memory > room.biggest_memory:
            return (f"it {need}, but no worker is that large (the largest has {_plural(room.biggest_cores, 'core')}, "
                    f"the largest {room.biggest_memory} MiB)")
        return (f"it {need}; largest free: {_plural(room.most_cores_free, 'core')} (worker {room.most_cores_id}), "
                f"{room.most_memory_free} MiB (worker {room.most_memory_id}); other applications hold the rest")

    # ------------------------------------------------------------- JSON
    def to_json(self, now: float, url: str | None = None) -> dict[str, Any]:
        """The master's status with Spark's field names (memory in MiB, times in ms since the epoch)."""
        return finish_json(self.json_parts(now, url))

    def json_parts(self, now: float, url: str | None = None) -> dict[str, Any]:
        """What :meth:`to_json` needs from the live state, copied: the workers as plain tuples.

        The daemon takes this under its lock and makes the document (:func:`finish_json`)
        after releasing it, so a status request costs the scheduler only this copy.
        """
        rows = _worker_rows(self.workers.values())
        room = _Room(rows)
        return {
            "url": url if url is not None else self.master_url,
            "workers": rows,
            "aliveworkers": room.alive,
            "cores": room.cores,
            "coresused": room.cores_used,
            "memory": room.memory,
            "memoryused": room.memory_used,
            "activeapps": [self._app_json(a, now, room) for a in self.active_apps()],
            "completedapps": [self._app_json(self.apps[i], now, room) for i in self.completed if i in self.apps],
            "activedrivers": [self._driver_json(d, now) for d in self.drivers.values() if d.active],
            "completeddrivers": [self._driver_json(self.drivers[i], now) for i in self.completed_drivers
                                 if i in self.drivers],
            "status": "ALIVE",
        }

    def _app_json(self, a: ApplicationInfo, now: float, room: _Room | None = None) -> dict[str, Any]:
        end = a.end_time if a.end_time is not None else now
        return {
            "id": a.id,
            "name": a.desc.name,
            "cores": a.cores_granted,
            "user": a.desc.user,
            "memoryperexecutor": a.desc.executor_memory,
            "submitdate": _format_date(a.submit_time),
            "starttime": _ms(a.submit_time),
            "duration": max(_ms(end) - _ms(a.submit_time), 0),
            "state": a.state,
            # Not in Spark 4's document: why an active app has no running executor ("" once
            # one runs), and its driver's UI (the name Spark 1's master used for it).
            "waitingreason": self.waiting_reason(a.id, room) if a.active else "",
            "appuiurl": a.desc.app_ui_url,
        }

    def _driver_json(self, d: DriverInfo, now: float) -> dict[str, Any]:
        end = d.end_time if d.end_time is not None else now
        return {
            "id": d.id,
            "starttime": _ms(d.submit_time),
            "submitdate": _format_date(d.submit_time),
            "state": d.state,
            "cores": d.desc.cores,
            "memory": d.desc.memory,
            "worker": d.worker_id or "None",  # Spark's spelling of "not placed yet"
            "mainclass": d.desc.app_file.name,
            # Not in Spark's document:
            "user": d.desc.user,
            "supervise": d.desc.supervise,
            "launches": d.launches,
            "exitcode": d.exit_code,
            "duration": max(_ms(end) - _ms(d.submit_time), 0),
            "message": self.driver_status(d.id).message,
        }


def _worker_rows(workers: Iterable[WorkerInfo]) -> list[tuple[Any, ...]]:
    """Each worker's status as a plain tuple (a copy, read after the lock is released)."""
    return [(w.id, w.host, w.port, w.webui_port, w.cores, w.cores_used, w.memory, w.memory_used, w.state,
             w.last_heartbeat) for w in workers]


class _Room:
    """The ALIVE workers' totals and extremes: the largest, and the ones with the most room free
    (the first registered among equals), from :func:`_worker_rows`."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        alive = cores = cores_used = memory = memory_used = biggest_cores = biggest_memory = 0
        most_cores_id = most_memory_id = ""
        most_cores_free = most_memory_free = -1
        for wid, _, _, _, c, cu, mem, mu, state, _ in rows:
            if state != ALIVE:
                continue
            alive += 1
            cores += c
            cores_used += cu
            memory += mem
            memory_used += mu
            if c > biggest_cores:
                biggest_cores = c
            if mem > biggest_memory:
                biggest_memory = mem
            if c - cu > most_cores_free:
                most_cores_free, most_cores_id = c - cu, wid
            if mem - mu > most_memory_free:
                most_memory_free, most_memory_id = mem - mu, wid
        self.alive, self.cores, self.cores_used, self.memory, self.memory_used = \
            alive, cores, cores_used, memory, memory_used
        self.biggest_cores, self.biggest_memory = biggest_cores, biggest_memory
        self.most_cores_id, self.most_cores_free = most_cores_id, most_cores_free
        self.most_memory_id, self.most_memory_free = most_memory_id, most_memory_free


def finish_json(parts: dict[str, Any]) -> dict[str, Any]:
    """The status document from :meth:`MasterStateMachine.json_parts` (no live state read)."""
    doc = dict(parts)
    doc["workers"] = [
        {"id": wid, "host": host, "port": port, "webuiaddress": f"http://{host}:{webui_port}", "cores": cores,
         "coresused": cores_used, "coresfree": cores - cores_used, "memory": memory, "memoryused": memory_used,
         "memoryfree": memory - memory_used, "state": state, "lastheartbeat": _ms(heartbeat)}
        for wid, host, port, webui_port, cores, cores_used, memory, memory_used, state, heartbeat in parts["workers"]
    ]
    return doc

