"""The driver's listener bus: scheduler events, delivered off the scheduler's lock.

```
 DriverRuntime (under its lock) ── post(raw) ──▶ deque ──▶ bus thread ── to_event(raw) ──▶ listeners
                                                            │                              ├─ AppStatusListener (UI, REST API)
                                                            │                              └─ EventLoggingListener (Spark JSON lines)
```
Events travel as Spark's own event-log JSON objects (``{"Event": "SparkListenerTaskEnd", ...}``,
see :mod:`sparkctl.scheduler.events`). One shape serves everyone: the event log writes them
as they are, and the status store consumes exactly what a history server replays from a log,
so the live UI and the history server cannot disagree.

Posting costs the scheduler one ``deque.append`` of a tuple: building the JSON object (task
metrics, dates) happens on the bus thread. The thread wakes a few times a second when idle
and drains everything queued at once; ``stop`` drains what is left before the listeners stop.
A listener that raises is logged once per event type and kept.
"""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any, Callable, Protocol

from sparkctl.scheduler.events import TaskEndRaw, TaskStartRaw

log = logging.getLogger("sparkctl.listener")

Event = dict[str, Any]
#: how long the idle bus thread sleeps between looks at the queue (s)
POLL_INTERVAL = 0.1


_RAW_METHODS = {TaskStartRaw: "on_task_start_raw", TaskEndRaw: "on_task_end_raw"}


class SparkListener(Protocol):
    def on_event(self, event: Event) -> None: ...

    def stop(self) -> None: ...


class LiveListenerBus:
    """Queue of raw events (tuples or ready Spark JSON objects) and the thread that delivers
    them in order. ``convert`` turns a raw tuple into a Spark JSON object."""

    def __init__(self, convert: Callable[[Any], Event | None] | None = None) -> None:
        self.queue: deque[Any] = deque()
        self.listeners: list[SparkListener] = []
        self.convert = convert
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._failed: set[tuple[int, str]] = set()
        self._thread: threading.Thread | None = None
        self.delivered = 0

    def add_listener(self, listener: SparkListener) -> None:
        self.listeners.append(listener)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="listener-bus")
        self._thread.start()

    def post(self, raw: Any) -> None:
        """Queue an event; safe from any thread, cheap under the scheduler's lock."""
        self.queue.append(raw)

    def post_now(self, raw: Any) -> None:
        """Queue an event and wake the bus at once (rare events a reader may wait for)."""
        self.queue.append(raw)
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._drain()
            if self._stop.is_set():
                self._drain()
                return
            if not self.queue:
                self._idle()
            self._wake.wait(POLL_INTERVAL)
            self._wake.clear()

    def _idle(self) -> None:
        """Everything posted is delivered: listeners with an ``on_idle`` (the event log's
        flush) run it, so a reader following them is at most one poll behind."""
        for listener in self.listeners:
            fn = getattr(listener, "on_idle", None)
            if fn is not None:
                try:
                    fn()
                except Exception:
                    log.warning("listener %s failed when idle", type(listener).__name__, exc_info=True)

    def _drain(self) -> None:
        queue = self.queue
        while queue:
            raw = queue.popleft()
            method = _RAW_METHODS.get(type(raw))
            if method is not None:  # a task event: listeners that can take the tuple skip the JSON
                self._deliver_raw(raw, method)
                continue
            try:
                event = raw if isinstance(raw, dict) or self.convert is None else self.convert(raw)
            except Exception:
                log.warning("could not convert listener event %r", raw[:1] if isinstance(raw, tuple) else raw,
                            exc_info=True)
                continue
            if event is None:
                continue
            if event.get("Event") == "_flush":
                event["_done"].set()
                continue
            self.delivered += 1
            for listener in self.listeners:
                try:
                    listener.on_event(event)
                except Exception:
                    key = (id(listener), str(event.get("Event")))
                    if key not in self._failed:
                        self._failed.add(key)
                        log.warning("listener %s failed on %s (later failures of this kind are not logged)",
                                    type(listener).__name__, event.get("Event"), exc_info=True)

    def _deliver_raw(self, raw: Any, method: str) -> None:
        self.delivered += 1
        event: Event | None = None
        for listener in self.listeners:
            try:
                fn = getattr(listener, method, None)
                if fn is not None:
                    fn(raw)
                    continue
                if event is None:
                    assert self.convert is not None
                    event = self.convert(raw)
                listener.on_event(event)  # type: ignore[arg-type]
            except Exception:
                key = (id(listener), method)
                if key not in self._failed:
                    self._failed.add(key)
                    log.warning("listener %s failed on a task event (later failures of this kind are not logged)",
                                type(listener).__name__, exc_info=True)

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until what was posted so far has been delivered (for tests and readers)."""
        if self._thread is None or not self._thread.is_alive():
            self._drain()
            return
        done = threading.Event()
        self.queue.append({"Event": "_flush", "_done": done})
        self._wake.set()
        done.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then stop the listeners (which close their files)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        else:
            self._drain()
        for listener in self.listeners:
            try:
                listener.stop()
            except Exception:
                log.warning("listener %s failed to stop", type(listener).__name__, exc_info=True)

