"""An application's live UI and event log: the listener bus and what hangs off it.

```
 SparkContext ──start_app_ui──▶ SparkUI
                                  ├─ LiveListenerBus  ◀── runtime.events (SchedulerEvents)
                                  ├─ AppStatusListener ──▶ UIServer (spark.ui.port, /api/v1)
                                  └─ EventLogClient ──▶ the event log writer process (spark.eventLog.enabled)
```
The bus and the status listener always run (``sc.statusTracker()`` reads the listener);
``spark.ui.enabled`` (default true) starts the UI server, ``spark.eventLog.enabled`` (default
false) writes the event log.
The settings the UI shows and the event log records are redacted first: a key or value
matching ``spark.redaction.regex`` shows as ``*********(redacted)``, as in Spark.
"""
from __future__ import annotations

import logging
import re
from typing import Any

from sparkctl.scheduler import events as ev
from sparkctl.scheduler.event_log_writer import EventLogClient
from sparkctl.scheduler.event_poster import SchedulerEvents, now_ms
from sparkctl.scheduler.listener import LiveListenerBus
from sparkctl.ui.server import UIServer, start_ui_server
from sparkctl.ui.status_listener import AppStatusListener

log = logging.getLogger("sparkctl.ui")

DEFAULT_REDACTION = r"(?i)secret|password|token|access[.]?key"
REDACTED = "*********(redacted)"
DEFAULT_UI_PORT = 4040


def redact(pairs: list[tuple[str, str]], pattern: str | None) -> list[tuple[str, str]]:
    try:
        rx = re.compile(pattern or DEFAULT_REDACTION)
    except re.error as e:
        raise ValueError(f"spark.redaction.regex={pattern!r} is not a regular expression: {e}") from None
    return [(k, REDACTED if rx.search(k) or rx.search(v) else v) for k, v in pairs]


class SparkUI:
    """The bus, the status listener, the UI server and the event log of one application."""

    def __init__(self, bus: LiveListenerBus, status: AppStatusListener, server: UIServer | None,
                 event_log: EventLogClient | None, lookup: dict[str, AppStatusListener]) -> None:
        self.lookup = lookup  # what the UI server serves: app id -> its status
        self.settings: list[tuple[str, str]] = []
        self.redaction: str | None = None
        self.bus = bus
        self.status = status
        self.server = server
        self.event_log = event_log

    @property
    def web_url(self) -> str | None:
        return self.server.url if self.server is not None else None

    def application_started(self, app_name: str, app_id: str, start_time: int, user: str) -> None:
        """The application has its id (a standalone master's, once registered): the UI
        serves it under that id and the event log takes its name, then the environment and
        ApplicationStart follow, as in Spark's logs."""
        self.lookup.clear()
        self.lookup[app_id] = self.status
        event_log = self.event_log
        settings = redact(sorted(dict(self.settings + [("spark.app.id", app_id)]).items()), self.redaction)

        def opened() -> dict[str, Any]:
            if event_log is not None:
                try:
                    event_log.open(app_id)
                    log.info("Logging events to %s", event_log.path)
                except (OSError, ValueError) as e:
                    log.error("No event log for %s: %s", app_id, e)
            return ev.environment_update(settings)

        self.bus.post(opened)
        self.bus.post_now(ev.application_start(app_name, app_id, start_time, user))

    def stop(self, exit_code: int | None = 0) -> None:
        self.bus.post(ev.application_end(now_ms(), exit_code))
        self.bus.stop()
        if self.server is not None:
            self.server.stop()


def start_app_ui(conf: Any, runtime: Any, app_name: str, app_id: str, start_time: int) -> SparkUI:
    """Start the bus and its status listener, and what ``conf`` asks for (the UI server, the
    event log); point ``runtime`` at the bus. ``app_id`` is provisional until
    ``SparkUI.application_started`` gives the final one."""
    ui_enabled = conf.get_bool("spark.ui.enabled", True)
    log_enabled = conf.get_bool("spark.eventLog.enabled", False)
    bus = LiveListenerBus(ev.convert)
    server = event_log = None
    # as in Spark, the status listener runs even without a UI: sc.statusTracker() reads it
    status = AppStatusListener(retained_jobs=conf.get_int("spark.ui.retainedJobs", 1000),
                               retained_stages=conf.get_int("spark.ui.retainedStages", 1000),
                               retained_tasks=conf.get_int("spark.ui.retainedTasks", 100000))
    bus.add_listener(status)
    lookup: dict[str, AppStatusListener] = {app_id: status}
    if log_enabled:
        directory = conf.get("spark.eventLog.dir") or "/tmp/spark-events"
        event_log = EventLogClient(directory, conf.get_bool("spark.eventLog.overwrite", False),
                                   conf.get_bool("spark.eventLog.logBlockUpdates.enabled", False), conf)
        bus.add_listener(event_log)
    if ui_enabled:
        host = conf.get("spark.driver.bindAddress") or conf.get("spark.driver.host") or "127.0.0.1"
        server = start_ui_server(host, conf.get_int("spark.ui.port", DEFAULT_UI_PORT), lambda: lookup,
                                 title=f"{app_name} - sparkctl UI", max_retries=conf.get_int("spark.port.maxRetries", 16),
                                 allowed=conf.get("spark.ui.allowedHosts"))
    ui = SparkUI(bus, status, server, event_log, lookup)
    settings = [(k, str(v)) for k, v in conf.getAll()]
    settings += [("spark.app.name", app_name), ("spark.app.startTime", str(start_time))]
    if server is not None:
        settings.append(("spark.ui.port", str(server.port)))
    host, port = runtime.address
    memory_mib = (conf.get_size("spark.executor.memory", "m") or (1 << 30)) >> 20
    bus.post(ev.resource_profile_added(conf.get_int("spark.executor.cores", 1) if conf.contains("spark.executor.cores")
                                       else 1, memory_mib, conf.get_int("spark.task.cpus", 1)))
    bus.post(ev.block_manager_added(start_time, "driver", host, port, 0))
    ui.settings = sorted(dict(settings).items())
    ui.redaction = conf.get("spark.redaction.regex")
    redact([], ui.redaction)  # a bad pattern fails the start, naming the setting
    memory = conf.get_size("spark.executor.memory", "m") or (1 << 30)
    runtime.events = SchedulerEvents(bus, int(memory * conf.get_float("spark.memory.fraction", 0.6)))
    bus.start()
    if ui.web_url:
        log.info("Spark UI of %s available at %s", app_name, ui.web_url)
    return ui
