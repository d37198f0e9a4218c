"""Detached daemons, as Spark's ``sbin`` scripts run them: pid files, logs, a ready signal.

``start_daemon`` runs ``python -m sparkctl.deploy.<kind>`` in its own session, with its
output in a ``.out`` file and its log in a rotating ``.log`` file, and waits until the
daemon says it is ready on a pipe (or dies, or takes too long)::

    sparkctl master start                       python -m sparkctl.deploy.master
      │ pid file $SPARKCTL_PID_DIR/...pid ───▶    │ --ready-fd N --log-file ....log
      │ ◀──────── "READY spark://h:p ..." ─────── │ (once it listens / has registered)
      ▼ prints the URL and returns              ▼ keeps running, detached

``stop_daemons`` finds the pid files of one kind, sends SIGTERM (the daemons stop
gracefully: a worker stops its executors first), waits, then SIGKILLs what is left.

Nothing here can be steered by another local user (see docs/security.md):

- the PID dir is private: ``$XDG_RUNTIME_DIR/sparkctl`` or ``/tmp/sparkctl-<uid>``, made
  0700, and refused when it is a symlink, not ours, or writable by group or others;
- pid files are written to an unpredictable ``O_EXCL|O_NOFOLLOW`` name and renamed; the
  lock, log and ``.out`` files are opened ``O_NOFOLLOW`` (0600) and must be our own files;
- a pid file is believed only when its process runs as our uid with the command line of
  our daemon (``-m sparkctl.deploy.<kind>``); otherwise it is stale, removed, and never
  signalled. ``stop`` signals only processes named by pid files, through a pidfd taken
  before that check;
- the start lock is taken with a timeout, and a timeout names the process holding it.

Environment: ``SPARKCTL_PID_DIR`` (default above), ``SPARKCTL_LOG_DIR`` (default
``<project>/logs``), ``SPARKCTL_WORK_DIR`` (default ``<project>/work``) and
``SPARKCTL_CONF_DIR`` (see :func:`sparkctl.conf.conf_dir`).
"""
from __future__ import annotations

import errno
import fcntl
import glob
import logging
import logging.handlers
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from io import TextIOWrapper
from types import FrameType, TracebackType

from sparkctl.conf import PROJECT_ROOT, conf_dir
from sparkctl.errors import ConfigError, SparkctlError
from sparkctl.util.processes import is_alive, pin, process_uid, send_pinned, signal_pid, wait_exit
from sparkctl.util.fsutil import (
    UnsafePathError, check_private_dir, is_private_dir, open_private, private_makedirs, write_private_atomic,
)

__all__ = [
    "DaemonError",
    "StartedDaemon",
    "StoppedDaemon",
    "pid_dir",
    "log_dir",
    "work_dir",
    "daemon_name",
    "pid_file_path",
    "log_file_path",
    "parse_master_url",
    "running_pid",
    "start_daemon",
    "stop_daemons",
    "setup_daemon_logging",
    "PrivateRotatingFileHandler",
    "checked_pid_dir",
    "lock_file_path",
    "notify_ready",
    "tail_lines",
    "daemon_env",
]

log = logging.getLogger("sparkctl.daemon")

PID_DIR_ENV = "SPARKCTL_PID_DIR"
RUNTIME_DIR_ENV = "XDG_RUNTIME_DIR"
LOG_DIR_ENV = "SPARKCTL_LOG_DIR"
WORK_DIR_ENV = "SPARKCTL_WORK_DIR"

#: Rotation of a daemon's log file: 10 MB per file, 5 old files kept (Spark's log4j defaults).
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
#: ``.out`` files (what a daemon printed before its logging was set up) kept across restarts.
OUT_BACKUPS = 5
#: Lines of a failed daemon's log shown to the user.
TAIL_LINES = 20
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: How long ``start`` waits for another ``start`` of the same PID dir before giving up.
LOCK_TIMEOUT = 5.0
#: The lock file in the PID dir that serialises concurrent starts.
LOCK_FILE = "sparkctl.lock"

_KIND_RE = re.compile(r"[a-z][a-z_]*")


