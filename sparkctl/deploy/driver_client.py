"""The submission client of cluster deploy mode: hand a driver to the master, ask about it,
kill it, and read its log from the worker that ran it.

```
 sparkctl submit --deploy-mode cluster ── RequestSubmitDriver(files, args, settings) ──▶ master
 sparkctl submit --wait / --status ────── RequestDriverStatus(follow?) ─────────────────▶ master
 sparkctl submit --kill ───────────────── RequestKillDriver ────────────────────────────▶ master
 sparkctl logs ── RequestDriverStatus ──▶ master (which worker?) ; RequestDriverLog ──▶ that worker
```

Every function opens one authenticated connection of its own and closes it; errors are
:class:`~sparkctl.errors.SparkctlError` subclasses (connection refused, bad secret,
timeout) or :class:`DriverRequestError` (the master or worker said no).
"""
from __future__ import annotations

import getpass
import os
import signal
import time
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from sparkctl.deploy import messages as dm
from sparkctl.errors import SparkctlError
from sparkctl.rpc import Connection, connect

__all__ = ["DriverRequestError", "build_description", "submit_driver", "kill_driver", "driver_status",
           "follow_driver", "fetch_driver_log", "exit_status", "describe_status"]

_Reply = TypeVar("_Reply")
#: How long one request may take (connect, handshake, answer).
REQUEST_TIMEOUT = 30.0


class DriverRequestError(SparkctlError):
    """The master or a worker answered, but could not do what was asked."""


def build_description(app_path: str, app_args: list[str], py_files: list[str], settings: dict[str, str],
                      cores: int, memory_mib: int, supervise: bool, files: list[str] | None = None,
                      archives: list[str] | None = None) -> dm.DriverDescription:
    """A driver description carrying the application, its py-files and its --files and
    --archives (``path#alias``) by value.

    The worker that runs the driver has none of the submitter's files, so their contents
    travel with the submission; names must be distinct within each kind, as each kind
    lands in one directory.
    """
    def read(path: str) -> dm.DriverFile:
        if os.path.isdir(path):
            raise DriverRequestError(f"{path} is a directory: cluster mode ships files and archives, not directories")
        with open(path, "rb") as f:
            return dm.DriverFile(os.path.basename(path), f.read())

    def distinct(kind: list[dm.DriverFile], taken: set[str]) -> None:
        for f in kind:
            if f.name in taken:
                raise DriverRequestError(f"two files to ship are named {f.name}: cluster mode puts them in one directory")
            taken.add(f.name)

    app = read(app_path)
    shipped = [read(p) for p in py_files]
    distinct(shipped, {app.name})
    extra = [read(p) for p in files or []]
    distinct(extra, set())
    pairs = [a.partition("#") for a in archives or []]
    packed = [read(path) for path, _, _ in pairs]
    distinct(packed, set())
    return dm.DriverDescription(app, list(app_args), shipped, dict(settings), cores, memory_mib, supervise,
                                getpass.getuser(), extra, packed, [alias for _, _, alias in pairs])


def _connect(host_port: tuple[str, int], secret: bytes) -> Connection:
    return connect(host_port[0], host_port[1], secret, timeout=REQUEST_TIMEOUT)


def _ask(master: tuple[str, int], secret: bytes, msg: object, reply_type: type[_Reply]) -> _Reply:
    conn = _connect(master, secret)
    try:
        conn.send(msg)
        reply = conn.recv(timeout=REQUEST_TIMEOUT)
    finally:
        conn.close()
    if not isinstance(reply, reply_type):
        raise DriverRequestError(f"the master answered a {type(msg).__name__} with a {type(reply).__name__}")
    return reply


def submit_driver(master: tuple[str, int], secret: bytes, desc: dm.DriverDescription) -> str:
    """Submit *desc*; return the driver id the master gave it."""
    reply = _ask(master, secret, dm.RequestSubmitDriver(desc), dm.SubmitDriverResponse)
    if not reply.success or not reply.driver_id:
        raise DriverRequestError(f"the master refused the driver: {reply.message}")
    return reply.driver_id


