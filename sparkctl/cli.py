"""The ``sparkctl`` command: thin click commands over library calls.

A mistake on the command line is one line on stderr and exit 2; a failing application
exits 1 with its traceback (the task's own traceback included).

``submit`` runs the driver here (``--deploy-mode client``, the default) or hands it to a
standalone master, which runs it on a worker (``--deploy-mode cluster``; see
:mod:`sparkctl.deploy.driver_client`); ``submit --status/--kill DRIVER_ID`` and
``logs DRIVER_ID`` look after such a driver.
"""
from __future__ import annotations

import os
import runpy
import signal
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from sparkctl.conf import (SUBMIT_CONF_VAR, ConfValues, check_setting, encode_submitted, load_defaults_file, parse_size,
                           warn_unknown)
from sparkctl.deploy import messages as dm
from sparkctl.errors import ConfigError, FileSystemError
from sparkctl.fs.filesystem import is_local
from sparkctl.util import shutdown

CONTEXT = {"help_option_names": ["-h", "--help"]}
T = TypeVar("T")
#: How long ``submit --kill`` waits to see the driver end.
KILL_WAIT = 30.0


class OneLineErrors(click.Group):
    """Every command-line mistake is one line on stderr and exit 2 (no usage dump)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ConfigError as e:  # a bad setting: its message names the key, value and source
            click.echo(f"sparkctl: {e}", err=True)
            sys.exit(2)
        except click.UsageError as e:
            where = f" (see 'sparkctl {e.ctx.command_path.partition(' ')[2]} --help')".replace(" ' ", " '") \
                if e.ctx is not None and " " in e.ctx.command_path else " (see 'sparkctl --help')"
            click.echo(f"sparkctl: {e.format_message()}{where}", err=True)
            sys.exit(2)
        except click.ClickException as e:
            click.echo(f"sparkctl: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(130)


def fail_usage(message: str) -> NoReturn:
    raise click.UsageError(message)


def parse_conf_pairs(pairs: tuple[str, ...]) -> ConfValues:
    out = ConfValues()
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail_usage(f"--conf expects KEY=VALUE, got {item!r}")
        out.add(key.strip(), value, "--conf")
    return out


def positive_int(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        fail_usage(f"{name} must be at least 1, got {value}")


def size_option(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_size(value, "m", name)
    except ConfigError as e:
        fail_usage(str(e))
    return value


@click.group(cls=OneLineErrors, context_settings=CONTEXT)
@click.version_option(package_name=None, version=__import__("sparkctl").__version__, prog_name="sparkctl")
def main() -> None:
    """sparkctl: Apache Spark's architecture in Python."""


@main.command(context_settings={**CONTEXT, "ignore_unknown_options": False, "allow_interspersed_args": False})
@click.option("--master", help="local, local[N], local[*], local-cluster[W,C,M] or spark://host:port")
@click.option("--deploy-mode", type=click.Choice(["client", "cluster"]),
              help="client: run the driver here (default); cluster: on a worker of the spark:// master")
@click.option("--name", help="application name")
@click.option("--conf", "confs", multiple=True, metavar="KEY=VALUE", help="a setting; repeatable")
@click.option("--py-files", help="comma-separated .py/.zip/.egg files for the executors' path")
@click.option("--files", help="comma-separated files shipped to every executor (SparkFiles.get(name) in tasks)")
@click.option("--archives", help="comma-separated .zip/.tar.gz/.tgz/.tar archives unpacked on every executor "
              "(path#name names the directory)")
@click.option("--total-executor-cores", type=int, help="cores to take from a standalone cluster (spark.cores.max)")
@click.option("--executor-cores", type=int, help="task slots per executor")
@click.option("--executor-memory", help="memory per executor, e.g. 1g")
@click.option("--driver-memory", help="memory of the driver (cluster mode: reserved on its worker; default 1g)")
@click.option("--driver-cores", type=int, help="cores of the driver (cluster mode: reserved on its worker; default 1)")
@click.option("--supervise", is_flag=True, help="cluster mode: start the driver again if it fails or its worker dies")
@click.option("--wait", "wait_for_driver", is_flag=True,
              help="cluster mode: follow the driver to its end and exit with its exit status")
