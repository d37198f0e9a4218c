"""The SSH launcher: start and stop a worker on every host of conf/workers, in parallel.

::

    sparkctl cluster start (here)                          each host of conf/workers
      │ one thread per host ──── SSH, host key checked ───▶ sshd
      │   exec: env PYTHONPATH=.. PYTHON -m sparkctl.cli     │
      │         worker start --secret-stdin --master URL    ▼
      │   stdin: the cluster secret, then EOF ──────────▶ sparkctl worker start
      │                                                    │ secret -> conf dir's secret file (0600)
      │                                                    │ start_daemon: worker registers
      │ ◀── exit 0, "worker ID registered with URL" ───────┘ with the master, then READY
      │ RequestMasterState: is ID alive at the master?
      ▼ one HostResult per host: started / already running / FAILED (and why)

The cluster secret crosses only the encrypted SSH channel, as the remote command's
stdin: never on a command line (visible in ``ps`` to every user of the host), never in
an environment variable, never in a file another user could read.

Every host is tried whatever happens to the others (fabric's ``GroupResult``): a host
that fails becomes a failed :class:`HostResult` with the reason in words, never an
exception that hides the rest. Host keys are checked against known_hosts: an unknown
host is refused unless ``accept_new_host_keys`` is set (then its key is appended to the
file), and a host whose key differs from the one on file is always refused.
"""
from __future__ import annotations

import base64
import errno
import fcntl
import getpass
import hashlib
import logging
import os
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import paramiko

from sparkctl.deploy.hosts import WorkerHost
from sparkctl.errors import AuthenticationError, SparkctlError
from sparkctl.util.fsutil import private_makedirs

__all__ = [
    "HostError", "HostDownError", "SSHAuthError", "HostKeyError", "UnknownHostKeyError", "HostKeyMismatchError",
    "RemoteCommandError", "SparkctlNotFoundError", "WorkerNotRegisteredError",
    "SSHOptions", "HostResult", "RemoteResult", "default_known_hosts",
    "worker_start_command", "worker_stop_command", "connect", "run_remote", "run_on_hosts",
    "start_workers", "stop_workers", "interpret_start", "interpret_stop",
]

log = logging.getLogger("sparkctl.ssh")
# paramiko logs a failed handshake at ERROR on its own logger; with no handler anywhere,
# Python's last-resort handler would print it under our table. We report it ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 10.0
#: ``worker start`` waits up to 30 s for its worker to register; leave room for SSH itself.
COMMAND_TIMEOUT = 60.0
#: How long the master gets to list a worker that said it registered.
MASTER_CHECK_TIMEOUT = 5.0
#: Lines of a remote command's output kept for the user.
DETAIL_LINES = 20

# Ends of a remote command's exit: the shell's "command not found", and Python's for -m.
_NOT_FOUND_STATUS = 127
_NO_MODULE = re.compile(r"No module named '?sparkctl[.'\s]")
_REGISTERED = re.compile(r"^worker (\S+) registered with (\S+) \(pid (\d+)\)", re.M)
_ALREADY = re.compile(r"already running on (\S+) as process (\d+)")


# ---------------------------------------------------------------- errors


