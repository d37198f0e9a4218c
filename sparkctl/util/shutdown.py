"""SIGINT, SIGTERM and SIGHUP end a driver the way Ctrl-C does.

Ctrl-C raises ``KeyboardInterrupt`` in the driver's main thread: the job it waits for is
cancelled (its tasks killed), the SparkContext stops its executors and removes its
directories, and the process exits. Python's default for SIGTERM and SIGHUP is to die
on the spot, which skips all of that and leaves executors and shuffle files behind. So
the driver turns those signals into :class:`Interrupted`, a ``KeyboardInterrupt`` that
remembers its signal, and exits with the shell's code for it (128 + the signal number).

```
 signal ──▶ handler (main thread) ── raise Interrupted(signum) ──▶ running job cancelled
                                                                  ▶ SparkContext.stop()
                                                                  ▶ exit 128 + signum
```

``sparkctl submit`` owns its process, so it always installs the handlers, including for
SIGINT, which a shell's background job inherits as ignored. It leaves an ignored SIGHUP
alone: that is ``nohup`` asking the driver to outlive its terminal. A SparkContext in a
plain ``python app.py`` installs handlers for SIGTERM and SIGHUP only where Python's
default is in place, so a handler the application installed is never replaced; they
raise ``SystemExit(128 + signum)``, which ends the script quietly with the shell's code
once ``atexit`` has stopped the context.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = ["Interrupted", "install_driver_handlers", "install_default_handlers", "restore_default_handlers",
           "deferred", "exit_code_for"]

SIGNALS: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(KeyboardInterrupt):
    """The driver received *signum*: handled exactly as Ctrl-C is."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum = signum


def exit_code_for(e: BaseException) -> int:
    """The shell's exit code for an interrupted process: 128 + signal (130 for plain Ctrl-C)."""
    return 128 + (e.signum if isinstance(e, Interrupted) else signal.SIGINT)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # Once is a request to clean up and exit; a second one (the first was caught by code
    # that catches SystemExit, a test runner for one) ends the process as Python's default would.
    signal.signal(signum, signal.SIG_DFL)
    raise SystemExit(128 + signum)


def install_driver_handlers() -> None:
    """``submit``: SIGINT, SIGTERM and SIGHUP raise :class:`Interrupted` in the main thread
    (an inherited SIG_IGN of SIGHUP, ``nohup``'s, is kept)."""
    for sig in SIGNALS:
        if sig == signal.SIGHUP and signal.getsignal(sig) == signal.SIG_IGN:
            continue
        signal.signal(sig, _raise_interrupted)


def install_default_handlers() -> list[int]:
    """A SparkContext outside ``submit``: SIGTERM and SIGHUP exit through ``SystemExit``
    where Python's default (die at once) is in place; returns the signals taken over.
    Only the main thread may set handlers, so elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        return []
    taken: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) == signal.SIG_DFL:
            signal.signal(sig, _exit_on_signal)
            taken.append(sig)
    return taken


def restore_default_handlers(taken: list[int]) -> None:
    """Undo :func:`install_default_handlers`, for signals whose handler is still ours."""
    if not taken or threading.current_thread() is not threading.main_thread():
        return
    for sig in taken:
        if signal.getsignal(sig) is _exit_on_signal:
            signal.signal(sig, signal.SIG_DFL)


@contextmanager
def deferred(redeliver: bool = True) -> Iterator[list[int]]:
    """While cleaning up, a signal (a second one from ``timeout``, Ctrl-C pressed again)
    must not cut the cleanup short: signals whose handler would raise are only noted, in
    the list yielded. Afterwards the handlers are put back and, with *redeliver*, the
    first noted signal is raised again, so it takes effect once the cleanup is done."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    noted: list[int] = []
    saved: dict[int, Any] = {}
    for sig in SIGNALS:
        current = signal.getsignal(sig)
        if current in (_raise_interrupted, _exit_on_signal, signal.default_int_handler):
            saved[sig] = current
            signal.signal(sig, lambda signum, frame: noted.append(signum))
    try:
        yield noted
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        if redeliver and noted:
            signal.raise_signal(noted[0])
