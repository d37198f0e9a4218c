"""``conf/workers``: the hosts ``sparkctl cluster start`` launches a worker on, over SSH.

One host a line, ``[user@]host[:sshport]``, then optional ``key=value`` settings for
that host; ``#`` starts a comment, blank lines are ignored. Values may be quoted as in a
shell (``work_dir="/data/my dir"``)::

    worker1.example.org
    alice@worker2.example.org:2222 cores=4 memory=8g python=/opt/venv/bin/python work_dir=/data/sparkctl

The host is both where we SSH to and the address the worker listens on and advertises
to the master, so it must be an address (or name) of that machine. Several workers on
one machine need distinct ``port=``/``webui_port=`` (or distinct addresses).

A mistake is a :class:`~sparkctl.errors.ConfigError` naming the file and the line
(``path:LINE: ...``), raised before anything is started, so a typo on the last line
never leaves half a cluster running.
"""
from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from sparkctl.conf import conf_dir, parse_size
from sparkctl.deploy.commands import WORKER_PORT
from sparkctl.errors import ConfigError

__all__ = ["WorkerHost", "SETTINGS", "DEFAULT_SSH_PORT", "DEFAULT_PYTHON", "workers_file", "parse_workers",
           "load_workers"]

DEFAULT_SSH_PORT = 22
DEFAULT_PYTHON = "python3"

# [user@]host[:port], host possibly a bracketed IPv6 address as in OpenSSH's known_hosts.
_TARGET = re.compile(r"(?:(?P<user>[^@\s]*)@)?(?P<host>\[[^\]]*\]|[^:\[\]@\s]*)(?::(?P<port>.*))?")
# Host names and IPv4 addresses; anything else (a slash, a quote) is a typo, not a host.
_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+(%[A-Za-z0-9_.-]+)?")
_USER = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?")