class HostError(SparkctlError):
    """One host could not do its part: ``message`` says why in a sentence, ``reason`` in a
    few words (for a summary line), ``details`` holds remote output worth showing."""

    reason = "SSH error"

    def __init__(self, message: str, details: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        if reason:
            self.reason = reason


class HostDownError(HostError):
    """The host cannot be reached: DNS failure, connection refused, timed out, unreachable."""


class SSHAuthError(HostError):
    """sshd refused every key we offered."""

    reason = "authentication failed"


class HostKeyError(HostError):
    """The host's key could not be verified against known_hosts."""


class UnknownHostKeyError(HostKeyError):
    """The host is not in known_hosts (and new keys are not accepted)."""

    reason = "unknown host key"


class HostKeyMismatchError(HostKeyError):
    """The host's key differs from the one in known_hosts: refused, always."""

    reason = "host key mismatch"


class RemoteCommandError(HostError):
    """The remote ``sparkctl`` command ran and failed."""

    reason = "remote command failed"


class SparkctlNotFoundError(RemoteCommandError):
    """The host has no such Python, or that Python cannot import sparkctl."""

    reason = "sparkctl not found"


class WorkerNotRegisteredError(RemoteCommandError):
    """The worker started but never registered with the master (or the master does not list it)."""

    reason = "worker never registered"


# ---------------------------------------------------------------- options and results


def default_known_hosts() -> str:
    return os.path.join(os.path.expanduser("~"), ".ssh", "known_hosts")


@dataclass(frozen=True)
class SSHOptions:
    """How to reach the hosts. With an ``identity`` file only that key is offered (as
    ``ssh -i`` with ``IdentitiesOnly``); without, the SSH agent's keys and ~/.ssh/id_*."""

    identity: str | None = None
    known_hosts: str = field(default_factory=default_known_hosts)
    accept_new_host_keys: bool = False
    connect_timeout: float = CONNECT_TIMEOUT
    command_timeout: float = COMMAND_TIMEOUT


@dataclass
class HostResult:
    """What happened on one host. ``ok`` is False only for a real failure: for ``stop``, a
    host that is down (or has no worker running) is reported but fine."""

    host: WorkerHost
    ok: bool
    result: str  # started, already running, stopped, not running, unreachable, FAILED
    worker_id: str = ""
    message: str = ""
    details: str = ""  # e.g. the last lines of the worker's log
    error: BaseException | None = None

    @property
    def reason(self) -> str:
        """A few words on what went wrong (for a summary line), or the result."""
        return self.error.reason if isinstance(self.error, HostError) else self.result


@dataclass(frozen=True)
class RemoteResult:
    status: int  # -1 if the command ended without an exit status (killed by a signal)
    stdout: str
    stderr: str


# ---------------------------------------------------------------- remote commands


def _sparkctl_argv(h: WorkerHost, *args: str) -> list[str]:
    # `env` puts the settings in the remote process's environment whatever the login shell
    # is; none of them is secret.
    env = [f"{k}={v}" for k, v in h.remote_env().items()]
    return (["env", *env] if env else []) + [h.python, "-m", "sparkctl.cli", *args]


def worker_start_command(h: WorkerHost, master_url: str) -> str:
    """The shell command that starts *h*'s worker; it reads the secret from its stdin."""
    args = ["worker", "start", "--secret-stdin", "--master", master_url, "--host", h.host,
            "--port", str(h.worker_port)]
    if h.webui_port is not None:
        args += ["--webui-port", str(h.webui_port)]
    if h.cores is not None:
        args += ["--cores", str(h.cores)]
    if h.memory is not None:
        args += ["--memory", h.memory]
    if h.work_dir:
        args += ["--work-dir", h.work_dir]
    return shlex.join(_sparkctl_argv(h, *args))


def worker_stop_command(h: WorkerHost) -> str:
    """Stops the worker *h* names (its port picks it out of others on the same machine)."""
    return shlex.join(_sparkctl_argv(h, "worker", "stop", "--port", str(h.worker_port)))


# ---------------------------------------------------------------- host keys


_known_hosts_lock = threading.Lock()  # the hosts' threads append to one file


def fingerprint(key: paramiko.PKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it, so a user can compare the two."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _describe_known(keys: Mapping[str, paramiko.PKey]) -> str:
    return ", ".join(f"{name} {fingerprint(k)}" for name, k in keys.items()) or "another key"


def _mismatch(hostname: str, key: paramiko.PKey, known: str, path: str) -> HostKeyMismatchError:
    return HostKeyMismatchError(
        f"host key mismatch: {hostname} presented {key.get_name()} {fingerprint(key)}, but {path} holds "
        f"{known} for it; refusing to connect (someone may be intercepting the connection; if the host "
        f"was reinstalled, remove its old key with: ssh-keygen -R '{hostname}' -f {path})"
    )


class _RefuseUnknownHost(paramiko.MissingHostKeyPolicy):
    """The default: a host not in known_hosts is not trusted."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        known = client.get_host_keys().lookup(hostname)
        if known:
            # Known with a key of another type only: a changed host as far as we can tell.
            raise _mismatch(hostname, key, _describe_known(known), self.path)
        raise UnknownHostKeyError(
            f"unknown host key: {hostname} is not in {self.path} (it offers {key.get_name()} {fingerprint(key)}); "
            "check that fingerprint, then rerun with --accept-new-host-keys to add it"
        )


class _AcceptNewHost(paramiko.MissingHostKeyPolicy):
    """``StrictHostKeyChecking=accept-new``: append an unknown host's key to known_hosts.

    paramiko calls this only when it has no key of the offered type for the host, so a
    host known under any key is refused here too: a new key for a known host is exactly
    what a man in the middle would offer.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.added: str = ""

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        known = client.get_host_keys().lookup(hostname)
        if known:
            raise _mismatch(hostname, key, _describe_known(known), self.path)
        with _known_hosts_lock:
            directory = os.path.dirname(os.path.abspath(self.path))
            if not os.path.isdir(directory):
                private_makedirs(directory)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # and other sparkctl processes
                # Read again under the lock: another thread or process may have added the
                # host since we loaded the file (two conf/workers lines for one host).
                current = paramiko.HostKeys()
                current.load(self.path)
                entry = current.lookup(hostname)
                if entry:
                    if entry.get(key.get_name()) != key:
                        raise _mismatch(hostname, key, _describe_known(entry), self.path)
                else:
                    size = os.fstat(fd).st_size
                    needs_newline = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
                    line = paramiko.hostkeys.HostKeyEntry([hostname], key).to_line()
                    os.write(fd, (("\n" if needs_newline else "") + line).encode())
                    self.added = f"added its host key {key.get_name()} {fingerprint(key)} to {self.path}"
            finally:
                os.close(fd)
        client.get_host_keys().add(hostname, key.get_name(), key)


# ---------------------------------------------------------------- connecting


def _connect_error(e: BaseException, h: WorkerHost, user: str, opts: SSHOptions) -> HostError:
    """Turn what paramiko and the socket layer raise into a reason a user can act on."""
    where = f"{h.host}:{h.ssh_port}"
    if isinstance(e, HostError):
        return e
    if isinstance(e, socket.gaierror):
        return HostDownError(f"DNS failure: cannot resolve {h.host} ({e.strerror})", reason="DNS failure")
    if isinstance(e, paramiko.BadHostKeyException):
        return _mismatch(e.hostname, e.key, f"{e.expected_key.get_name()} {fingerprint(e.expected_key)}",
                         opts.known_hosts)
    if isinstance(e, paramiko.AuthenticationException):
        return SSHAuthError(f"authentication failed for {user}@{where}: {_keys_tried(opts)} not accepted")
    if isinstance(e, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(x, "errno", None) for x in e.errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return HostDownError(f"connection refused by {where} (no SSH server listening there?)",
                                 reason="connection refused")
        return HostDownError(f"cannot connect to {where}: {e.strerror or e}", reason="cannot connect")
    if isinstance(e, (socket.timeout, TimeoutError)):
        return HostDownError(f"connection to {where} timed out after {opts.connect_timeout:g}s", reason="timed out")
    if isinstance(e, OSError):
        if e.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
            return HostDownError(f"{where} is unreachable ({e.strerror})", reason="unreachable")
        return HostDownError(f"cannot connect to {where}: {e.strerror or e}", reason="cannot connect")
    if isinstance(e, paramiko.SSHException):
        # paramiko has no class for "no key to offer at all"; it is an authentication failure.
        if "No authentication methods available" in str(e):
            return SSHAuthError(f"authentication failed for {user}@{where}: no key to offer "
                                "(no SSH agent, no ~/.ssh/id_* key; pass --identity FILE)")
        return HostError(f"SSH to {where} failed: {e}")
    if isinstance(e, EOFError):
        return HostError(f"SSH to {where} failed: the server closed the connection")
    return HostError(f"SSH to {where} failed: {type(e).__name__}: {e}")


def _keys_tried(opts: SSHOptions) -> str:
    return f"the key {opts.identity}" if opts.identity else "the SSH agent's keys and ~/.ssh/id_* keys"


def connect(h: WorkerHost, opts: SSHOptions) -> tuple[paramiko.SSHClient, str]:
    """An authenticated SSH connection to *h*, and a note if its host key was just added.

    Raises a :class:`HostError` subclass that says why it failed.
    """
    user = h.user or getpass.getuser()
    client = paramiko.SSHClient()
    policy: _RefuseUnknownHost | _AcceptNewHost
    policy = _AcceptNewHost(opts.known_hosts) if opts.accept_new_host_keys else _RefuseUnknownHost(opts.known_hosts)
    try:
        if os.path.exists(opts.known_hosts):
            client.load_host_keys(opts.known_hosts)
    except OSError as e:
        # Not a connection problem: `stop` must not report this host as merely down.
        raise HostKeyError(f"cannot read {opts.known_hosts}: {e.strerror or e}", reason="known_hosts unreadable") from e
    try:
        client.set_missing_host_key_policy(policy)
        client.connect(
            h.host, port=h.ssh_port, username=user,
            key_filename=opts.identity, look_for_keys=opts.identity is None, allow_agent=opts.identity is None,
            timeout=opts.connect_timeout, banner_timeout=opts.connect_timeout, auth_timeout=opts.connect_timeout,
        )
    except BaseException as e:
        client.close()
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise _connect_error(e, h, user, opts) from e
    return client, getattr(policy, "added", "")


def run_remote(client: paramiko.SSHClient, command: str, stdin: bytes | None, timeout: float) -> RemoteResult:
    """Run *command* on the host, feed it *stdin* then EOF, and collect its output and status."""
    deadline = time.monotonic() + timeout
    transport = client.get_transport()
    if transport is None:
        raise HostError("the SSH connection closed before the command could run")
    chan = transport.open_session(timeout=timeout)
    try:
        chan.exec_command(command)
        if stdin:
            chan.sendall(stdin)
        # EOF on the remote stdin even without data, so nothing there waits for input.
        chan.shutdown_write()

        def read_all(recv: Callable[[int], bytes]) -> str:
            data = bytearray()
            while True:
                chan.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = recv(65536)
                if not chunk:
                    return data.decode("utf-8", errors="replace")
                data += chunk

        try:
            # paramiko buffers stderr apart from stdout, so reading them one after the
            # other cannot deadlock on the little a sparkctl command prints.
            out = read_all(chan.recv)
            err = read_all(chan.recv_stderr)
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError
        except (socket.timeout, TimeoutError):
            raise HostError(f"the remote command did not finish within {timeout:g}s", reason="timed out") from None
        return RemoteResult(chan.recv_exit_status(), out, err)
    finally:
        chan.close()


# ---------------------------------------------------------------- interpreting the output


def _tail(text: str, n: int = DETAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-n:])


def _first_line(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    return line.removeprefix("sparkctl: ")


def _check_found(h: WorkerHost, r: RemoteResult) -> None:
    if r.status == _NOT_FOUND_STATUS or _NO_MODULE.search(r.stderr):
        raise SparkctlNotFoundError(
            f"sparkctl not found on the host: '{h.python} -m sparkctl.cli' failed "
            f"({_first_line(r.stderr) or f'exit {r.status}'}); install sparkctl there, "
            "or set python= (and pythonpath=) for it in conf/workers",
            # a traceback says more than its last line; one line is in the message already
            _tail(r.stderr) if len(r.stderr.strip().splitlines()) > 1 else "",
        )


def interpret_start(h: WorkerHost, r: RemoteResult) -> tuple[str, str, str]:
    """``(result, worker id, message)`` of a remote ``worker start``, or a HostError.

    An already-running worker gives ``("already running", "", its pid)``: only the master
    can tell which worker id it is.
    """
    _check_found(h, r)
    text = r.stdout + r.stderr
    if r.status == 0:
        m = _REGISTERED.search(r.stdout)
        if not m:
            raise RemoteCommandError(f"worker start said nothing about registering: {_first_line(text)!r}",
                                     _tail(text))
        return "started", m.group(1), f"registered with {m.group(2)} (pid {m.group(3)})"
    already = _ALREADY.search(text)
    if already:
        return "already running", "", f"pid {already.group(2)}"
    lines = r.stderr.strip().splitlines()
    first = _first_line(r.stderr) or _first_line(r.stdout) or f"exit status {r.status}"
    if "last lines of its log" in r.stderr:
        # start_daemon's failure: the reason, then the daemon's own log lines.
        details = "\n".join(lines[1:])
        if "did not become ready" in first:
            raise WorkerNotRegisteredError(f"worker started but never registered with the master ({first})",
                                           details)
        raise WorkerNotRegisteredError(f"worker failed before registering: {first}", details, reason="worker failed")
    raise RemoteCommandError(f"worker start failed: {first}", _tail(text))


def interpret_stop(h: WorkerHost, r: RemoteResult) -> tuple[str, str]:
    """``(result, message)`` of a remote ``worker stop``, or a HostError."""
    _check_found(h, r)
    message = "; ".join(ln.strip() for ln in r.stdout.strip().splitlines() if ln.strip())
    if r.status != 0:
        raise RemoteCommandError(f"worker stop failed: {_first_line(r.stderr) or message or f'exit {r.status}'}",
                                 _tail(r.stdout + r.stderr))
    if not message or message.startswith("no worker"):
        return "not running", message or "no worker running"
    return "stopped", message


# ---------------------------------------------------------------- many hosts


def run_on_hosts(hosts: Sequence[WorkerHost], task: Callable[[WorkerHost], HostResult],
                 on_error: Callable[[WorkerHost, BaseException], HostResult]) -> list[HostResult]:
    """``task`` on every host at once, one thread each; results in conf/workers order.

    An exception from one host becomes that host's result through ``on_error`` and never
    stops the others.
    """
    def guarded(h: WorkerHost) -> HostResult:
        try:
            return task(h)
        except Exception as e:
            log.debug("%s failed", h.label, exc_info=True)
            return on_error(h, e)

    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(32, len(hosts)), thread_name_prefix="ssh") as pool:
        return list(pool.map(guarded, hosts))


def _failed(h: WorkerHost, e: BaseException) -> HostResult:
    if isinstance(e, HostError):
        return HostResult(h, False, "FAILED", message=e.message, details=e.details, error=e)
    return HostResult(h, False, "FAILED", message=f"{type(e).__name__}: {e}", error=e)


def _alive_at_master(fetch_state: Callable[[], dict[str, Any]], h: WorkerHost, worker_id: str) -> str:
    """The id of *h*'s ALIVE worker at the master (*worker_id*, or any on its host:port)."""
    deadline = time.monotonic() + MASTER_CHECK_TIMEOUT
    while True:
        workers = fetch_state().get("workers") or []
        for w in workers:
            if w.get("state") != "ALIVE":
                continue
            if worker_id and w.get("id") == worker_id:
                return worker_id
            if not worker_id and w.get("host") == h.host and (h.port == 0 or w.get("port") == h.worker_port):
                return str(w.get("id", "?"))
        if time.monotonic() > deadline:
            return ""
        time.sleep(0.1)  # the master's state changes on its own schedule: poll it, with a deadline


def start_workers(hosts: Sequence[WorkerHost], master_url: str, secret: bytes, opts: SSHOptions,
                  fetch_state: Callable[[], dict[str, Any]]) -> list[HostResult]:
    """Start a worker on every host, each pointed at *master_url*; check the master lists it.

    *fetch_state* returns the master's state document (``RequestMasterState``).
    """
    def start(h: WorkerHost) -> HostResult:
        client, added = connect(h, opts)
        try:
            r = run_remote(client, worker_start_command(h, master_url), secret + b"\n", opts.command_timeout)
        finally:
            client.close()
        result, worker_id, message = interpret_start(h, r)
        try:
            listed = _alive_at_master(fetch_state, h, worker_id)
        except (AuthenticationError, SparkctlError, OSError) as e:
            raise HostError(f"the worker started ({message}), but the master cannot be asked about it: {e}") from e
        if not listed:
            if result == "already running":
                raise RemoteCommandError(f"a worker already runs there ({message}) but is not registered with "
                                         f"{master_url}; stop it first (sparkctl workers stop)")
            raise WorkerNotRegisteredError(f"worker {worker_id} said it registered, but the master at {master_url} "
                                           "does not list it as ALIVE")
        notes = "; ".join(filter(None, [message, added]))
        return HostResult(h, True, result, listed, notes)

    return run_on_hosts(hosts, start, _failed)


def stop_workers(hosts: Sequence[WorkerHost], opts: SSHOptions) -> list[HostResult]:
    """Stop the worker of every host; a host that is down is reported, not a failure."""
    def stop(h: WorkerHost) -> HostResult:
        client, added = connect(h, opts)
        try:
            r = run_remote(client, worker_stop_command(h), None, opts.command_timeout)
        finally:
            client.close()
        result, message = interpret_stop(h, r)
        return HostResult(h, True, result, "", "; ".join(filter(None, [message, added])))

    def on_error(h: WorkerHost, e: BaseException) -> HostResult:
        if isinstance(e, HostDownError):
            return HostResult(h, True, "unreachable", message=e.message, error=e)
        return _failed(h, e)

    return run_on_hosts(hosts, stop, on_error)
