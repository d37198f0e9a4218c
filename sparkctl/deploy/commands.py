"""``sparkctl master ...``, ``sparkctl worker ...`` and ``sparkctl status``: thin click
commands over :mod:`sparkctl.deploy.daemon` and the master's status message.

A mistake on the command line (a bad URL, size or port, a port in use) is a
``click.UsageError``: one line, exit 2. A daemon that cannot start, or a master that
cannot be reached, is a ``click.ClickException``: the reason (and the daemon's last
log lines), exit 1.

``sparkctl.cli`` registers ``master``, ``worker`` and ``status`` on its group; this
module does not import ``sparkctl.cli``, so that either can import the other first.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from typing import Any, NoReturn

import click

from sparkctl.conf import check_defaults_file, conf_dir, load_defaults_file, parse_size
from sparkctl.deploy import daemon
from sparkctl.errors import AuthenticationError, ConfigError, RpcConnectError, RpcTimeoutError, SparkctlError
from sparkctl.util.fsutil import private_makedirs, write_private_atomic

CONTEXT = {"help_option_names": ["-h", "--help"]}
MASTER_PORT = 7077
MASTER_WEBUI_PORT = 8080
WORKER_PORT = 7078
WORKER_WEBUI_PORT = 8081
#: How long ``start`` waits for a daemon's READY line (a worker must also register).
START_TIMEOUT = 30.0

_PORT = click.IntRange(0, 65535)


# ---------------------------------------------------------------- validation


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def _master_url(value: str, what: str = "--master") -> tuple[str, int]:
    try:
        return daemon.parse_master_url(value)
    except ConfigError:
        _usage(f"{what}: {value!r} is not a master URL; expected spark://host:port")


def _check_bindable(option: str, host: str, port: int) -> None:
    """Refuse a port another process listens on (or a host that is not ours), before a
    daemon fails on it in the background. Port 0 still checks the host."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        _usage(f"--host: cannot resolve {host!r}: {e.strerror}")
    family, type_, proto, _, addr = infos[0]
    with socket.socket(family, type_, proto) as s:
        # As the daemons' servers do: only a live listener (not TIME_WAIT leftovers) counts as in use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                _usage(f"{option} {port}: {host}:{port} is already in use by another process")
            if e.errno == errno.EADDRNOTAVAIL:
                _usage(f"--host {host}: not an address of this machine")
            _usage(f"{option} {port}: cannot listen on {host}:{port}: {e.strerror or e}")


def _check_ports(host: str, ports: list[tuple[str, int]]) -> None:
    nonzero = [p for _, p in ports if p]
    if len(nonzero) != len(set(nonzero)):
        _usage(" and ".join(o for o, _ in ports) + " must differ")
    for option, port in ports:
        _check_bindable(option, host, port)


def _memory_mib(value: str) -> int:
    try:
        mib = parse_size(value, "m", "--memory") >> 20
    except ConfigError as e:
        _usage(str(e))
    if mib < 1:
        _usage(f"--memory must be at least 1m, got {value!r}")
    return mib


def _refuse_double_start(kind: str, host: str, port: int) -> None:
    # Before the port checks: "already running as pid N" says more than "port in use".
    try:
        pid = daemon.running_pid(kind, host, port)
    except daemon.DaemonError as e:  # an unsafe PID dir: say what is wrong with it
        raise click.ClickException(str(e)) from None
    if pid is not None:
        raise click.ClickException(
            f"{kind} is already running on {host}:{port} as process {pid}; stop it first with 'sparkctl {kind} stop'"
        )


def _secret() -> bytes:
    from sparkctl.rpc import load_secret

    try:
        secret = load_secret(conf_dir())
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if not secret:
        raise click.ClickException(
            f"no cluster secret: set SPARKCTL_SECRET, or copy the master's {os.path.join(conf_dir(), 'secret')} here"
        )
    return secret


def _store_secret_from_stdin() -> None:
    """``worker start --secret-stdin``: how ``sparkctl workers start`` hands a host the
    cluster secret. It arrives on the SSH channel's stdin, so it is never on a command
    line or in the environment; it is kept where the daemon (and a later manual start)
    looks for it, the conf dir's ``secret`` file, created with mode 600 and renamed into
    place so no reader sees it half-written."""
    value = sys.stdin.buffer.readline().strip()
    if not value:
        _usage("--secret-stdin: no secret on stdin")
    directory = conf_dir()
    path = os.path.join(directory, "secret")
    try:
        with open(path, "rb") as f:
            if f.read().strip() == value:
                return  # already there (e.g. the master's own conf dir)
    except OSError:
        pass
    try:
        private_makedirs(directory)
        write_private_atomic(path, value + b"\n")
    except (OSError, SparkctlError) as e:
        raise click.ClickException(f"cannot store the cluster secret in {path}: {getattr(e, 'strerror', None) or e}") from None


