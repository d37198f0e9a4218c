"""Other processes, asked about and signalled without being fooled by a reused pid.

The daemons' pid files (``deploy/daemon.py``) and the ownership records of scratch
directories (``util/cleanup.py``) both name processes that may be long gone, with their
pid taken by something unrelated. This module is what both ask: is the process alive (a
zombie is not), whose is it, which process is it (:class:`ProcessIdentity`: pid, start
time and boot id), and how to signal exactly the process that was checked (a pidfd).
Everything reads ``/proc`` where there is one and falls back to ``kill(pid, 0)``.
"""
from __future__ import annotations

import json
import os
import select
import signal
import time
from dataclasses import asdict, dataclass

__all__ = ["stat_fields", "boot_id", "ProcessIdentity", "is_alive", "process_uid", "wait_exit", "signal_pid",
           "pin", "send_pinned", "raise_fd_limit"]


def stat_fields(pid: int) -> list[str] | None:
    """``/proc/PID/stat`` from field 3 (the state) on; None if there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may itself hold spaces or ')'
    return stat[stat.rindex(b")") + 2:].decode("ascii", "replace").split()


def raise_fd_limit(cap: int = 1 << 20) -> int:
    """Raise this process's soft limit on open files to its hard limit (at most ``cap``),
    as the JVM does for Spark's processes; the soft limit after. On a wide cluster a task
    slot keeps a connection to every executor it reads from and a block server one from
    every slot that reads from it: 1,000 executors need more than the usual 1,024."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        return int(soft)
    except (ImportError, OSError, ValueError):
        return -1


def boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessIdentity:
    """A process, named so that a later process reusing its pid is not mistaken for it."""

    pid: int
    start: int | None  # clock ticks after boot; None where /proc is missing
    boot: str = ""

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity:
        fields = stat_fields(pid)
        return cls(pid, int(fields[19]) if fields and len(fields) > 19 else None, boot_id())

    @classmethod
    def current(cls) -> ProcessIdentity:
        return cls.of(os.getpid())

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProcessIdentity:
        """Raises ValueError on anything but a record :meth:`to_json` wrote."""
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int) or data["pid"] <= 0:
            raise ValueError("not a process identity")
        start, boot = data.get("start"), data.get("boot", "")
        if (start is not None and not isinstance(start, int)) or not isinstance(boot, str):
            raise ValueError("not a process identity")
        return cls(data["pid"], start, boot)

    def is_dead(self) -> bool:
        """True only when provably dead; a process we cannot see into counts as alive."""
        boot = boot_id()
        if self.boot and boot and self.boot != boot:
            return True  # recorded before a reboot
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # exists, as another user: our owner never changes uid, so likely a reused pid; check below
        fields = stat_fields(self.pid)
        if fields is None or self.start is None:
            return False  # no /proc to tell a reused pid apart: assume it is still ours
        if len(fields) > 19 and int(fields[19]) != self.start:
            return True  # the pid belongs to a newer process
        return fields[0] in ("Z", "X")  # exited; only its parent has not reaped it yet


def is_alive(pid: int) -> bool:
    """Whether *pid* is a live process (not a zombie), whoever owns it."""
    if pid <= 0:
        return False
    try:
        # A daemon started by this very process (tests, local tools) becomes our zombie
        # when it exits: reap it, or kill(pid, 0) would keep saying it is alive.
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge further
    fields = stat_fields(pid)
    # no /proc (or the process just went): trust kill(pid, 0)
    return not (fields and fields[0] in ("Z", "X"))


def process_uid(pid: int) -> int | None:
    """The effective uid of *pid* from /proc/PID/status (None if it cannot be read)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    return int(line.split()[2])  # real, effective, saved, filesystem
    except (OSError, ValueError, IndexError):
        pass
    return None


def wait_exit(pids: list[int], deadline: float) -> list[int]:
    """Wait until each pid has exited or *deadline* (monotonic) passes; return the ones
    still alive.

    Uses pidfds (Linux >= 5.3), which become readable when the process ends, so this
    waits on the kernel instead of polling; falls back to polling elsewhere.
    """
    alive = [p for p in pids if is_alive(p)]
    fds: dict[int, int] = {}
    poller = select.poll()
    for pid in alive:
        fd = pin(pid)
        if fd is None:
            continue
        fds[fd] = pid
        poller.register(fd, select.POLLIN)
    try:
        while alive:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if len(fds) == len(alive):
                for fd, _ in poller.poll(int(remaining * 1000) + 1):
                    poller.unregister(fd)
                    pid = fds.pop(fd)
                    os.close(fd)
                    is_alive(pid)  # reaps it if it is our child
                    alive.remove(pid)
            else:
                # no pidfd for some pid: poll every 50 ms until the deadline
                poller.poll(min(50, int(remaining * 1000) + 1))
                alive = [p for p in alive if is_alive(p)]
                for fd, pid in list(fds.items()):
                    if pid not in alive:
                        poller.unregister(fd)
                        os.close(fd)
                        del fds[fd]
        return [p for p in alive if is_alive(p)]
    finally:
        for fd in fds:
            os.close(fd)


def signal_pid(pid: int, sig: signal.Signals | int) -> bool:
    """Signal *pid*; False only when it is not ours to signal (a process already gone
    counts as done)."""
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return True
    except PermissionError:
        return False


def pin(pid: int) -> int | None:
    """A pidfd of *pid* (Linux >= 5.3), or None. A signal sent through it reaches the
    process that was checked, never one that later reused its pid."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def send_pinned(pid: int, pidfd: int | None, sig: signal.Signals) -> bool:
    """Send *sig* through *pidfd* if there is one, else by pid; False if not ours to signal."""
    if pidfd is None:
        return signal_pid(pid, sig)
    try:
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except ProcessLookupError:
        return True  # already gone: what we wanted
    except PermissionError:
        return False
