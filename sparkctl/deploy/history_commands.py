"""``sparkctl history start|stop``: the history server daemon (see sparkctl/deploy/history.py)."""
from __future__ import annotations

import os

import click

from sparkctl.conf import check_defaults_file
from sparkctl.deploy.commands import (CONTEXT, _PORT, _check_ports, _foreground, _refuse_double_start,
                                      _report_stopped, _start, _stop, _usage)
from sparkctl.deploy.history import DEFAULT_PORT, settings_from_defaults


@click.group("history", context_settings=CONTEXT)
def history() -> None:
    """Start or stop the history server (the UI of applications, from their event logs)."""


@history.command("start", context_settings=CONTEXT)
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=_PORT, default=DEFAULT_PORT, show_default=True, help="port of the web UI")
@click.option("--log-directory", type=click.Path(file_okay=False),
              help="event logs to serve [default: spark.history.fs.logDirectory, else /tmp/spark-events]")
@click.option("--update-interval", type=click.FloatRange(min=0.1), default=None,
              help="seconds between scans for new events [default: spark.history.fs.update.interval, else 10]")
@click.option("--foreground", is_flag=True, help="run in this process, logging to stderr")
def history_start(host: str, port: int, log_directory: str | None, update_interval: float | None,
                  foreground: bool) -> None:
    """Start the history server; print its address."""
    check_defaults_file()
    directory = log_directory or settings_from_defaults()[0]
    if "://" not in directory and not os.path.isdir(directory):
        _usage(f"--log-directory: {directory!r} is not a directory")
    if not foreground:
        _refuse_double_start("history", host, port)
    _check_ports(host, [("--port", port)])
    args = ["--host", host, "--port", str(port), "--log-directory", os.path.abspath(directory)]
    if update_interval is not None:
        args += ["--update-interval", str(update_interval)]
    if foreground:
        _foreground("history", args)
    started = _start("history", args, host, port)
    url = started.ready[0] if started.ready else f"http://{host}:{port}"
    click.echo(f"history server started at {url} (pid {started.pid}), reading {os.path.abspath(directory)}")
    click.echo(f"log: {started.log_file}")


@history.command("stop", context_settings=CONTEXT)
@click.option("--port", type=_PORT, default=None, help="only the history server started on this port")
def history_stop(port: int | None) -> None:
    """Stop the history server(s) started from this machine."""
    _report_stopped("history", port, _stop("history", port))