def _start(kind: str, args: list[str], host: str, port: int) -> daemon.StartedDaemon:
    try:
        return daemon.start_daemon(kind, args, host, port, timeout=START_TIMEOUT)
    except daemon.DaemonError as e:
        raise click.ClickException(str(e)) from None


def _foreground(kind: str, args: list[str]) -> NoReturn:
    """Become the daemon (exec): its log goes to stderr, Ctrl-C or SIGTERM stops it."""
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", f"sparkctl.deploy.{kind}", *args]
    os.execve(sys.executable, argv, daemon.daemon_env())


def _stop(kind: str, port: int | None) -> list[daemon.StoppedDaemon]:
    try:
        return daemon.stop_daemons(kind, port)
    except daemon.DaemonError as e:
        raise click.ClickException(str(e)) from None


def _report_stopped(kind: str, port: int | None, results: list[daemon.StoppedDaemon]) -> None:
    if not results:
        click.echo(f"no {kind} running" + (f" on port {port}" if port is not None else ""))
        return
    failed = False
    for r in results:
        where = f"{kind} on {r.host}:{r.port}"
        if r.outcome == "stopped":
            click.echo(f"stopped {where} (pid {r.pid})")
        elif r.outcome == "killed":
            click.echo(f"killed {where} (pid {r.pid}): it did not stop on SIGTERM in time")
        elif r.outcome == "stale":
            click.echo(f"no {where}: removed its stale pid file {r.pid_file}")
        else:
            failed = True
            click.echo(f"could not stop {where} (pid {r.pid})", err=True)
    if failed:
        raise click.exceptions.Exit(1)


# ---------------------------------------------------------------- master


@click.group("master", context_settings=CONTEXT)
def master() -> None:
    """Start or stop the standalone master daemon."""


@master.command("start", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=_PORT, default=MASTER_PORT, show_default=True, help="port for workers and drivers")
@click.option("--webui-port", type=_PORT, default=MASTER_WEBUI_PORT, show_default=True, help="port of the web UI")
@click.option("--recovery-dir", type=click.Path(file_okay=False), help="keep the cluster's state here across restarts")
@click.option("--foreground", is_flag=True, help="run in this process, logging to stderr")
def master_start(host: str, port: int, webui_port: int, recovery_dir: str | None, foreground: bool) -> None:
    """Start the master; print its spark:// URL and web UI address."""
    check_defaults_file()  # a bad setting: one line here (sparkctl.cli prints it), not in the daemon's log
    if not foreground:
        _refuse_double_start("master", host, port)
    _check_ports(host, [("--port", port), ("--webui-port", webui_port)])
    from sparkctl.rpc import create_secret_file, load_secret

    try:
        if not load_secret(conf_dir()):
            # The first master of a cluster makes its secret; workers and drivers on other
            # hosts need a copy of this file (or SPARKCTL_SECRET).
            create_secret_file(conf_dir())
            click.echo(f"created the cluster secret {os.path.join(conf_dir(), 'secret')} (mode 600)")
    except (ConfigError, OSError) as e:
        raise click.ClickException(f"cannot create the cluster secret in {conf_dir()}: {e}") from None
    args = ["--host", host, "--port", str(port), "--webui-port", str(webui_port)]
    if recovery_dir:
        args += ["--recovery-dir", os.path.abspath(recovery_dir)]
    if foreground:
        _foreground("master", args)
    started = _start("master", args, host, port)
    url = started.ready[0] if started.ready else f"spark://{host}:{port}"
    click.echo(f"master started at {url} (pid {started.pid})")
    if len(started.ready) > 1:
        click.echo(f"web UI at {started.ready[1]}")
    click.echo(f"log: {started.log_file}")


@master.command("stop", context_settings=CONTEXT)
@click.option("--port", type=_PORT, default=None, help="only the master started on this port")
def master_stop(port: int | None) -> None:
    """Stop the master(s) started from this machine (SIGTERM, then SIGKILL after 10 s).

    Only processes named by this user's pid files are signalled, and only when they
    are this user's master daemons."""
    _report_stopped("master", port, _stop("master", port))


# ---------------------------------------------------------------- worker


