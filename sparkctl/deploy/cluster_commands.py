"""``sparkctl cluster start|stop`` and ``sparkctl workers start|stop``: a whole standalone
cluster from this machine, Spark's ``start-all.sh`` / ``start-workers.sh``.

``cluster start`` starts the master here (unless it already runs), then a worker on every
host of ``$SPARKCTL_CONF_DIR/workers`` over SSH (:mod:`sparkctl.deploy.ssh`), all hosts at
once; ``workers start`` does only the workers. Each prints one row per host (host,
result, worker id, message) and exits 1 if any host failed, after trying them all.
``stop`` stops the workers the same way, then (``cluster stop``) the master; a host that
is down, or has no worker running, is reported and is not an error.

Thin commands: the parsing lives in :mod:`sparkctl.deploy.hosts`, the SSH work in
:mod:`sparkctl.deploy.ssh`, the daemons in :mod:`sparkctl.deploy.daemon`.
``sparkctl.cli`` registers the ``cluster`` and ``workers`` groups.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import click

from sparkctl.conf import conf_dir, load_defaults_file
from sparkctl.deploy import daemon
from sparkctl.deploy.commands import MASTER_WEBUI_PORT, START_TIMEOUT, _secret, fetch_master_state
from sparkctl.deploy.hosts import WorkerHost, load_workers
from sparkctl.deploy.ssh import HostResult, SSHOptions, default_known_hosts, start_workers, stop_workers
from sparkctl.errors import AuthenticationError, ConfigError, RpcConnectError, RpcTimeoutError, SparkctlError

__all__ = ["cluster", "workers", "render_results"]

CONTEXT = {"help_option_names": ["-h", "--help"]}
_PORT = click.IntRange(0, 65535)


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message)


# ---------------------------------------------------------------- shared options


def _ssh_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option("--accept-new-host-keys", is_flag=True,
                     help="add the key of a host not yet in known_hosts to it (a changed key is always refused)")(f)
    f = click.option("--known-hosts", type=click.Path(dir_okay=False),
                     help="known_hosts file to check host keys against  [default: ~/.ssh/known_hosts]")(f)
    f = click.option("--identity", "-i", type=click.Path(exists=True, dir_okay=False),
                     help="private key to log in with (only this one)  [default: SSH agent, ~/.ssh/id_*]")(f)
    return f


_master_option = click.option("--master", "master_url",
                              help="spark://host:port  [default: SPARKCTL_MASTER, then spark.master in the conf file]")


def _options(identity: str | None, known_hosts: str | None, accept_new: bool) -> SSHOptions:
    return SSHOptions(identity=identity, known_hosts=known_hosts or default_known_hosts(),
                      accept_new_host_keys=accept_new)


def _settings() -> dict[str, str]:
    try:
        return load_defaults_file()
    except ConfigError as e:
        _usage(str(e))


def _master(option: str | None) -> tuple[str, str, int]:
    """The master URL (flag > SPARKCTL_MASTER > config file) and its host and port."""
    url, source = option, "--master"
    if not url and os.environ.get("SPARKCTL_MASTER"):
        url, source = os.environ["SPARKCTL_MASTER"], "SPARKCTL_MASTER"
    if not url:
        url = _settings().get("spark.master")
        source = f"spark.master in {os.path.join(conf_dir(), 'sparkctl-defaults.conf')}"
    if not url:
        _usage("no master: pass --master spark://host:port or set spark.master in the config file")
    try:
        host, port = daemon.parse_master_url(url)
    except ConfigError:
        _usage(f"{source}: {url!r} is not a standalone master URL; expected spark://host:port")
    return url, host, port


def _hosts() -> list[WorkerHost]:
    try:
        hosts = load_workers()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    if not hosts:
        raise click.ClickException(f"{os.path.join(conf_dir(), 'workers')}: no hosts listed")
    return hosts




def _check_master(url: str, secret: bytes) -> None:
    """Fail before any SSH if the workers would have no master to register with."""
    try:
        fetch_master_state(url, secret, timeout=5.0)
    except AuthenticationError:
        raise click.ClickException(f"the master at {url} did not accept our secret") from None
    except (RpcConnectError, RpcTimeoutError, SparkctlError, OSError) as e:
        raise click.ClickException(f"cannot reach the master at {url}: {e}; start it with "
                                   "'sparkctl cluster start' or 'sparkctl master start'") from None


# ---------------------------------------------------------------- the master


def _start_master(url: str, host: str, port: int, webui_port: int | None) -> None:
    try:
        pid = daemon.running_pid("master", host, port)
    except daemon.DaemonError as e:  # an unsafe PID dir: one line saying what is wrong
        raise click.ClickException(str(e)) from None
    if pid is not None:
        click.echo(f"master already running at {url} (pid {pid})")
        return
    from sparkctl.rpc import create_secret_file, load_secret

    try:
        if not load_secret(conf_dir()):
            create_secret_file(conf_dir())
            click.echo(f"created the cluster secret {os.path.join(conf_dir(), 'secret')} (mode 600)")
    except (ConfigError, OSError) as e:
        raise click.ClickException(f"cannot create the cluster secret in {conf_dir()}: {e}") from None
    if webui_port is None:
        raw = _settings().get("spark.master.ui.port", str(MASTER_WEBUI_PORT))
        if not raw.isdigit() or int(raw) > 65535:
            _usage(f"spark.master.ui.port: {raw!r} is not a port number")
        webui_port = int(raw)
    args = ["--host", host, "--port", str(port), "--webui-port", str(webui_port)]
    try:
        started = daemon.start_daemon("master", args, host, port, timeout=START_TIMEOUT)
    except daemon.DaemonError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"master started at {started.ready[0] if started.ready else url} (pid {started.pid})")
    if len(started.ready) > 1:
        click.echo(f"web UI at {started.ready[1]}")


def _stop_master(host: str, port: int) -> bool:
    ok = True
    try:
        results = daemon.stop_daemons("master", port)
    except daemon.DaemonError as e:
        raise click.ClickException(str(e)) from None
    if not results:
        click.echo(f"no master running on port {port}")
    for r in results:
        where = f"master on {r.host}:{r.port} (pid {r.pid})"
        if r.outcome in ("stopped", "killed"):
            click.echo(f"{r.outcome} {where}")
        elif r.outcome == "stale":
            click.echo(f"no master on {r.host}:{r.port}: removed its stale pid file")
        else:
            ok = False
            click.echo(f"could not stop {where}", err=True)
    return ok


# ---------------------------------------------------------------- reporting


def render_results(results: Sequence[HostResult]) -> str:
    """One row per host, then any host's longer output (e.g. its worker's last log lines)."""
    from tabulate import tabulate

    rows = [[r.host.label, r.result, r.worker_id or "-", r.message] for r in results]
    text: str = tabulate(rows, headers=["host", "result", "worker id", "message"], tablefmt="simple")
    for r in results:
        if r.details:
            indented = "\n".join("  " + line for line in r.details.splitlines())
            where = f" ({r.host.where})" if r.host.where else ""
            text += f"\n\n{r.host.label}{where}:\n{indented}"
    return text


def _report(results: Sequence[HostResult], verb: str) -> str | None:
    """Print the table; return the one-line failure summary, or None if every host is fine."""
    click.echo(render_results(results))
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    return (f"could not {verb} the worker on {len(failed)} of {len(results)} hosts: "
            + ", ".join(f"{r.host.label} ({r.reason})" for r in failed))


def _start_workers(url: str, opts: SSHOptions) -> None:
    hosts = _hosts()
    secret = _secret()
    _check_master(url, secret)
    results = start_workers(hosts, url, secret, opts, lambda: fetch_master_state(url, secret, timeout=5.0))
    failure = _report(results, "start")
    if failure:
        raise click.ClickException(failure)


# ---------------------------------------------------------------- commands


@click.group("cluster", context_settings=CONTEXT)
def cluster() -> None:
    """Start or stop the master here and a worker on every host of conf/workers (over SSH)."""


@cluster.command("start", context_settings=CONTEXT)
@_master_option
@_ssh_options
@click.option("--webui-port", type=_PORT, help="the master's web UI port  [default: spark.master.ui.port, 8080]")
def cluster_start(master_url: str | None, identity: str | None, known_hosts: str | None,
                  accept_new_host_keys: bool, webui_port: int | None) -> None:
    """Start the master (unless it runs) and a worker on every host of conf/workers."""
    url, host, port = _master(master_url)
    _hosts()  # a broken conf/workers must stop us before the master starts
    _start_master(url, host, port, webui_port)
    _start_workers(url, _options(identity, known_hosts, accept_new_host_keys))


@cluster.command("stop", context_settings=CONTEXT)
@_master_option
@_ssh_options
def cluster_stop(master_url: str | None, identity: str | None, known_hosts: str | None,
                 accept_new_host_keys: bool) -> None:
    """Stop the worker on every host of conf/workers, then the master."""
    _, host, port = _master(master_url)
    failure = _report(stop_workers(_hosts(), _options(identity, known_hosts, accept_new_host_keys)), "stop")
    # The master stops even if a worker did not: a half-stopped cluster is still stopped.
    if not _stop_master(host, port):
        failure = "; ".join(filter(None, [failure, f"could not stop the master on port {port}"]))
    if failure:
        raise click.ClickException(failure)


@click.group("workers", context_settings=CONTEXT)
def workers() -> None:
    """Start or stop a worker on every host of conf/workers (over SSH)."""


@workers.command("start", context_settings=CONTEXT)
@_master_option
@_ssh_options
def workers_start(master_url: str | None, identity: str | None, known_hosts: str | None,
                  accept_new_host_keys: bool) -> None:
    """Start a worker on every host of conf/workers, pointed at the running master."""
    url, _, _ = _master(master_url)
    _start_workers(url, _options(identity, known_hosts, accept_new_host_keys))


@workers.command("stop", context_settings=CONTEXT)
@_ssh_options
def workers_stop(identity: str | None, known_hosts: str | None, accept_new_host_keys: bool) -> None:
    """Stop the worker on every host of conf/workers (hosts that are down are reported)."""
    failure = _report(stop_workers(_hosts(), _options(identity, known_hosts, accept_new_host_keys)), "stop")
    if failure:
        raise click.ClickException(failure)
