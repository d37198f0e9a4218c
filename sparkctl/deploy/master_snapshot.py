"""The master's state as plain data, for recovery: the whole of it, or what changed.

Part of :class:`~sparkctl.deploy.master_state.MasterStateMachine`. :meth:`snapshot` and
:meth:`restore` carry the whole state (to a master started later on the same recovery
directory); :meth:`take_changes` lists the records an event changed, for the journal
(:mod:`sparkctl.deploy.recovery`), so nothing is rewritten whole on an event.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sparkctl.deploy.master_info import (
    Action,
    ApplicationInfo,
    ExecutorInfo,
    MasterFields,
    WorkerInfo,
    log_info as _info,
    plural as _plural,
)
from sparkctl.deploy.messages import (
    ALIVE,
    EXEC_RUNNING,
    RUNNING,
    SUBMITTED,
    ApplicationDescription,
)
from sparkctl.deploy.recovery import (
    SNAPSHOT_VERSION,
    app_record,
    driver_from_record,
    driver_record,
    executor_record,
    worker_record,
)
from sparkctl.deploy.worker_index import HeartbeatOrder, WorkerIndex


class MasterSnapshots(MasterFields):
    """Snapshots, restore and change records (a part of the master's state machine)."""

    def snapshot(self) -> dict[str, Any]:
        """The persistent part (workers, applications) as JSON-ready plain data.

        Heartbeat times are left out: they mean nothing to a master restarted later, and
        leaving them out means a snapshot changes only when the cluster does.
        """
        return {
            "version": SNAPSHOT_VERSION,
            "next_app_number": self.next_app_number,
            "workers": [worker_record(w) for w in self.workers.values()],
            "apps": [dict(app_record(a), executors=[executor_record(e) for e in a.executors.values()])
                     for a in self.apps.values()],
            "completed": list(self.completed),
            "next_driver_number": self.next_driver_number,
            "drivers": [driver_record(d) for d in self.drivers.values()],
            "completed_drivers": list(self.completed_drivers),
        }

    def take_changes(self) -> list[dict[str, Any]]:
        """The journal records of what changed since the last call (needs :attr:`track_changes`).

        Replayed in order onto the :meth:`snapshot` taken before them
        (:class:`~sparkctl.deploy.recovery.ReplayState`), they give the snapshot of now.
        Costs what changed, never the whole state: a heartbeat changes nothing.
        """
        records: list[dict[str, Any]] = []
        changed, self._changed = self._changed, {}
        for kind in ("worker", "app", "exec", "driver"):
            for key, new in changed.items():
                if key[0] != kind:
                    continue
                if kind == "exec":
                    app = self.apps.get(key[1])
                    ex = app.executors.get(key[2]) if app is not None else None
                    records.append({"t": "exec", "app": key[1], "new": new, "v": executor_record(ex)} if ex else
                                   {"t": "-exec", "app": key[1], "id": key[2]})
                    continue
                tables: dict[str, dict[str, Any]] = {"worker": self.workers, "app": self.apps,
                                                     "driver": self.drivers}
                entry = tables[kind].get(key[1])
                if entry is None:
                    records.append({"t": "-" + kind, "id": key[1]})
                else:
                    make: dict[str, Callable[[Any], dict[str, Any]]] = {
                        "worker": worker_record, "app": app_record, "driver": driver_record}
                    records.append({"t": kind, "new": new, "v": make[kind](entry)})
        # The id counters and the completed lists (which only grow at the end and shrink at the front).
        meta_key = (self.next_app_number, self.next_driver_number, len(self.completed), self.completed[:1],
                    self.completed[-1:], len(self.completed_drivers), self.completed_drivers[:1],
                    self.completed_drivers[-1:])
        if meta_key != self._meta_key:
            self._meta_key = meta_key
            records.append({"t": "meta", "v": {"next_app_number": self.next_app_number,
                                               "next_driver_number": self.next_driver_number,
                                               "completed": list(self.completed),
                                               "completed_drivers": list(self.completed_drivers)}})
        return records

    def restore(self, data: dict[str, Any], now: float) -> list[Action]:
        """Replace the state with a :meth:`snapshot` taken earlier (by a master that then stopped).

        Restored ALIVE workers count as having just sent a heartbeat: those that do not
        re-register within a timeout become DEAD. Restored active applications get no new
        executors until their driver re-registers (with its app id), and are finished if
        it does not within a timeout.
        """
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported master snapshot version {data.get('version')!r}")
        self.workers = {}
        self.apps = {}
        self._index = WorkerIndex()
        self._heartbeats = HeartbeatOrder()
        self._by_address = {}
        self._orphans = {}
        self._awaiting_driver = {}
        for wd in data["workers"]:
            self._add_worker(WorkerInfo(wd["id"], wd["host"], int(wd["port"]), int(wd["cores"]), int(wd["memory"]),
                                        int(wd.get("webui_port", 0)), wd["state"], now))
        for ad in data["apps"]:
            desc = ApplicationDescription(**ad["desc"])
            app = ApplicationInfo(ad["id"], desc, float(ad["submit_time"]), ad["state"], ad.get("end_time"),
                                  next_executor_id=int(ad.get("next_executor_id", 0)),
                                  failed_executors=int(ad.get("failed_executors", 0)),
                                  last_failure=ad.get("last_failure", ""), last_log_tail=ad.get("last_log_tail", ""))
            app.hosts = None  # where it ran before the restart is not known
            self.apps[app.id] = app
            if not app.active:
                continue
            app.awaiting_driver_since = now
            self._awaiting_driver[app.id] = None
            for ed in ad.get("executors", []):
                worker = self.workers.get(ed["worker_id"])
                if worker is None or worker.state != ALIVE:
                    continue
                ex = ExecutorInfo(app.id, ed["executor_id"], worker.id, int(ed["cores"]), int(ed["memory"]),
                                  ed.get("state", EXEC_RUNNING))
                ex.running_since = 0.0 if ex.state == EXEC_RUNNING else None
                app.add_executor(ex)
                worker.add_executor(ex)
            self._refresh_app_state(app)
        self.completed = [i for i in data.get("completed", []) if i in self.apps]
        self.next_app_number = int(data.get("next_app_number", 0))
        actions = self._restore_drivers(data, now)
        active_drivers = sum(1 for d in self.drivers.values() if d.active)
        drivers = f" and {_plural(active_drivers, 'active driver')}" if active_drivers else ""
        # The journal starts again from this state's snapshot, not from these changes.
        self._changed = {}
        self._meta_key = ()
        return [_info(f"Recovered {_plural(len(self.workers), 'worker')} and "
                      f"{_plural(len(self.active_apps()), 'active application')}{drivers} from a snapshot")] + actions

    def _restore_drivers(self, data: dict[str, Any], now: float) -> list[Action]:
        # Snapshots from before cluster deploy mode have no drivers: nothing to restore.
        self.drivers = {}
        self._delayed_drivers = {}
        actions: list[Action] = []
        for dd in data.get("drivers", []):
            driver = driver_from_record(dd)
            self.drivers[driver.id] = driver
            if driver.not_before is not None:
                self._delayed_drivers[driver.id] = None
        self.completed_drivers = [i for i in data.get("completed_drivers", []) if i in self.drivers]
        self.next_driver_number = int(data.get("next_driver_number", 0))
        for driver in list(self.drivers.values()):
            if driver.state not in (SUBMITTED, RUNNING):
                continue
            worker = self.workers.get(driver.worker_id)
            if worker is not None and worker.state == ALIVE:
                # It stays placed; the worker's re-registration says whether it still runs.
                worker.add_driver(driver)
            else:
                actions += self._driver_lost(driver, f"its worker {driver.worker_id} was gone when the master "
                                                     "recovered", now)
        return actions
