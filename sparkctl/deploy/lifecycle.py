"""A process lives no longer than its owner: ``local-cluster``'s master and workers end
with their driver, a cluster-mode driver with the worker that runs it.

``python -m sparkctl.deploy.lifecycle {master,worker} --owner-fd FD --dir DIR ARGS...``
runs the master's or the worker's ``main(ARGS)`` in this process, and ends it when the
driver that started it is gone, however it went (``sc.stop()``, a crash, SIGKILL):

```
 driver ── holds the write end ──▶ pipe ──▶ read end (--owner-fd) in every private daemon
   │ SIGKILL: the kernel closes the write end
   ▼
 daemon's owner-watch thread: EOF ──▶ SIGTERM to itself ──▶ the daemon's own graceful stop
                                        (a worker stops its executors first)
 last daemon out: DIR/owner names a dead process, DIR/daemons/ is empty ──▶ rm -r DIR
```

The pipe is the signal that cannot be missed: the kernel closes a dead process's file
descriptors, so the read end sees EOF whatever killed the driver. Its parent pid is
checked as well, in case a process the driver forked without exec holds a copy of the
write end. The kernel's parent-death signal is not used: it follows the thread that
forked us, not the process, and a SparkContext may be made in a thread that ends.
A daemon that dies too abruptly to remove DIR leaves it for the next driver's sweep
(:mod:`sparkctl.util.cleanup`), which checks the same records.

A driver the worker runs (cluster deploy mode) finds the worker's pid in
``SPARKCTL_WORKER_PID`` and watches its parent: when the worker dies, the driver stops as
on SIGTERM (its jobs cancelled, its executors released), rather than run on unseen while
the master, with ``--supervise``, starts it again elsewhere.
"""
from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable

from sparkctl.util.cleanup import OWNER_FILE, ProcessIdentity, owned_dir_is_abandoned, remove_identity, write_identity

log = logging.getLogger("sparkctl.lifecycle")

#: How often the watch also checks the parent pid (the pipe alone needs no polling).
POLL_INTERVAL = 1.0
#: After the owner is gone, a daemon whose graceful stop hangs is ended this much later.
STOP_GRACE = 30.0
#: Set by the worker in the environment of a driver it runs: the worker's pid.
WORKER_PID_VAR = "SPARKCTL_WORKER_PID"


def watch_owner(fd: int | None, owner_pid: int, on_gone: Callable[[], None]) -> threading.Thread:
    """Call *on_gone* once, from a thread, when the pipe *fd* reaches EOF or our parent
    is no longer *owner_pid* (with no *fd*, only the parent is watched)."""
    def run() -> None:
        try:
            while os.getppid() == owner_pid:
                if fd is None:
                    time.sleep(POLL_INTERVAL)
                    continue
                if select.select([fd], [], [], POLL_INTERVAL)[0]:
                    try:
                        data = os.read(fd, 64)
                    except OSError:
                        data = b""
                    if not data:
                        break  # every write end is closed: the owner is gone
        finally:
            if fd is not None:
                os.close(fd)
        on_gone()

    thread = threading.Thread(target=run, name="owner-watch", daemon=True)
    thread.start()
    return thread


def stop_self(why: str = "The driver that owns this daemon is gone") -> None:
    """SIGTERM to our own main thread: whatever the process does on SIGTERM, it does now."""
    log.warning("%s; shutting down", why)
    # The daemon's own handler makes it a graceful stop. Aimed at the main thread: that is
    # where Python runs handlers, and a signal taken by this thread would not wake it.
    signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
    # a stop that hangs must still end: the daemon's purpose died with its owner
    timer = threading.Timer(STOP_GRACE, os._exit, (1,))
    timer.daemon = True
    timer.start()


def watch_worker() -> None:
    """In a driver started by a worker: end with that worker (a no-op anywhere else)."""
    text = os.environ.pop(WORKER_PID_VAR, "")  # not for the processes the app starts
    if text.isdigit() and int(text) == os.getppid():
        watch_owner(None, int(text), lambda: stop_self("The worker that runs this driver is gone"))


def _daemon_main(role: str) -> Callable[[list[str]], int]:
    if role == "master":
        from sparkctl.deploy.master import main as master_main
        return master_main
    from sparkctl.deploy.worker import main as worker_main
    return worker_main


def _parse_args(argv: list[str]) -> tuple[str, int, str, list[str]]:
    """``ROLE --owner-fd FD --dir DIR ARGS...``: the rest is the daemon's, passed on as is."""
    usage = "usage: python -m sparkctl.deploy.lifecycle {master,worker} --owner-fd FD --dir DIR [ARGS...]"
    if not argv or argv[0] not in ("master", "worker"):
        raise SystemExit(usage)
    role, rest = argv[0], argv[1:]
    found: dict[str, str] = {}
    while rest and rest[0] in ("--owner-fd", "--dir") and len(rest) > 1:
        found[rest[0]] = rest[1]
        rest = rest[2:]
    if set(found) != {"--owner-fd", "--dir"} or not found["--owner-fd"].isdigit():
        raise SystemExit(usage)
    return role, int(found["--owner-fd"]), found["--dir"], rest


def main(argv: list[str] | None = None) -> int:
    role, owner_fd, directory, args = _parse_args(sys.argv[1:] if argv is None else argv)
    with open(os.path.join(directory, OWNER_FILE), encoding="ascii") as f:
        owner = ProcessIdentity.from_json(f.read())
    record = write_identity(directory, f"{role}-{os.getpid()}")
    watch_owner(owner_fd, owner.pid, stop_self)
    try:
        return _daemon_main(role)(args)
    finally:
        remove_identity(record)
        if owned_dir_is_abandoned(directory):  # the owner is dead and we are the last daemon out
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
