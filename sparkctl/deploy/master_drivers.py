"""The master's drivers in cluster deploy mode: submitted, placed on a worker, supervised.

Part of :class:`~sparkctl.deploy.master_state.MasterStateMachine` (events in, actions out,
no I/O), kept apart as Spark keeps ``DriverInfo`` handling apart in its ``Master``.

Drivers are placed before applications get executors (as Spark does): each WAITING
driver, in submission order, goes to the ALIVE worker with the most free cores among those
with room for its cores and memory, which it then holds as an executor would. A supervised
driver that exits non-zero, or whose worker is lost, becomes WAITING again; quick failures
in a row are relaunched with a growing delay, so a driver that cannot start does not spin.
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import replace

from sparkctl.deploy.master_info import (
    Action,
    DriverChanged,
    DriverInfo,
    Log,
    MasterFields,
    Reply,
    SendToWorker,
    WorkerInfo,
    log_info as _info,
    log_warning as _warn,
    plural as _plural,
)
from sparkctl.deploy.messages import (
    ERROR,
    FINAL_DRIVER_STATES,
    FINISHED,
    KILLED,
    RUNNING,
    SUBMITTED,
    WAITING,
    DriverDescription,
    DriverFile,
    DriverStateChanged,
    DriverStatusResponse,
    KillDriver,
    KillDriverResponse,
    LaunchDriver,
    SubmitDriverResponse,
)

#: A supervised driver that ran this long (seconds) before it failed is relaunched at once;
#: see :func:`supervise_delay` for quicker failures.
SUPERVISE_STABLE_RUN = 30.0
#: The longest pause between two launches of a supervised driver that keeps failing.
SUPERVISE_MAX_DELAY = 60.0
# The files of a driver become files in the worker's work dir: one plain, visible name each.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_PY_FILE_SUFFIXES = (".py", ".zip", ".egg")


def valid_file_name(name: str) -> bool:
    """Whether *name* is safe as a file name in a driver's directory (no path, no dot file)."""
    return bool(_FILE_NAME.fullmatch(name)) and name not in ("stdout", "stderr", "conf")


def supervise_delay(quick_failures: int) -> float:
    """Seconds before relaunching a supervised driver after *quick_failures* quick failures in a row.

    The first is relaunched at once (a flaky start deserves a second chance without
    waiting); then 1 s, 2 s, 4 s... up to :data:`SUPERVISE_MAX_DELAY`.
    """
    if quick_failures <= 1:
        return 0.0
    return min(2.0 ** (quick_failures - 2), SUPERVISE_MAX_DELAY)