class DaemonError(SparkctlError):
    """A daemon could not be started (or was already running); carries its last log lines."""

    def __init__(self, message: str, log_tail: str = "", log_file: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.log_tail = log_tail
        self.log_file = log_file

    def __str__(self) -> str:
        if not self.log_tail:
            return self.message
        where = f" ({self.log_file})" if self.log_file else ""
        return f"{self.message}\nlast lines of its log{where}:\n{self.log_tail.rstrip()}"


@dataclass(frozen=True)
class StartedDaemon:
    """A daemon that started and said it is ready.

    ``ready`` holds the words of its READY line after ``READY``: for the master
    ``(spark://host:port, http://host:webuiport)``, for a worker ``(worker_id, master_url)``.
    """

    kind: str
    host: str
    port: int
    pid: int
    ready: tuple[str, ...]
    pid_file: str
    log_file: str
    out_file: str


@dataclass(frozen=True)
class StoppedDaemon:
    """What :func:`stop_daemons` did to one daemon: ``outcome`` is ``stopped`` (exited on
    SIGTERM), ``killed`` (needed SIGKILL), ``stale`` (no such process; pid file removed)
    or ``failed`` (still alive even after SIGKILL, or not ours to signal)."""

    kind: str
    host: str
    port: int
    pid: int
    outcome: str
    pid_file: str


# ---------------------------------------------------------------- places


def pid_dir() -> str:
    """``$SPARKCTL_PID_DIR``, else ``$XDG_RUNTIME_DIR/sparkctl`` when the runtime dir exists
    and is private to us, else ``/tmp/sparkctl-<uid>``: one directory per user, never a
    shared one (see :func:`checked_pid_dir`)."""
    configured = os.environ.get(PID_DIR_ENV)
    if configured:
        return configured
    runtime = os.environ.get(RUNTIME_DIR_ENV)
    if runtime and os.path.isabs(runtime) and is_private_dir(runtime):
        return os.path.join(runtime, "sparkctl")
    return f"/tmp/sparkctl-{os.geteuid()}"


def checked_pid_dir(create: bool) -> str | None:
    """The PID dir, made 0700 first when *create*; None when it does not exist (and not
    *create*). Raises :class:`DaemonError` (one line saying what is wrong) when it is a
    symlink, belongs to another user or is writable by group or others: pid files there
    could be replaced by someone else, or their writes redirected."""
    directory = pid_dir()
    configured = bool(os.environ.get(PID_DIR_ENV))
    what = f"PID dir (${PID_DIR_ENV})" if configured else "PID dir"
    hint = (f"point ${PID_DIR_ENV} at a directory of yours with mode 700" if configured
            else f"remove it, or set ${PID_DIR_ENV} to a directory of yours with mode 700")
    try:
        if create:
            private_makedirs(directory)
        elif not os.path.lexists(directory):
            return None
        check_private_dir(directory, what, hint)
    except UnsafePathError as e:
        raise DaemonError(str(e)) from None
    except OSError as e:
        raise DaemonError(f"cannot create the {what} {directory}: {e.strerror or e}") from None
    return directory


def log_dir() -> str:
    return os.environ.get(LOG_DIR_ENV) or os.path.join(PROJECT_ROOT, "logs")


def work_dir() -> str:
    return os.environ.get(WORK_DIR_ENV) or os.path.join(PROJECT_ROOT, "work")


def _check_kind(kind: str) -> None:
    # The kind names a module (sparkctl.deploy.<kind>) and part of a file name.
    if not _KIND_RE.fullmatch(kind):
        raise ValueError(f"not a daemon kind: {kind!r}")


def daemon_name(kind: str, host: str, port: int) -> str:
    """``sparkctl-<kind>-<host>-<port>``: the stem of the daemon's pid, log and out files.

    The port is the one asked for, so a port-0 (ephemeral) daemon is one per host.
    """
    _check_kind(kind)
    return f"sparkctl-{kind}-{host}-{port}"


def pid_file_path(kind: str, host: str, port: int) -> str:
    return os.path.join(pid_dir(), daemon_name(kind, host, port) + ".pid")


def log_file_path(kind: str, host: str, port: int) -> str:
    return os.path.join(log_dir(), daemon_name(kind, host, port) + ".log")


def parse_master_url(url: str) -> tuple[str, int]:
    """``spark://host:port`` -> ``(host, port)``; raises ConfigError for anything else."""
    m = re.fullmatch(r"spark://([^\s/:,@]+):(\d{1,5})/?", url or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(f"invalid master URL {url!r}: expected spark://host:port")
    return m.group(1), int(m.group(2))


# ---------------------------------------------------------------- processes


def _read_pid(path: str) -> int | None:
    """The pid in the pid file at *path*: None if there is none, 0 if it holds no pid or
    is not a file of ours (a symlink, someone else's file): such a file is stale."""
    try:
        fd = open_private(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except UnsafePathError as e:
        log.warning("ignoring pid file: %s", e)
        return 0
    except OSError as e:
        raise DaemonError(f"cannot read the pid file {path}: {e.strerror or e}") from None
    try:
        text = os.read(fd, 64).decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)
    return int(text) if text.isdigit() and int(text) > 0 else 0


def _is_daemon_cmdline(argv: list[bytes], kind: str) -> bool:
    # "-m sparkctl.deploy.<kind>" as two adjacent arguments: the words merely appearing
    # somewhere on a command line (an editor, a grep, a decoy) do not make a daemon.
    module = f"sparkctl.deploy.{kind}".encode()
    return any(a == b"-m" and b == module for a, b in zip(argv, argv[1:]))


def _is_our_daemon(pid: int, kind: str) -> bool:
    """Whether *pid* is a live ``<kind>`` daemon of ours: same effective uid as us and the
    daemon's command line. Anything else named by a pid file (a reused pid, another
    user's process, a planted pid such as 1) is not ours to refuse a start for, and
    never ours to signal."""
    if pid <= 0 or not is_alive(pid):
        return False
    if not os.path.isdir("/proc/self"):
        # No /proc to ask: kill(pid, 0) succeeding is the best sign of ownership left.
        return signal_pid(pid, 0) and pid != os.getpid()
    if process_uid(pid) != os.geteuid():
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return _is_daemon_cmdline(argv, kind)


def running_pid(kind: str, host: str, port: int) -> int | None:
    """The pid of the running ``<kind>`` daemon started for host:port, or None."""
    if checked_pid_dir(create=False) is None:
        return None
    pid = _read_pid(pid_file_path(kind, host, port))
    return pid if pid and _is_our_daemon(pid, kind) else None


def lock_file_path() -> str:
    return os.path.join(pid_dir(), LOCK_FILE)


def _lock_holder(fd: int) -> str:
    """Who holds a lock on the file open as *fd*, from /proc/locks: "process PID (its
    command line)", or a vaguer phrase when /proc does not tell."""
    st = os.fstat(fd)
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "another process"
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF"; waiters have "->" after the number
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            where = (int(major, 16), int(minor, 16), int(inode))
            pid = int(fields[4])
        except ValueError:
            continue
        if where != wanted:
            continue
        if pid <= 0:
            return "a process in another pid namespace"
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = " ".join(f.read().replace(b"\0", b" ").decode("utf-8", "replace").split())  # one line
        except OSError:
            cmd = ""
        return f"process {pid} ({cmd[:200] or 'command line unknown'})"
    return "another process"


@contextmanager
def _pid_dir_lock(timeout: float | None = None) -> Iterator[None]:
    """Serialise check-spawn-record across concurrent ``start`` commands of this PID dir.

    The lock is a 0600 file of ours in the private PID dir, taken with ``flock`` polled
    without blocking: a holder that never lets go makes ``start`` fail after *timeout*
    (default :data:`LOCK_TIMEOUT`) with one line naming the holder, instead of hanging.
    """
    directory = checked_pid_dir(create=True)
    assert directory is not None
    path = os.path.join(directory, LOCK_FILE)
    try:
        fd = open_private(path, os.O_RDWR | os.O_CREAT)
    except UnsafePathError as e:
        raise DaemonError(f"lock file: {e}") from None
    except OSError as e:
        raise DaemonError(f"cannot open the lock file {path}: {e.strerror or e}") from None
    try:
        limit = LOCK_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DaemonError(
                        f"the lock {path} is still held after {limit:g}s by {_lock_holder(fd)}; "
                        f"another 'sparkctl ... start' may be stuck"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_pid_file(path: str, pid: int) -> None:
    # A fresh O_EXCL|O_NOFOLLOW name, renamed into place: a reader never sees a half-written
    # pid, and nothing planted at any name is ever written through.
    try:
        write_private_atomic(path, f"{pid}\n".encode())
    except (OSError, UnsafePathError) as e:
        raise DaemonError(f"cannot write the pid file {path}: {getattr(e, 'strerror', None) or e}") from None


def _remove(path: str) -> None:
    try:
        os.unlink(path)  # a symlink is removed itself, never its target
    except FileNotFoundError:
        pass


def _rotate(path: str, keep: int) -> None:
    """path -> path.1 -> ... -> path.<keep> (the oldest falls off), as Spark rotates .out files.

    Renames move a symlink itself, never what it points to."""
    if not os.path.lexists(path):
        return
    for i in range(keep - 1, 0, -1):
        older = f"{path}.{i}"
        if os.path.lexists(older):
            os.replace(older, f"{path}.{i + 1}")
    os.replace(path, f"{path}.1")


def _open_log(path: str) -> int:
    """Open (creating, 0600) a log or .out file for appending, refusing a symlink or a
    file that is not ours."""
    try:
        return open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except UnsafePathError as e:
        raise DaemonError(f"log file: {e}") from None
    except OSError as e:
        raise DaemonError(f"cannot open the log file {path}: {e.strerror or e}") from None


def tail_lines(path: str, n: int = TAIL_LINES, start: int = 0) -> str:
    """The last *n* lines of the file at *path* from byte offset *start* on ("" if none)."""
    try:
        with os.fdopen(open_private(path, os.O_RDONLY), "rb") as f:
            size = f.seek(0, os.SEEK_END)
            # 64 KiB is plenty for 20 log lines, and keeps a huge log from being read whole
            f.seek(max(start, size - 65536))
            data = f.read()
    except (OSError, UnsafePathError):
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-n:])


def daemon_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a daemon (also of a ``--foreground`` one).

    sparkctl must be importable without being installed, and the daemon must find the
    secret in the same conf dir the command used, wherever it runs from.
    """
    env = dict(os.environ if base is None else base)
    paths = [PROJECT_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["SPARKCTL_CONF_DIR"] = os.path.abspath(conf_dir())
    return env


def start_daemon(
    kind: str,
    args: list[str],
    host: str,
    port: int,
    *,
    timeout: float = 30.0,
    python: str | None = None,
) -> StartedDaemon:
    """Start ``python -m sparkctl.deploy.<kind> ARGS`` detached and wait for its READY line.

    Raises :class:`DaemonError` when a daemon of this kind already runs for host:port (a
    stale pid file, or one naming a process that is not our daemon, is removed instead),
    when the PID dir or a log file is unsafe, when another start holds the PID dir's
    lock for longer than :data:`LOCK_TIMEOUT`, when the process exits before it is
    ready, or when it is not ready within *timeout* seconds (it is then stopped); the
    error carries the last lines of its log.
    """
    name = daemon_name(kind, host, port)
    try:
        directory = private_makedirs(log_dir())
    except OSError as e:
        raise DaemonError(f"cannot create the log dir {log_dir()}: {e.strerror or e}") from None
    log_path = os.path.join(directory, name + ".log")
    out_path = os.path.join(directory, name + ".out")
    with _pid_dir_lock():
        pid_path = pid_file_path(kind, host, port)
        old = _read_pid(pid_path)
        if old is not None:
            if old and _is_our_daemon(old, kind):
                raise DaemonError(
                    f"{kind} is already running on {host}:{port} as process {old} "
                    f"(pid file {pid_path}); stop it first with 'sparkctl {kind} stop'"
                )
            log.info("removing stale pid file %s (process %s is gone or not our %s)", pid_path, old, kind)
            try:
                _remove(pid_path)
            except OSError as e:
                raise DaemonError(f"cannot remove the stale pid file {pid_path}: {e.strerror or e}") from None
        # The daemon opens its log the same way; checking here first makes a planted
        # symlink one clear line from this command rather than a dead daemon.
        log_fd = _open_log(log_path)
        log_start = os.fstat(log_fd).st_size
        os.close(log_fd)
        _rotate(out_path, OUT_BACKUPS)
        out_fd = _open_log(out_path)  # closed by fdopen's "with" below
        read_fd, write_fd = os.pipe()
        cmd = [python or sys.executable, "-m", f"sparkctl.deploy.{kind}", *args,
               "--ready-fd", str(write_fd), "--log-file", log_path]
        try:
            with os.fdopen(out_fd, "ab") as out:
                proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,), start_new_session=True, env=daemon_env(), cwd=PROJECT_ROOT,
                )
        except OSError as e:
            os.close(read_fd)
            raise DaemonError(f"cannot start the {kind}: {e.strerror or e}") from None
        finally:
            # Our copy of the write end must go, or EOF never comes if the daemon dies.
            os.close(write_fd)
        _write_pid_file(pid_path, proc.pid)
    try:
        line = _read_ready_line(read_fd, proc, timeout)
    finally:
        os.close(read_fd)
    if line.startswith("READY "):
        return StartedDaemon(kind, host, port, proc.pid, tuple(line.split()[1:]), pid_path, log_path, out_path)

    # It failed: say why, leave nothing running and no pid file behind.
    code = proc.poll()
    if code is None:
        _stop_pid(proc.pid, grace=5.0)
        try:
            proc.wait(1.0)
        except subprocess.TimeoutExpired:
            pass
        reason = f"{kind} did not become ready within {timeout:g}s, so it was stopped"
    elif code < 0:
        reason = f"{kind} was killed by signal {_signal_name(-code)} before it was ready"
    else:
        reason = f"{kind} exited with code {code} before it was ready"
    if line:
        reason += f" (it said {line!r})"
    _remove(pid_path)
    raise DaemonError(reason, _failure_tail(log_path, log_start, out_path), log_path)


def _read_ready_line(fd: int, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """The first line written to the ready pipe; "" on EOF (the daemon died) or timeout."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        # EOF arrives as "readable" once the daemon (the only other writer) exits.
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    if b"\n" not in buf and proc.poll() is None:
        # EOF without a line but the process lingers: give it a moment to finish exiting,
        # so the error reports its exit code rather than a timeout.
        try:
            proc.wait(min(2.0, max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    return buf.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()


def _failure_tail(log_path: str, log_start: int, out_path: str) -> str:
    # The log holds what the daemon logged in this run; the .out file what it printed
    # before logging was set up (a bad argument, an import error, a traceback).
    parts = [t for t in (tail_lines(log_path, TAIL_LINES, log_start), tail_lines(out_path, TAIL_LINES)) if t]
    return "\n".join(parts)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


def _stop_pid(pid: int, grace: float) -> str:
    """SIGTERM, wait *grace*, then SIGKILL; return the outcome for :class:`StoppedDaemon`."""
    if not signal_pid(pid, signal.SIGTERM):
        return "failed"
    if not wait_exit([pid], time.monotonic() + grace):
        return "stopped"
    signal_pid(pid, signal.SIGKILL)
    return "failed" if wait_exit([pid], time.monotonic() + 5.0) else "killed"


def _pid_files(kind: str, port: int | None) -> list[tuple[str, str, int]]:
    """``(path, host, port)`` of every pid file of *kind* in the PID dir (optionally one port)."""
    _check_kind(kind)
    directory = checked_pid_dir(create=False)
    if directory is None:
        return []
    pattern = re.compile(rf"sparkctl-{kind}-(.+)-(\d+)\.pid")
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(directory), f"sparkctl-{kind}-*.pid"))):
        m = pattern.fullmatch(os.path.basename(path))
        if m and (port is None or int(m.group(2)) == port):
            found.append((path, m.group(1), int(m.group(2))))
    return found


