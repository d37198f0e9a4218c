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

Environment: ``SPARKCTL_PID_DIR`` (default ``/tmp``), ``SPARKCTL_LOG_DIR`` (default
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
from types import TracebackType

from sparkctl.conf import PROJECT_ROOT, conf_dir
from sparkctl.errors import ConfigError, SparkctlError

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
    "notify_ready",
    "tail_lines",
    "daemon_env",
]

log = logging.getLogger("sparkctl.daemon")

PID_DIR_ENV = "SPARKCTL_PID_DIR"
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
    return os.environ.get(PID_DIR_ENV) or "/tmp"


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


def _makedirs_private(path: str) -> None:
    # Only directories we create get 0700; an existing one (e.g. /tmp) is left alone.
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o700, exist_ok=True)


def parse_master_url(url: str) -> tuple[str, int]:
    """``spark://host:port`` -> ``(host, port)``; raises ConfigError for anything else."""
    m = re.fullmatch(r"spark://([^\s/:,@]+):(\d{1,5})/?", url or "")
    if not m or not 0 < int(m.group(2)) < 65536:
        raise ConfigError(f"invalid master URL {url!r}: expected spark://host:port")
    return m.group(1), int(m.group(2))


# ---------------------------------------------------------------- processes


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DaemonError(f"cannot read the pid file {path}: {e.strerror or e}") from None
    return int(text) if text.isdigit() and int(text) > 0 else 0


def _is_alive(pid: int, kind: str | None = None) -> bool:
    """Whether *pid* is a live process (not a zombie) and, if *kind* is given and
    /proc tells, one running ``sparkctl.deploy.<kind>``.

    The command-line check guards against a stale pid file whose pid now belongs to an
    unrelated process: we would refuse a start for nothing, or worse, signal it.
    """
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
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        # the state follows the parenthesised command name, which may itself hold ')'
        if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"Z":
            return False
        if kind is not None:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
            if cmdline and f"sparkctl.deploy.{kind}".encode() not in cmdline:
                return False
    except (OSError, ValueError):
        pass  # no /proc (or the process just went): trust kill(pid, 0)
    return True


def _wait_exit(pids: list[int], deadline: float) -> list[int]:
    """Wait until each pid has exited or *deadline* passes; return the ones still alive.

    Uses pidfds (Linux >= 5.3), which become readable when the process ends, so this
    waits on the kernel instead of polling; falls back to polling elsewhere.
    """
    alive = [p for p in pids if _is_alive(p)]
    fds: dict[int, int] = {}
    poller = select.poll()
    for pid in alive:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
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
                    _is_alive(pid)  # reaps it if it is our child
                    alive.remove(pid)
            else:
                # no pidfd for some pid: poll every 50 ms until the deadline
                poller.poll(min(50, int(remaining * 1000) + 1))
                alive = [p for p in alive if _is_alive(p)]
                for fd, pid in list(fds.items()):
                    if pid not in alive:
                        poller.unregister(fd)
                        os.close(fd)
                        del fds[fd]
        return [p for p in alive if _is_alive(p)]
    finally:
        for fd in fds:
            os.close(fd)


def _signal(pid: int, sig: signal.Signals) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return True  # already gone: what we wanted
    except PermissionError:
        return False


def running_pid(kind: str, host: str, port: int) -> int | None:
    """The pid of the running ``<kind>`` daemon started for host:port, or None."""
    pid = _read_pid(pid_file_path(kind, host, port))
    return pid if pid and _is_alive(pid, kind) else None


@contextmanager
def _pid_dir_lock() -> Iterator[None]:
    """Serialise check-spawn-record across concurrent ``start`` commands of this PID dir."""
    directory = pid_dir()
    _makedirs_private(directory)
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_pid_file(path: str, pid: int) -> None:
    # Written to a temporary name and renamed, so a reader never sees a half-written pid.
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{pid}\n".encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _rotate(path: str, keep: int) -> None:
    """path -> path.1 -> ... -> path.<keep> (the oldest falls off), as Spark rotates .out files."""
    if not os.path.exists(path):
        return
    for i in range(keep - 1, 0, -1):
        older = f"{path}.{i}"
        if os.path.exists(older):
            os.replace(older, f"{path}.{i + 1}")
    os.replace(path, f"{path}.1")