@click.option("--status", "status_of", metavar="DRIVER_ID", help="print a cluster-mode driver's state, worker and exit code")
@click.option("--kill", "kill_id", metavar="DRIVER_ID", help="kill a cluster-mode driver")
@click.option("--properties-file", type=click.Path(), help="settings file instead of conf/sparkctl-defaults.conf")
@click.argument("app", type=click.Path(), required=False)
@click.argument("app_args", nargs=-1, type=click.UNPROCESSED)
def submit(master: str | None, deploy_mode: str | None, name: str | None, confs: tuple[str, ...],
           py_files: str | None, files: str | None, archives: str | None, total_executor_cores: int | None,
           executor_cores: int | None,
           executor_memory: str | None, driver_memory: str | None, driver_cores: int | None, supervise: bool,
           wait_for_driver: bool, status_of: str | None, kill_id: str | None, properties_file: str | None,
           app: str | None, app_args: tuple[str, ...]) -> None:
    """Run APP (a Python file) as the driver of a sparkctl application.

    With --deploy-mode cluster the master runs the driver on one of its workers; the
    command prints the driver's id and returns (or, with --wait, follows it). --status and
    --kill take such an id instead of APP.
    """
    from sparkctl.context import validate_master
    from sparkctl.conf import read_conf_file

    # Each value keeps where it came from, so a bad one is reported with its file and line,
    # --conf, SPARKCTL_MASTER or flag (and the driver's SparkConf can do the same).
    settings: dict[str, str] = {}
    file_values = read_conf_file(properties_file) if properties_file else load_defaults_file()
    warn_unknown(file_values)
    settings.update(file_values)
    sources = dict(file_values.sources)
    conf_pairs = parse_conf_pairs(confs)
    warn_unknown(conf_pairs)
    settings.update(conf_pairs)
    sources.update(dict.fromkeys(conf_pairs, "--conf"))
    env_master = os.environ.get("SPARKCTL_MASTER")
    if env_master and "spark.master" not in conf_pairs:
        settings["spark.master"] = env_master
        sources["spark.master"] = "SPARKCTL_MASTER"
    positive_int("--total-executor-cores", total_executor_cores)
    positive_int("--executor-cores", executor_cores)
    positive_int("--driver-cores", driver_cores)
    flags = {
        "spark.master": master,
        "spark.submit.deployMode": deploy_mode,
        "spark.driver.cores": str(driver_cores) if driver_cores else None,
        "spark.app.name": name,
        "spark.submit.pyFiles": py_files,
        "spark.files": _absolute_paths("--files", files),
        "spark.archives": _absolute_paths("--archives", archives),
        "spark.cores.max": str(total_executor_cores) if total_executor_cores else None,
        "spark.executor.cores": str(executor_cores) if executor_cores else None,
        "spark.executor.memory": size_option("--executor-memory", executor_memory),
        "spark.driver.memory": size_option("--driver-memory", driver_memory),
    }
    flag_names = {"spark.master": "--master", "spark.submit.deployMode": "--deploy-mode",
                  "spark.driver.cores": "--driver-cores", "spark.app.name": "--name", "spark.submit.pyFiles": "--py-files",
                  "spark.files": "--files", "spark.archives": "--archives",
                  "spark.cores.max": "--total-executor-cores", "spark.executor.cores": "--executor-cores",
                  "spark.executor.memory": "--executor-memory", "spark.driver.memory": "--driver-memory"}
    for key, value in flags.items():
        if value is not None:
            settings[key] = value
            sources[key] = flag_names[key]
    settings.setdefault("spark.master", "local[*]")
    validate_master(settings["spark.master"], sources.get("spark.master"))
    for key, value in settings.items():  # every setting now, before the app runs
        check_setting(key, value, sources.get(key, "sparkctl submit"))
    mode = (settings.get("spark.submit.deployMode") or "client").lower()
    if mode not in ("client", "cluster"):
        fail_usage(f"spark.submit.deployMode must be client or cluster, not {mode!r}")
    if status_of or kill_id:
        _control_driver(settings["spark.master"], status_of, kill_id, app)
        return
    if app is None:
        fail_usage("missing the application file (APP), or --status/--kill DRIVER_ID")
    if mode == "client" and (supervise or wait_for_driver):
        fail_usage(f"{'--supervise' if supervise else '--wait'} applies to --deploy-mode cluster only")
    if mode == "cluster" and not settings["spark.master"].startswith("spark://"):
        fail_usage(f"--deploy-mode cluster needs a spark://host:port master, not {settings['spark.master']!r} "
                   "(a local master runs the driver here)")
    for f in filter(None, (settings.get("spark.submit.pyFiles") or "").split(",")):
        if is_local(f) and not os.path.isfile(f):
            fail_usage(f"--py-files: {f} does not exist")
    app_path = _check_app(app)
    settings.setdefault("spark.app.name", os.path.splitext(os.path.basename(app_path))[0])
    if mode == "cluster":
        _submit_cluster(app_path, list(app_args), settings, supervise, wait_for_driver)
        return
    if settings["spark.master"].startswith("spark://"):
        _check_master_reachable(settings["spark.master"])
    run_driver(app_path, list(app_args), settings, sources)