@click.group("worker", context_settings=CONTEXT)
def worker() -> None:
    """Start or stop a worker daemon on this machine."""


@worker.command("start", context_settings=CONTEXT)
@click.option("--master", "master_url", required=True, help="spark://host:port of the master")
@click.option("--cores", type=int, help="task slots to offer  [default: all cores]")
@click.option("--memory", help="memory to offer, e.g. 4g  [default: total memory minus 1 GiB]")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on and advertise")
@click.option("--port", type=_PORT, default=WORKER_PORT, show_default=True, help="the worker's rpc port")
@click.option("--webui-port", type=_PORT, default=WORKER_WEBUI_PORT, show_default=True, help="port of its web UI")
@click.option("--work-dir", type=click.Path(file_okay=False), help="executors' files and logs  [default: work/]")
@click.option("--foreground", is_flag=True, help="run in this process, logging to stderr")
@click.option("--secret-stdin", is_flag=True,
              help="read the cluster secret from stdin into the conf dir's secret file (mode 600)")
def worker_start(master_url: str, cores: int | None, memory: str | None, host: str, port: int, webui_port: int,
                 work_dir: str | None, foreground: bool, secret_stdin: bool = False) -> None:
    """Start a worker that offers this machine's cores and memory to the master."""
    check_defaults_file()  # a bad setting: one line here (sparkctl.cli prints it), not in the daemon's log
    _master_url(master_url)
    if cores is not None and cores < 1:
        _usage(f"--cores must be at least 1, got {cores}")
    mib = _memory_mib(memory) if memory is not None else None
    if not foreground:
        _refuse_double_start("worker", host, port)
    _check_ports(host, [("--port", port), ("--webui-port", webui_port)])
    if secret_stdin:
        _store_secret_from_stdin()
    _secret()  # fail here, in one line, rather than in the daemon's log
    args = ["--master", master_url, "--host", host, "--port", str(port), "--webui-port", str(webui_port)]
    if cores is not None:
        args += ["--cores", str(cores)]
    if mib is not None:
        args += ["--memory", f"{mib}m"]
    args += ["--work-dir", os.path.abspath(work_dir or daemon.work_dir())]
    if foreground:
        _foreground("worker", args)
    started = _start("worker", args, host, port)
    worker_id = started.ready[0] if started.ready else "?"
    registered_with = started.ready[1] if len(started.ready) > 1 else master_url
    click.echo(f"worker {worker_id} registered with {registered_with} (pid {started.pid})")
    click.echo(f"log: {started.log_file}")


@worker.command("stop", context_settings=CONTEXT)
@click.option("--port", type=_PORT, default=None, help="only the worker started on this port")
def worker_stop(port: int | None) -> None:
    """Stop the workers started from this machine; each stops its executors first."""
    _report_stopped("worker", port, _stop("worker", port))


# ---------------------------------------------------------------- status


def _resolve_master(option: str | None) -> tuple[str, str]:
    """The master URL and where it came from: --master, SPARKCTL_MASTER, the config file."""
    if option:
        return option, "--master"
    env = os.environ.get("SPARKCTL_MASTER")
    if env:
        return env, "SPARKCTL_MASTER"
    try:
        configured = load_defaults_file().get("spark.master")
    except ConfigError as e:
        _usage(str(e))
    if configured:
        return configured, f"spark.master in {os.path.join(conf_dir(), 'sparkctl-defaults.conf')}"
    _usage("no master to ask: pass --master spark://host:port or set SPARKCTL_MASTER")


def fetch_master_state(url: str, secret: bytes, timeout: float = 10.0) -> dict[str, Any]:
    """Ask the master at *url* for its state document (Spark's master JSON)."""
    from sparkctl.deploy.client import request_master_state

    host, port = daemon.parse_master_url(url)
    return request_master_state(host, port, secret, timeout)


@click.command("status", context_settings=CONTEXT)
@click.option("--master", "master_url", help="spark://host:port  [default: SPARKCTL_MASTER, then spark.master]")
@click.option("--json", "as_json", is_flag=True, help="print the master's JSON document")
def status(master_url: str | None, as_json: bool) -> None:
    """Show the cluster: workers, running and completed applications (and drivers, if any)."""
    check_defaults_file()  # its TLS settings matter even with --master
    url, source = _resolve_master(master_url)
    _master_url(url, source)
    secret = _secret()
    try:
        state = fetch_master_state(url, secret)
    except AuthenticationError as e:
        raise click.ClickException(f"the master at {url} did not accept our secret ({_reason(e)})") from None
    except RpcConnectError as e:
        reason = "connection refused (is it running?)" if e.errno == errno.ECONNREFUSED else _reason(e)
        raise click.ClickException(f"cannot reach the master at {url}: {reason}") from None
    except (RpcTimeoutError, SparkctlError, OSError) as e:
        raise click.ClickException(f"cannot get the state of the master at {url}: {_reason(e)}") from None
    if as_json:
        click.echo(json.dumps(state, indent=2, sort_keys=True, default=str))
    else:
        click.echo(render_state(state))