class DriverBookkeeping(MasterFields):
    """Submitting, placing, supervising and ending drivers (a part of the master's state machine)."""

    def _new_driver_id(self, now: float) -> str:
        stamp = time.strftime("%Y%m%d%H%M%S", time.localtime(now))
        while True:
            driver_id = f"driver-{stamp}-{self.next_driver_number:04d}"
            self.next_driver_number += 1
            if driver_id not in self.drivers:
                return driver_id

    def submit_driver(self, desc: DriverDescription, now: float) -> list[Action]:
        """A submission client hands over a driver to run on some worker."""
        problem = self._invalid_driver(desc)
        if problem:
            return [_warn(f"Refusing to accept driver {desc.app_file.name!r}: {problem}"),
                    Reply(SubmitDriverResponse(False, None, problem))]
        driver = DriverInfo(self._new_driver_id(now), desc, now)
        self.drivers[driver.id] = driver
        self._mark("driver", driver.id, new=True)
        how = f"{_plural(desc.cores, 'core')}, {desc.memory} MiB" + (", supervised" if desc.supervise else "")
        actions: list[Action] = [_info(f"Accepted driver {driver.id} ({desc.app_file.name}; {how})"),
                                 Reply(SubmitDriverResponse(True, driver.id, f"driver {driver.id} submitted")),
                                 DriverChanged(driver.id)]
        return actions + self.schedule(now)

    @staticmethod
    def _invalid_driver(desc: DriverDescription) -> str:
        if desc.cores < 1:
            return f"a driver needs at least 1 core, not {desc.cores}"
        if desc.memory < 1:
            return f"a driver needs at least 1 MiB of memory, not {desc.memory}"
        name = desc.app_file.name
        if not (valid_file_name(name) and name.endswith(".py")):
            return f"the application file name {name!r} is not a plain .py file name"
        names = [name]
        for f in desc.py_files:
            if not (valid_file_name(f.name) and f.name.endswith(_PY_FILE_SUFFIXES)):
                return f"the py-file name {f.name!r} is not a plain .py, .zip or .egg file name"
            if f.name in names:
                return f"two files are named {f.name!r}"
            names.append(f.name)
        for kind, shipped in (("file", desc.files), ("archive", desc.archives)):
            seen: set[str] = set()
            for f in shipped:
                if not valid_file_name(f.name) or f.name in seen:
                    return f"the {kind} name {f.name!r} is not a plain file name, or is given twice"
                seen.add(f.name)
        if desc.archive_aliases and (len(desc.archive_aliases) != len(desc.archives)
                                     or any(a and not valid_file_name(a) for a in desc.archive_aliases)):
            return "the archives' aliases are not plain names, one for each archive"
        return ""

    def kill_driver(self, driver_id: str, now: float) -> list[Action]:
        """A client asks to kill a driver: at once if it waits, else through its worker."""
        driver = self.drivers.get(driver_id)
        if driver is None or not driver.active:
            why = f"driver {driver_id} is already {driver.state}" if driver else \
                f"no driver {driver_id} is known to this master"
            return [_warn(f"Cannot kill driver {driver_id}: {why}"), Reply(KillDriverResponse(driver_id, False, why))]
        if driver.state == WAITING:
            return [Reply(KillDriverResponse(driver_id, True, f"driver {driver_id} killed before it was launched"))] + \
                self._end_driver(driver, KILLED, now, "killed on request before it was launched")
        driver.kill_requested = True
        self._mark("driver", driver.id)
        return [_info(f"Killing driver {driver_id} on worker {driver.worker_id} on request"),
                SendToWorker(driver.worker_id, KillDriver(driver_id)),
                Reply(KillDriverResponse(driver_id, True,
                                         f"asked worker {driver.worker_id} to kill driver {driver_id}"))]

    def driver_state_changed(self, worker_id: str, msg: DriverStateChanged, now: float) -> list[Action]:
        """A worker reports that a driver it was given runs, or ended."""
        worker = self.workers.get(worker_id)
        driver = self.drivers.get(msg.driver_id)
        if worker is None or driver is None or worker.drivers.get(driver.id) is not driver:
            if msg.state == RUNNING and worker is not None:
                # A copy we no longer count on (ended, or relaunched elsewhere while this
                # worker was out of touch): two copies of one driver must not both run.
                return [_warn(f"Worker {worker_id} runs driver {msg.driver_id}, which is not placed there; "
                              "killing that copy"), SendToWorker(worker_id, KillDriver(msg.driver_id))]
            return [Log(logging.DEBUG, f"State {msg.state} of driver {msg.driver_id} from worker {worker_id}, "
                                       "where it is not placed; ignored")]
        self._mark("driver", driver.id)
        if msg.state not in FINAL_DRIVER_STATES:
            driver.state = RUNNING
            return [_info(f"Driver {driver.id} is RUNNING on worker {worker.id} ({msg.message or worker.address})"),
                    DriverChanged(driver.id)]
        worker.pop_driver(driver.id)
        driver.exit_code = msg.exit_code
        driver.log_tail = msg.log_tail
        how = msg.message or msg.state.lower()
        if msg.state == FINISHED:
            actions = self._end_driver(driver, FINISHED, now, how)
        elif driver.kill_requested:
            actions = self._end_driver(driver, KILLED, now, how if msg.state == KILLED else f"killed on request; {how}")
        elif driver.desc.supervise:
            ran = now - driver.start_time if driver.start_time is not None else 0.0
            driver.quick_failures = driver.quick_failures + 1 if ran < SUPERVISE_STABLE_RUN else 1
            actions = self._relaunch_driver(driver, how, now, supervise_delay(driver.quick_failures))
        else:
            actions = self._end_driver(driver, msg.state, now, how)
        return actions + self.schedule(now)

    def _driver_lost(self, driver: DriverInfo, why: str, now: float) -> list[Action]:
        """*driver*'s worker is gone, and the driver with it; the caller reschedules."""
        if driver.kill_requested:
            return self._end_driver(driver, KILLED, now, f"killed on request; {why}")
        if driver.desc.supervise:
            # No fault of the driver: relaunched at once, and not counted as a quick failure.
            return self._relaunch_driver(driver, why, now, 0.0)
        return self._end_driver(driver, ERROR, now, why)

    def _relaunch_driver(self, driver: DriverInfo, why: str, now: float, delay: float) -> list[Action]:
        self._mark("driver", driver.id)
        driver.state = WAITING
        driver.not_before = now + delay if delay > 0 else None
        if driver.not_before is not None:
            self._delayed_drivers[driver.id] = None
        when = f" in {delay:g} s" if delay > 0 else ""
        driver.message = f"{why}; relaunching it{when} (supervised)"
        return [_warn(f"Driver {driver.id} {why}; relaunching it{when} (supervised, launch {driver.launches + 1})"),
                DriverChanged(driver.id)]

    def _end_driver(self, driver: DriverInfo, state: str, now: float, message: str) -> list[Action]:
        self._mark("driver", driver.id)
        driver.state = state
        driver.end_time = now
        driver.message = message
        driver.not_before = None
        # The files are needed only to launch it again; an ended driver keeps their names.
        desc = driver.desc
        driver.desc = replace(desc, app_file=DriverFile(desc.app_file.name, b""),
                              py_files=[DriverFile(f.name, b"") for f in desc.py_files],
                              files=[DriverFile(f.name, b"") for f in desc.files],
                              archives=[DriverFile(f.name, b"") for f in desc.archives])
        self.completed_drivers.append(driver.id)
        while len(self.completed_drivers) > self.retained_drivers:
            gone = self.completed_drivers.pop(0)
            self.drivers.pop(gone, None)
            self._mark("driver", gone)
        level = logging.INFO if state in (FINISHED, KILLED) else logging.WARNING
        return [Log(level, f"Driver {driver.id} {state}: {message}"), DriverChanged(driver.id)]

    def _adopt_driver(self, worker: WorkerInfo, driver_id: str, kept: bool, cores: int, memory: int,
                      now: float) -> list[Action]:
        """A (re-)registering worker lists *driver_id* as running there (or ended, not yet reported)."""
        driver = self.drivers.get(driver_id)
        if driver is None:
            # Running from before this master started without a record of it: count its
            # resources; its end will be reported like any other.
            desc = DriverDescription(DriverFile("(unknown)", b""), [], [], {}, cores, memory)
            driver = DriverInfo(driver_id, desc, now, RUNNING, worker.id, start_time=now, launches=1,
                                message="found running on a worker after a master restart")
            self.drivers[driver_id] = driver
            self._mark("driver", driver_id, new=True)
        elif not (kept or driver.state == WAITING):
            # Ended, or relaunched elsewhere, while this worker was out of touch.
            return [_info(f"Worker {worker.id} still runs driver {driver_id}, which is {driver.state}"
                          + (f" on worker {driver.worker_id}" if driver.state in (SUBMITTED, RUNNING) else "")
                          + "; killing that copy"), SendToWorker(worker.id, KillDriver(driver_id))]
        elif driver.state == WAITING:
            # Requeued when we lost touch with the worker, yet it kept running: keep that run.
            driver.not_before = None
            driver.message = ""
        # Listed means launched, even if the RUNNING report was lost with the connection.
        driver.state = RUNNING
        driver.worker_id = worker.id
        worker.add_driver(driver)
        self._mark("driver", driver_id)
        return [_info(f"Re-adopted driver {driver_id} on worker {worker.id} ({worker.address})"),
                DriverChanged(driver_id)]

    def driver_status(self, driver_id: str) -> DriverStatusResponse:
        """What ``sparkctl submit --status`` shows (and ``logs`` needs: where it ran)."""
        driver = self.drivers.get(driver_id)
        if driver is None:
            return DriverStatusResponse(driver_id, False, message=f"no driver {driver_id} is known to this master")
        worker = self.workers.get(driver.worker_id)
        message = driver.message
        if driver.state == WAITING and not message:
            message = self._driver_waiting_reason(driver)
        return DriverStatusResponse(driver.id, True, driver.state, driver.worker_id,
                                    worker.address if worker is not None else "", driver.exit_code, message,
                                    driver.launches, driver.log_tail)

    def _driver_waiting_reason(self, driver: DriverInfo) -> str:
        need = f"{_plural(driver.desc.cores, 'core')} and {driver.desc.memory} MiB"
        alive = self.alive_workers()
        if not alive:
            return f"waiting for a worker with {need} free: no worker is alive"
        most = max(alive, key=lambda w: w.cores_free)
        return (f"waiting for a worker with {need} free (most free: {_plural(most.cores_free, 'core')}, "
                f"{most.memory_free} MiB on worker {most.id})")

    def next_wakeup(self) -> float | None:
        """When a delayed supervised relaunch falls due (seconds since the epoch), if one is pending.

        The daemon's timer should call :meth:`check_worker_timeouts` by then.
        """
        due = [d.not_before for d in self._drivers_delayed() if d.not_before is not None]
        return min(due) if due else None

    def _drivers_delayed(self) -> list[DriverInfo]:
        """The WAITING drivers with a relaunch delay (over or not), in the order they got it."""
        out = []
        for driver_id in list(self._delayed_drivers):
            driver = self.drivers.get(driver_id)
            if driver is None or driver.state != WAITING or driver.not_before is None:
                del self._delayed_drivers[driver_id]  # launched, ended or forgotten since
            else:
                out.append(driver)
        return out

    def _schedule_drivers(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for driver in list(self.drivers.values()):
            if driver.state != WAITING or (driver.not_before is not None and driver.not_before > now):
                continue
            # The most free cores among the workers it fits on, the earliest registered on a tie.
            fit = next((w for w in self._index.with_room(driver.desc.cores)
                        if w.memory_free >= driver.desc.memory), None)
            if fit is not None:
                actions += self._launch_driver(driver, fit, now)
        return actions

    def _launch_driver(self, driver: DriverInfo, worker: WorkerInfo, now: float) -> list[Action]:
        self._mark("driver", driver.id)
        driver.state = SUBMITTED
        driver.worker_id = worker.id
        driver.start_time = now
        driver.launches += 1
        driver.not_before = None
        driver.exit_code = None
        driver.log_tail = ""
        # What became of the previous launch stays visible to --status and --wait.
        previous = driver.message.split("; relaunching")[0]
        driver.message = f"launch {driver.launches}; the previous one: {previous}" if driver.launches > 1 else ""
        worker.add_driver(driver)
        again = f" (launch {driver.launches})" if driver.launches > 1 else ""
        return [_info(f"Launching driver {driver.id} on worker {worker.id} ({worker.address}) with "
                      f"{_plural(driver.desc.cores, 'core')}, {driver.desc.memory} MiB RAM{again}"),
                SendToWorker(worker.id, LaunchDriver(driver.id, driver.desc)),
                DriverChanged(driver.id)]