def _absolute_paths(flag: str, value: str | None) -> str | None:
    """--files / --archives: each path must exist; made absolute (an archive keeps its #name)."""
    if value is None:
        return None
    paths = []
    for p in filter(None, (s.strip() for s in value.split(","))):
        path, hash_, alias = p.partition("#")
        if not is_local(path):  # a URL: the driver downloads it as the context starts
            paths.append(p)
            continue
        if not os.path.exists(path):
            fail_usage(f"{flag}: {path} does not exist")
        paths.append(os.path.abspath(path) + hash_ + alias)
    return ",".join(paths)


def _check_master_reachable(master: str) -> None:
    """An unreachable master or a refused secret is a one-line mistake, found before the
    app runs (a failure later, inside the app's SparkContext, would be a traceback)."""
    from sparkctl.conf import conf_dir
    from sparkctl.deploy.client import parse_master_url, request_master_state
    from sparkctl.rpc import load_secret
    host, port = parse_master_url(master)
    secret = load_secret(conf_dir())
    if secret is None:
        fail_usage(f"no cluster secret to talk to {master}: set SPARKCTL_SECRET or put the master's "
                   f"secret file in {conf_dir()}")
    try:
        request_master_state(host, port, secret, timeout=10)
    except Exception as e:
        fail_usage(f"cannot reach the master at {master}: {e}")


# ---------------------------------------------------------------- cluster deploy mode
def _master_address(master: str, what: str) -> tuple[str, int]:
    if not master.startswith("spark://"):
        fail_usage(f"{what} needs a spark://host:port master (--master, SPARKCTL_MASTER or spark.master), "
                   f"not {master!r}")
    from sparkctl.deploy.client import parse_master_url
    try:
        return parse_master_url(master)
    except ConfigError as e:
        fail_usage(str(e))


def _driver_resources(settings: dict[str, str]) -> tuple[int, int]:
    """The driver's (cores, MiB) to reserve on its worker: spark.driver.cores / .memory, default 1 and 1g
    (submit has checked both: a whole number of at least 1, a size of at least 1m)."""
    cores = check_setting("spark.driver.cores", settings.get("spark.driver.cores") or "1", "sparkctl submit")
    memory = check_setting("spark.driver.memory", settings.get("spark.driver.memory") or "1g", "sparkctl submit")
    return cores, memory >> 20


def _cluster_call(master: str, what: str, call: Callable[[], T]) -> T:
    """Run a request to the cluster; its failure is one line (exit 1), never a traceback."""
    from sparkctl.deploy.commands import _reason
    from sparkctl.errors import AuthenticationError, SparkctlError

    try:
        return call()
    except AuthenticationError as e:
        raise click.ClickException(f"{what}: {master} did not accept our secret ({_reason(e)})") from None
    except (SparkctlError, OSError) as e:
        raise click.ClickException(f"{what}: {_reason(e)}") from None