def _reason(e: BaseException) -> str:
    text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return " ".join(str(text).split())  # one line, whatever the message held


# ---------------------------------------------------------------- rendering


def format_mib(mib: float | int | None) -> str:
    """Spark's way of showing worker memory: MiB below 1 GiB, GiB (one decimal) above."""
    if mib is None:
        return "-"
    if mib >= 1024 * 1024:
        return f"{mib / (1024 * 1024):.1f} TiB"
    if mib >= 1024:
        return f"{mib / 1024:.1f} GiB"
    return f"{int(mib)} MiB"


def format_duration(ms: float | int | None) -> str:
    if ms is None:
        return "-"
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 1 else f"{ms:.0f} ms"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _app_rows(apps: list[dict[str, Any]], now_ms: int) -> list[list[Any]]:
    rows = []
    for a in apps:
        duration = a.get("duration")
        if duration is None and a.get("starttime"):
            duration = now_ms - int(a["starttime"])
        memory = a.get("memoryperexecutor", a.get("memoryperslave"))
        rows.append([a.get("id", "?"), a.get("name", ""), a.get("cores", ""), format_mib(memory),
                     a.get("state", ""), format_duration(duration)])
    return rows


def _driver_rows(drivers: list[dict[str, Any]], now_ms: int) -> list[list[Any]]:
    rows = []
    for d in drivers:
        duration = d.get("duration")
        if duration is None and d.get("starttime"):
            duration = now_ms - int(d["starttime"])
        exit_code = d.get("exitcode")
        rows.append([d.get("id", "?"), d.get("mainclass", ""), d.get("worker", ""), d.get("cores", ""),
                     format_mib(d.get("memory")), d.get("state", ""), "-" if exit_code is None else exit_code,
                     format_duration(duration)])
    return rows


def render_state(state: dict[str, Any]) -> str:
    """The master's state as text: a summary line, then tables of workers and applications,
    and of cluster-mode drivers when there are any."""
    from tabulate import tabulate

    now_ms = int(time.time() * 1000)
    workers = state.get("workers") or []
    lines = [
        f"Master: {state.get('url', '?')} ({state.get('status', '?')})",
        f"Workers: {state.get('aliveworkers', len(workers))} alive; "
        f"cores: {state.get('coresused', 0)} used of {state.get('cores', 0)}; "
        f"memory: {format_mib(state.get('memoryused', 0))} used of {format_mib(state.get('memory', 0))}",
        "",
    ]
    worker_rows = [
        [w.get("id", "?"), f"{w.get('host', '?')}:{w.get('port', '?')}", w.get("state", ""),
         f"{w.get('coresused', 0)}/{w.get('cores', 0)}",
         f"{format_mib(w.get('memoryused', 0))}/{format_mib(w.get('memory', 0))}"]
        for w in workers
    ]
    app_header = ["application", "name", "cores", "memory per executor", "state", "duration"]
    sections = [
        ("Workers", ["worker", "address", "state", "cores used/total", "memory used/total"], worker_rows),
        ("Running applications", app_header, _app_rows(state.get("activeapps") or [], now_ms)),
        ("Completed applications", app_header, _app_rows(state.get("completedapps") or [], now_ms)),
    ]
    active_drivers = state.get("activedrivers") or []
    completed_drivers = state.get("completeddrivers") or []
    if active_drivers or completed_drivers:
        driver_header = ["driver", "app file", "worker", "cores", "memory", "state", "exit code", "duration"]
        sections += [("Running drivers", driver_header, _driver_rows(active_drivers, now_ms)),
                     ("Completed drivers", driver_header, _driver_rows(completed_drivers, now_ms))]
    for title, header, rows in sections:
        lines.append(f"{title}:")
        lines.append(tabulate(rows, headers=header, tablefmt="simple") if rows else "  (none)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


__all__ = ["master", "worker", "status", "fetch_master_state", "render_state", "format_mib", "format_duration"]