def tail_lines(path: str, n: int = TAIL_LINES, start: int = 0) -> str:
    """The last *n* lines of the file at *path* from byte offset *start* on ("" if none)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            # 64 KiB is plenty for 20 log lines, and keeps a huge log from being read whole
            f.seek(max(start, size - 65536))
            data = f.read()
    except OSError:
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
    stale pid file is removed instead), when the process exits before it is ready, or
    when it is not ready within *timeout* seconds (it is then stopped); the error
    carries the last lines of its log.
    """
    name = daemon_name(kind, host, port)
    pid_path = pid_file_path(kind, host, port)
    _makedirs_private(log_dir())
    log_path = os.path.join(log_dir(), name + ".log")
    out_path = os.path.join(log_dir(), name + ".out")
    with _pid_dir_lock():
        old = _read_pid(pid_path)
        if old is not None:
            if old and _is_alive(old, kind):
                raise DaemonError(
                    f"{kind} is already running on {host}:{port} as process {old} "
                    f"(pid file {pid_path}); stop it first with 'sparkctl {kind} stop'"
                )
            log.info("removing stale pid file %s (process %s is gone)", pid_path, old)
            _remove(pid_path)
        _rotate(out_path, OUT_BACKUPS)
        try:
            log_start = os.path.getsize(log_path)
        except OSError:
            log_start = 0
        read_fd, write_fd = os.pipe()
        cmd = [python or sys.executable, "-m", f"sparkctl.deploy.{kind}", *args,
               "--ready-fd", str(write_fd), "--log-file", log_path]
        try:
            with open(out_path, "ab") as out:
                os.chmod(out_path, 0o600)
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
    if not _signal(pid, signal.SIGTERM):
        return "failed"
    if not _wait_exit([pid], time.monotonic() + grace):
        return "stopped"
    _signal(pid, signal.SIGKILL)
    return "failed" if _wait_exit([pid], time.monotonic() + 5.0) else "killed"


def _pid_files(kind: str, port: int | None) -> list[tuple[str, str, int]]:
    """``(path, host, port)`` of every pid file of *kind* in the PID dir (optionally one port)."""
    _check_kind(kind)
    pattern = re.compile(rf"sparkctl-{kind}-(.+)-(\d+)\.pid")
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(pid_dir()), f"sparkctl-{kind}-*.pid"))):
        m = pattern.fullmatch(os.path.basename(path))
        if m and (port is None or int(m.group(2)) == port):
            found.append((path, m.group(1), int(m.group(2))))
    return found


def stop_daemons(kind: str, port: int | None = None, *, grace: float = 10.0) -> list[StoppedDaemon]:
    """Stop every ``<kind>`` daemon with a pid file in the PID dir (or only the one on *port*).

    All get SIGTERM at once and share one *grace* period before SIGKILL, so stopping ten
    workers takes one grace period, not ten.  Returns one entry per pid file (empty:
    none was running); one daemon's failure never hides the others' results.
    """
    results: list[StoppedDaemon] = []
    signalled: list[tuple[str, str, int, int]] = []
    for path, host, dport in _pid_files(kind, port):
        try:
            pid = _read_pid(path)
        except DaemonError:
            pid = 0
        if pid is None:
            continue  # removed under us by a concurrent stop
        if not pid or not _is_alive(pid, kind):
            _remove(path)
            results.append(StoppedDaemon(kind, host, dport, pid, "stale", path))
            continue
        if _signal(pid, signal.SIGTERM):
            log.info("sent SIGTERM to %s %s:%d (pid %d)", kind, host, dport, pid)
            signalled.append((path, host, dport, pid))
        else:
            results.append(StoppedDaemon(kind, host, dport, pid, "failed", path))
    still = set(_wait_exit([s[3] for s in signalled], time.monotonic() + grace))
    for pid in still:
        log.warning("%s (pid %d) did not stop within %gs; sending SIGKILL", kind, pid, grace)
        _signal(pid, signal.SIGKILL)
    dead_after_kill = set(still) - set(_wait_exit(list(still), time.monotonic() + 5.0))
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


def setup_daemon_logging(log_file: str | None, level: int = logging.INFO) -> None:
    """Log to *log_file* through a RotatingFileHandler (10 MB x 5), or to stderr if None.

    For the master and worker daemons' ``--log-file``: replaces the root logger's
    handlers, routes ``warnings`` into the log, and logs uncaught exceptions (of the
    main thread and of other threads) with their tracebacks, so a daemon that dies
    says why in its log.
    """
    handler: logging.Handler
    if log_file:
        _makedirs_private(os.path.dirname(os.path.abspath(log_file)))
        handler = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
        )
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