def _submit_cluster(app_path: str, args: list[str], settings: dict[str, str], supervise: bool, wait: bool) -> None:
    from sparkctl.deploy import driver_client as dc
    from sparkctl.deploy.commands import _secret

    master = settings["spark.master"]
    address = _master_address(master, "--deploy-mode cluster")
    cores, memory = _driver_resources(settings)
    def listed(key: str) -> list[str]:
        return [f for f in (settings.get(key) or "").split(",") if f]

    try:
        desc = dc.build_description(app_path, args, listed("spark.submit.pyFiles"), settings, cores, memory,
                                    supervise, listed("spark.files"), listed("spark.archives"))
    except dc.DriverRequestError as e:
        fail_usage(str(e))
    except OSError as e:
        fail_usage(f"cannot read {e.filename}: {e.strerror}")
    secret = _secret()
    driver_id = _cluster_call(master, f"cannot submit to {master}", lambda: dc.submit_driver(address, secret, desc))
    click.echo(driver_id)
    if not wait:
        return
    last: list[str] = []

    def show(status: dm.DriverStatusResponse) -> None:
        line = f"{driver_id} {dc.describe_status(status)}"
        if not last or last[-1] != line:  # the master may repeat an unchanged status
            click.echo(line, err=True)
            last.append(line)

    final = _cluster_call(master, f"cannot follow driver {driver_id}",
                          lambda: dc.follow_driver(address, secret, driver_id, show))
    if final.log_tail and final.state in (dm.FAILED, dm.ERROR):
        click.echo(f"last lines of its stderr (all of it: sparkctl logs {driver_id} --stderr):\n"
                   + final.log_tail.rstrip(), err=True)
    sys.exit(dc.exit_status(final))


def _control_driver(master: str, status_of: str | None, kill_id: str | None, app: str | None) -> None:
    """``submit --status DRIVER_ID`` / ``submit --kill DRIVER_ID``."""
    from sparkctl.deploy import driver_client as dc
    from sparkctl.deploy.commands import _secret

    if status_of and kill_id:
        fail_usage("--status and --kill cannot be used together")
    option = "--status" if status_of else "--kill"
    if app is not None:
        fail_usage(f"{option} takes a driver id, not an application file ({app})")
    address = _master_address(master, option)
    secret = _secret()
    if status_of:
        status = _cluster_call(master, f"cannot get the status of {status_of}",
                               lambda: dc.driver_status(address, secret, status_of))
        where = f"{status.worker_id} ({status.worker_host_port})" if status.worker_host_port else \
            (status.worker_id or "-")
        click.echo(f"driver: {status.driver_id}")
        click.echo(f"state: {status.state}")
        click.echo(f"worker: {where}")
        click.echo(f"exit code: {'-' if status.exit_code is None else status.exit_code}")
        click.echo(f"launches: {status.launches}")
        if status.message:
            click.echo(f"message: {status.message}")
        if status.log_tail and status.state in (dm.FAILED, dm.ERROR):
            click.echo("last lines of its stderr:\n" + status.log_tail.rstrip())
        return
    assert kill_id is not None
    _cluster_call(master, f"cannot kill {kill_id}", lambda: dc.kill_driver(address, secret, kill_id))
    # The worker stops the process group (SIGTERM, then SIGKILL): wait to see it end.
    final = _cluster_call(master, f"cannot follow driver {kill_id}",
                          lambda: dc.follow_driver(address, secret, kill_id, timeout=KILL_WAIT))
    if final.state not in dm.FINAL_DRIVER_STATES:
        raise click.ClickException(f"asked to kill {kill_id}, but it is still {final.state} after {KILL_WAIT:g} s")
    click.echo(f"{kill_id} {dc.describe_status(final)}")


@main.command("logs", context_settings=CONTEXT)
@click.argument("driver_id")
@click.option("--stderr", "stderr", is_flag=True, help="print its stderr instead of its stdout")
@click.option("--master", "master_url", help="spark://host:port  [default: SPARKCTL_MASTER, then spark.master]")
def logs(driver_id: str, stderr: bool, master_url: str | None) -> None:
    """Print the stdout (or stderr) of a cluster-mode driver, from the worker that ran it."""
    from sparkctl.deploy import driver_client as dc
    from sparkctl.deploy.commands import _resolve_master, _secret

    url, _source = _resolve_master(master_url)
    address = _master_address(url, "logs")
    secret = _secret()
    out = sys.stdout.buffer
    _cluster_call(url, f"cannot get the log of {driver_id}",
                  lambda: dc.fetch_driver_log(address, secret, driver_id, "stderr" if stderr else "stdout", out))
    out.flush()