def kill_driver(master: tuple[str, int], secret: bytes, driver_id: str) -> str:
    """Ask the master to kill *driver_id*; return its answer (the kill itself may take a moment)."""
    reply = _ask(master, secret, dm.RequestKillDriver(driver_id), dm.KillDriverResponse)
    if not reply.success:
        raise DriverRequestError(reply.message)
    return reply.message


def driver_status(master: tuple[str, int], secret: bytes, driver_id: str) -> dm.DriverStatusResponse:
    status = _ask(master, secret, dm.RequestDriverStatus(driver_id), dm.DriverStatusResponse)
    if not status.found:
        raise DriverRequestError(status.message or f"no driver {driver_id} is known to the master")
    return status


def follow_driver(master: tuple[str, int], secret: bytes, driver_id: str,
                  on_change: Callable[[dm.DriverStatusResponse], None] | None = None,
                  timeout: float | None = None) -> dm.DriverStatusResponse:
    """Follow *driver_id* until it ends (the master pushes every change); return its last status.

    *on_change* sees each status as it arrives. With *timeout*, returns the latest status
    once that many seconds have passed, ended or not.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    conn = _connect(master, secret)
    try:
        conn.send(dm.RequestDriverStatus(driver_id, follow=True))
        while True:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                status = conn.recv(timeout=left)
            except SparkctlError as e:
                if deadline is not None and time.monotonic() >= deadline:
                    return driver_status(master, secret, driver_id)
                raise DriverRequestError(f"lost the master while following driver {driver_id}: {e}") from None
            if not isinstance(status, dm.DriverStatusResponse):
                raise DriverRequestError(f"the master sent a {type(status).__name__} while following {driver_id}")
            if not status.found:
                raise DriverRequestError(status.message or f"no driver {driver_id} is known to the master")
            if on_change is not None:
                on_change(status)
            if status.state in dm.FINAL_DRIVER_STATES:
                return status
    finally:
        conn.close()


def fetch_driver_log(master: tuple[str, int], secret: bytes, driver_id: str, stream: str, out: BinaryIO,
                     chunk: int = 1 << 20) -> int:
    """Copy a driver's stdout or stderr to *out* from the worker that ran it (last); return the bytes copied."""
    status = driver_status(master, secret, driver_id)
    if not status.worker_id:
        raise DriverRequestError(f"driver {driver_id} has not been launched yet ({status.state}): no log so far")
    host, sep, port = status.worker_host_port.rpartition(":")
    if not sep or not port.isdigit():
        raise DriverRequestError(f"worker {status.worker_id}, which ran driver {driver_id}, is no longer known "
                                 "to the master; its log stays in that worker's work dir")
    conn = _connect((host.strip("[]"), int(port)), secret)
    copied = 0
    try:
        while True:
            conn.send(dm.RequestDriverLog(driver_id, stream, copied, chunk))
            reply = conn.recv(timeout=REQUEST_TIMEOUT)
            if not isinstance(reply, dm.DriverLogResponse):
                raise DriverRequestError(f"worker {status.worker_id} answered with a {type(reply).__name__}")
            if reply.error:
                raise DriverRequestError(f"worker {status.worker_id}: {reply.error}")
            out.write(reply.data)
            copied += len(reply.data)
            # The size is read with the data: a log that grows meanwhile ends where it was.
            if not reply.data or copied >= reply.size:
                return copied
    finally:
        conn.close()


def exit_status(status: dm.DriverStatusResponse) -> int:
    """The exit status ``submit --wait`` ends with: the driver's, as a shell would report it."""
    code = status.exit_code
    if status.state == dm.FINISHED:
        return 0
    if code is not None and code < 0:
        return 128 + (-code)  # killed by a signal
    if code is not None and 0 < code < 256:
        return code
    if status.state == dm.KILLED:
        return 128 + signal.SIGTERM
    return 1


def describe_status(status: dm.DriverStatusResponse) -> str:
    """One line: state, where, exit code, why."""
    text = status.state
    if status.worker_id and status.state in (dm.SUBMITTED, dm.RUNNING):
        text += f" on worker {status.worker_id}"
    if status.exit_code is not None and status.state in dm.FINAL_DRIVER_STATES:
        text += f" (exit code {status.exit_code})"
    if status.message:
        text += f": {status.message}"
    return text