def stop_daemons(kind: str, port: int | None = None, *, grace: float = 10.0) -> list[StoppedDaemon]:
    """Stop every ``<kind>`` daemon with a pid file in the PID dir (or only the one on *port*).

    All get SIGTERM at once and share one *grace* period before SIGKILL, so stopping ten
    workers takes one grace period, not ten.  Returns one entry per pid file (empty:
    none was running); one daemon's failure never hides the others' results.

    Only processes named by pid files are signalled, and only when they are our
    daemons of this kind (:func:`_is_our_daemon`); a pid file naming anything else is
    stale and removed. Raises :class:`DaemonError` when the PID dir is unsafe.
    """
    results: list[StoppedDaemon] = []
    signalled: list[tuple[str, str, int, int]] = []
    pinned: dict[int, int | None] = {}  # pid -> its pidfd, taken before the ownership check
    try:
        for path, host, dport in _pid_files(kind, port):
            try:
                pid = _read_pid(path)
            except DaemonError:
                pid = 0
            if pid is None:
                continue  # removed under us by a concurrent stop
            if pid and pid not in pinned:
                pinned[pid] = pin(pid)
            if not pid or not _is_our_daemon(pid, kind):
                _remove(path)
                results.append(StoppedDaemon(kind, host, dport, pid, "stale", path))
                continue
            if send_pinned(pid, pinned[pid], signal.SIGTERM):
                log.info("sent SIGTERM to %s %s:%d (pid %d)", kind, host, dport, pid)
                signalled.append((path, host, dport, pid))
            else:
                results.append(StoppedDaemon(kind, host, dport, pid, "failed", path))
        still = set(wait_exit([s[3] for s in signalled], time.monotonic() + grace))
        for pid in still:
            log.warning("%s (pid %d) did not stop within %gs; sending SIGKILL", kind, pid, grace)
            send_pinned(pid, pinned.get(pid), signal.SIGKILL)
        dead_after_kill = set(still) - set(wait_exit(list(still), time.monotonic() + 5.0))
    finally:
        for fd in pinned.values():
            if fd is not None:
                os.close(fd)
    for path, host, dport, pid in signalled:
        if pid not in still:
            outcome = "stopped"
        elif pid in dead_after_kill:
            outcome = "killed"
        else:
            outcome = "failed"
        if outcome != "failed":
            _remove(path)
        results.append(StoppedDaemon(kind, host, dport, pid, outcome, path))
    results.sort(key=lambda r: (r.host, r.port))
    return results


