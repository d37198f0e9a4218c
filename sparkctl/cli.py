"""The ``sparkctl`` command: thin click commands over library calls.

A mistake on the command line is one line on stderr and exit 2; a failing application
exits 1 with its traceback (the task's own traceback included).
"""
from __future__ import annotations

import os
import runpy
import sys
from typing import Any

import click

from sparkctl.conf import load_defaults_file, parse_size
from sparkctl.errors import ConfigError

CONTEXT = {"help_option_names": ["-h", "--help"]}


class OneLineErrors(click.Group):
    """Every command-line mistake is one line on stderr and exit 2 (no usage dump)."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        try:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
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


def fail_usage(message: str) -> None:
    raise click.UsageError(message)


def parse_conf_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail_usage(f"--conf expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
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
@click.option("--name", help="application name")
@click.option("--conf", "confs", multiple=True, metavar="KEY=VALUE", help="a setting; repeatable")
@click.option("--py-files", help="comma-separated .py/.zip/.egg files for the executors' path")
@click.option("--total-executor-cores", type=int, help="cores to take from a standalone cluster (spark.cores.max)")
@click.option("--executor-cores", type=int, help="task slots per executor")
@click.option("--executor-memory", help="memory per executor, e.g. 1g")
@click.option("--driver-memory", help="memory of the driver (recorded; the driver runs here)")
@click.option("--properties-file", type=click.Path(), help="settings file instead of conf/sparkctl-defaults.conf")
@click.argument("app", type=click.Path())
@click.argument("app_args", nargs=-1, type=click.UNPROCESSED)
def submit(master: str | None, name: str | None, confs: tuple[str, ...], py_files: str | None,
           total_executor_cores: int | None, executor_cores: int | None, executor_memory: str | None,
           driver_memory: str | None, properties_file: str | None, app: str, app_args: tuple[str, ...]) -> None:
    """Run APP (a Python file) as the driver of a sparkctl application."""
    from sparkctl.context import validate_master
    from sparkctl.conf import read_conf_file

    settings: dict[str, str] = {}
    try:
        settings.update(read_conf_file(properties_file) if properties_file else load_defaults_file())
    except ConfigError as e:
        fail_usage(str(e))
    settings.update(parse_conf_pairs(confs))
    env_master = os.environ.get("SPARKCTL_MASTER")
    if env_master and "spark.master" not in parse_conf_pairs(confs):
        settings["spark.master"] = env_master
    positive_int("--total-executor-cores", total_executor_cores)
    positive_int("--executor-cores", executor_cores)
    flags = {
        "spark.master": master,
        "spark.app.name": name,
        "spark.submit.pyFiles": py_files,
        "spark.cores.max": str(total_executor_cores) if total_executor_cores else None,
        "spark.executor.cores": str(executor_cores) if executor_cores else None,
        "spark.executor.memory": size_option("--executor-memory", executor_memory),
        "spark.driver.memory": size_option("--driver-memory", driver_memory),
    }
    settings.update({k: v for k, v in flags.items() if v is not None})
    settings.setdefault("spark.master", "local[*]")
    try:
        validate_master(settings["spark.master"])
    except ConfigError as e:
        fail_usage(str(e))
    for f in filter(None, (settings.get("spark.submit.pyFiles") or "").split(",")):
        if not os.path.isfile(f):
            fail_usage(f"--py-files: {f} does not exist")
    app_path = _check_app(app)
    settings.setdefault("spark.app.name", os.path.splitext(os.path.basename(app_path))[0])
    run_driver(app_path, list(app_args), settings)


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


def run_driver(app_path: str, args: list[str], settings: dict[str, str]) -> None:
    """Run the app in this process, as ``__main__``; its SparkContext reads ``settings``."""
    import logging

    from sparkctl.context import configure_logging
    configure_logging((settings.get("spark.log.level") or "WARN").upper())
    log = logging.getLogger("sparkctl.submit")
    log.info("Submitting %s (master %s); starting its driver in process %d", app_path, settings.get("spark.master"),
             os.getpid())
    os.environ["SPARKCTL_SUBMIT_CONF"] = "\x1e".join(f"{k}\x1f{v}" for k, v in settings.items())
    sys.argv = [app_path, *args]
    sys.path.insert(0, os.path.dirname(app_path))
    for f in filter(None, (settings.get("spark.submit.pyFiles") or "").split(",")):
        sys.path.insert(1, os.path.abspath(f) if f.endswith((".zip", ".egg")) else os.path.dirname(os.path.abspath(f)))
    code = 0
    try:
        runpy.run_path(app_path, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        code = 130
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        from sparkctl.context import SparkContext
        active = SparkContext._active
        if active is not None:  # the app forgot sc.stop(): release the executors now
            active.stop()
    sys.exit(code)


from sparkctl.deploy.commands import master, status, worker  # noqa: E402  (commands register on the group)

main.add_command(master)
main.add_command(worker)
main.add_command(status)


def entry() -> None:
    rv = main.main(prog_name="sparkctl")
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    entry()