def _check_app(app: str) -> str:
    if not os.path.exists(app):
        fail_usage(f"application file {app} does not exist")
    if os.path.isdir(app):
        fail_usage(f"application file {app} is a directory, not a Python file")
    if not app.endswith(".py"):
        fail_usage(f"application file {app} is not a Python file (expected a .py file)")
    try:
        with open(app, "rb") as f:
            source = f.read()
        compile(source, app, "exec")
    except SyntaxError as e:
        fail_usage(f"application file {app} is not valid Python: {e.msg} (line {e.lineno})")
    except (OSError, ValueError) as e:
        fail_usage(f"application file {app} cannot be read: {e}")
    return os.path.abspath(app)


def run_driver(app_path: str, args: list[str], settings: dict[str, str], sources: dict[str, str] | None = None) -> None:
    """Run the app in this process, as ``__main__``; its SparkContext reads ``settings``
    (and ``sources``, where each came from, for its error messages).

    A bad setting the app makes itself (``SparkConf.set``) is one line and exit 2, as
    submit's own; any other uncaught exception is the app's traceback and exit 1."""
    import logging

    from sparkctl.context import configure_logging
    configure_logging((settings.get("spark.log.level") or "WARN").upper())
    log = logging.getLogger("sparkctl.submit")
    log.info("Submitting %s (master %s); starting its driver in process %d", app_path, settings.get("spark.master"),
             os.getpid())
    os.environ[SUBMIT_CONF_VAR] = encode_submitted(settings, sources or {})
    sys.argv = [app_path, *args]
    sys.path.insert(0, os.path.dirname(app_path))
    for f in filter(is_local, (settings.get("spark.submit.pyFiles") or "").split(",")):
        sys.path.insert(1, os.path.abspath(f) if f.endswith((".zip", ".egg")) else os.path.dirname(os.path.abspath(f)))
    # SIGTERM (timeout, kill) and SIGHUP (a closed terminal) clean up as Ctrl-C does; and
    # Ctrl-C works even where the shell started us with SIGINT ignored (a background job).
    shutdown.install_driver_handlers()
    if os.environ.get("SPARKCTL_WORKER_PID"):  # cluster deploy mode: end with the worker that runs us
        from sparkctl.deploy.lifecycle import watch_worker
        watch_worker()
    code = 0
    try:
        try:
            runpy.run_path(app_path, run_name="__main__")
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if e.code is not None and not isinstance(e.code, int):
                print(e.code, file=sys.stderr)
        except KeyboardInterrupt as e:
            code = shutdown.exit_code_for(e)
            print("Interrupted" if code == 130 else f"Interrupted by {signal.Signals(code - 128).name}",
                  file=sys.stderr)
        except ConfigError as e:
            print(f"sparkctl: {e}", file=sys.stderr)
            code = 2
        except FileSystemError as e:  # an unknown scheme, a missing backend, refused credentials
            print(f"sparkctl: {e}", file=sys.stderr)
            code = 1
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
    except KeyboardInterrupt as e:  # a second signal while the first one was being reported
        code = shutdown.exit_code_for(e)
    finally:
        with shutdown.deferred(redeliver=False):  # a second signal must not cut the cleanup short
            from sparkctl.context import SparkContext
            active = SparkContext._active
            if active is not None:  # the app forgot sc.stop() or was interrupted: release the executors now
                active.stop()
    sys.exit(code)


from sparkctl.deploy.commands import master, status, worker  # noqa: E402  (commands register on the group)

main.add_command(master)
main.add_command(worker)
main.add_command(status)

from sparkctl.deploy.cluster_commands import cluster, workers  # noqa: E402

main.add_command(cluster)
main.add_command(workers)

from sparkctl.deploy.history_commands import history  # noqa: E402

main.add_command(history)


def entry() -> None:
    rv = main.main(prog_name="sparkctl")
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    entry()