@dataclass(frozen=True)
class WorkerHost:
    """One line of conf/workers: where to SSH, and how to run the worker there."""

    host: str
    user: str | None = None  # None: the local user name, as ssh does
    ssh_port: int = DEFAULT_SSH_PORT
    cores: int | None = None  # None: the worker's own default (all cores)
    memory: str | None = None  # None: the worker's own default (total minus 1 GiB)
    python: str = DEFAULT_PYTHON
    work_dir: str | None = None
    port: int | None = None  # the worker's rpc port; None: the worker's default
    webui_port: int | None = None
    pythonpath: str | None = None  # where sparkctl is, if it is not installed for that python
    pid_dir: str | None = None
    log_dir: str | None = None
    conf_dir: str | None = None  # where the worker keeps the cluster secret there
    where: str = field(default="", compare=False)  # "path:LINE", for messages

    @property
    def worker_port(self) -> int:
        """The worker's rpc port: also part of its pid file's name, so ``worker stop`` on
        that host can pick this worker out of others on the same machine."""
        return WORKER_PORT if self.port is None else self.port

    @property
    def label(self) -> str:
        """The host as conf/workers names it: ``[user@]host[:sshport]``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.ssh_port}" if self.ssh_port != DEFAULT_SSH_PORT else ""
        return f"{user}{host}{port}"

    def remote_env(self) -> dict[str, str]:
        """Environment for sparkctl on the host. None of it is secret: it travels on the
        remote command line, which other users of that host can see."""
        env = {
            "PYTHONPATH": self.pythonpath,
            "SPARKCTL_CONF_DIR": self.conf_dir,
            "SPARKCTL_PID_DIR": self.pid_dir,
            "SPARKCTL_LOG_DIR": self.log_dir,
            "SPARKCTL_WORK_DIR": self.work_dir,
        }
        return {k: v for k, v in env.items() if v}


# ---------------------------------------------------------------- values


def _port(value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ValueError("expected a port number 0..65535")
    return int(value)


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError("expected a whole number of at least 1")
    return int(value)


def _size(value: str) -> str:
    if parse_size(value, "m", "memory") < (1 << 20):
        raise ValueError("expected at least 1m")
    return value


def _text(value: str) -> str:
    return value


#: The settings a host line may carry: key -> (parser of its value, what it does).
SETTINGS: dict[str, tuple[Callable[[str], object], str]] = {
    "cores": (_positive_int, "task slots the worker offers (default: all cores of the host)"),
    "memory": (_size, "memory the worker offers, e.g. 8g (default: total memory minus 1 GiB)"),
    "python": (_text, f"the Python that runs sparkctl there (default: {DEFAULT_PYTHON})"),
    "pythonpath": (_text, "PYTHONPATH for it, if sparkctl is not installed for that Python"),
    "work_dir": (_text, "where executors keep their files and logs (SPARKCTL_WORK_DIR)"),
    "port": (_port, "the worker's rpc port (default 7078; 0: any free port)"),
    "webui_port": (_port, "the worker's web UI port (default 8081; 0: any free port)"),
    "pid_dir": (_text, "where the worker's pid file goes there (SPARKCTL_PID_DIR, default a private per-user dir)"),
    "log_dir": (_text, "where the worker's log goes there (SPARKCTL_LOG_DIR)"),
    "conf_dir": (_text, "sparkctl's conf dir there, which keeps the cluster secret (SPARKCTL_CONF_DIR)"),
}


# ---------------------------------------------------------------- parsing


def workers_file() -> str:
    """``$SPARKCTL_CONF_DIR/workers``."""
    return os.path.join(conf_dir(), "workers")


def _parse_target(token: str, fail: Callable[[str], ConfigError]) -> tuple[str | None, str, int]:
    m = _TARGET.fullmatch(token)
    if not m:
        raise fail(f"expected [user@]host[:sshport], got {token!r}")
    user, host, port = m.group("user"), m.group("host"), m.group("port")
    if user is not None and not _USER.fullmatch(user):
        raise fail(f"empty or invalid user name in {token!r}" if user else f"empty user name in {token!r}")
    if host.startswith("["):
        host = host[1:-1]
        if not _IPV6.fullmatch(host):
            raise fail(f"invalid IPv6 address in {token!r}")
    elif not host:
        raise fail(f"empty host in {token!r}")
    elif not _HOSTNAME.fullmatch(host):
        raise fail(f"invalid host name {host!r}")
    ssh_port = DEFAULT_SSH_PORT
    if port is not None:
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise fail(f"bad SSH port {port!r} in {token!r}: expected 1..65535")
        ssh_port = int(port)
    return user, host, ssh_port


def _parse_line(tokens: list[str], where: str) -> WorkerHost:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"{where}: {message}")

    user, host, ssh_port = _parse_target(tokens[0], fail)
    values: dict[str, object] = {}
    for token in tokens[1:]:
        key, sep, raw = token.partition("=")
        if not sep:
            raise fail(f"expected key=value after the host, got {token!r}")
        if key not in SETTINGS:
            raise fail(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
        if key in values:
            raise fail(f"{key} is given twice")
        if not raw:
            raise fail(f"{key}= needs a value")
        parse, _ = SETTINGS[key]
        try:
            values[key] = parse(raw)
        except (ValueError, ConfigError) as e:
            detail = str(e).split(": ", 1)[-1] if isinstance(e, ConfigError) else str(e)
            raise fail(f"bad value {raw!r} for {key}: {detail}") from None
    return WorkerHost(host=host, user=user, ssh_port=ssh_port, where=where, **values)  # type: ignore[arg-type]


def parse_workers(text: str, path: str = "workers") -> list[WorkerHost]:
    """The hosts listed in *text* (the content of the file at *path*, named in errors)."""
    hosts: list[WorkerHost] = []
    seen: dict[tuple[str, int], str] = {}
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}"
        try:
            tokens = shlex.split(raw, comments=True)
        except ValueError as e:  # an unbalanced quote
            raise ConfigError(f"{where}: {e}") from None
        if not tokens:
            continue
        h = _parse_line(tokens, where)
        # Two workers with the same address and port would share a pid file and a port:
        # the second start would fail on the host, so say it here, before starting any.
        key = (h.host, h.worker_port)
        if key in seen:
            raise ConfigError(f"{where}: a worker on {h.host} port {h.worker_port} is already listed at {seen[key]}; "
                              "give each worker on one address its own port=")
        seen[key] = where
        hosts.append(h)
    return hosts


def load_workers(path: str | None = None) -> list[WorkerHost]:
    """Parse ``$SPARKCTL_CONF_DIR/workers`` (or *path*); ConfigError if it is missing or wrong."""
    path = path or workers_file()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; list the worker hosts there, one a line "
                          "([user@]host[:sshport] key=value ...)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    return parse_workers(text, path)