# ---------------------------------------------------------------- inside the daemon


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A RotatingFileHandler whose files are opened ``O_NOFOLLOW``, 0600, and must be ours.

    Rotation renames files (which moves a symlink, never writes through it) and then
    opens a fresh file the same way, so a link planted at any of the names in a shared
    log dir is never followed.
    """

    def _open(self) -> TextIOWrapper:
        fd = open_private(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


def setup_daemon_logging(log_file: str | None, level: int = logging.INFO) -> None:
    """Log to *log_file* through a RotatingFileHandler (10 MB x 5), or to stderr if None.

    For the master and worker daemons' ``--log-file``: replaces the root logger's
    handlers, routes ``warnings`` into the log, and logs uncaught exceptions (of the
    main thread and of other threads) with their tracebacks, so a daemon that dies
    says why in its log.
    """
    handler: logging.Handler
    if log_file:
        private_makedirs(os.path.dirname(os.path.abspath(log_file)))
        handler = PrivateRotatingFileHandler(log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS,
                                             encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)

    def log_uncaught(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logging.getLogger("sparkctl").critical("uncaught exception", exc_info=(exc_type, exc, tb))

    def log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is None or issubclass(args.exc_type, SystemExit):
            return
        name = args.thread.name if args.thread is not None else "?"
        logging.getLogger("sparkctl").critical(
            "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
        )

    sys.excepthook = log_uncaught
    threading.excepthook = log_thread_uncaught


def notify_ready(fd: int | None, line: str) -> None:
    """Write *line* (one line, newline added) to the ready pipe *fd* and close it.

    Best effort: the starter may have given up and gone, which must not hurt a daemon
    that is otherwise fine.
    """
    if fd is None:
        return
    data = (line.rstrip("\n") + "\n").encode()
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError as e:
        if e.errno not in (errno.EPIPE, errno.EBADF):
            log.warning("could not write to the ready pipe (fd %d): %s", fd, e)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def stop_on_signals(logger: logging.Logger) -> threading.Event:
    """An event set by SIGTERM or SIGINT (each logged): a daemon's main loop waits on it.
    Installed first thing, so a signal during start-up also ends in a clean exit."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("Received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
