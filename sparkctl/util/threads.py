"""Threads that carry the creating thread's local properties, as PySpark's.

A SparkContext's local properties (job group, job tags, job description, interrupt on
cancel, anything set with ``setLocalProperty``) belong to the thread that set them, so a
plain ``threading.Thread`` starts with none: its jobs are in no group, carry no tag and
escape ``cancelJobGroup``/``cancelJobsWithTag``. ``InheritableThread`` copies them when
it is started; ``inheritable_thread_target`` copies them when it wraps the function.
"""
from __future__ import annotations

import functools
import threading
from typing import Any, Callable


def _active_context() -> Any:
    from sparkctl.context import SparkContext
    return SparkContext._active


def _snapshot(sc: Any) -> dict[str, str] | None:
    return dict(sc._properties()) if sc is not None else None


def _install(props: dict[str, str] | None) -> None:
    sc = _active_context()
    if sc is not None and props is not None:
        sc._local.props = dict(props)


class InheritableThread(threading.Thread):
    """A ``threading.Thread`` whose jobs run with the local properties its creator had
    when it called ``start()`` (PySpark takes them at the same moment)."""

    def __init__(self, target: Callable[..., Any] | None = None, *args: Any, session: Any = None,
                 **kwargs: Any) -> None:
        # further positional arguments are Thread's own after target: name, args, kwargs
        super().__init__(None, target, *args, **kwargs)
        self._session = session
        self._props: dict[str, str] | None = None

    def start(self) -> None:
        sc = self._session.sparkContext if self._session is not None else _active_context()
        self._props = _snapshot(sc)
        super().start()

    def run(self) -> None:
        _install(self._props)
        super().run()


def inheritable_thread_target(f: Any = None) -> Any:
    """Wrap ``f`` so that, in whatever thread runs it, its jobs get the local properties of
    the thread that wrapped it (taken now). ``Thread(target=inheritable_thread_target(f))``.

    Given a SparkSession instead of a function, returns such a wrapper for that session's
    context (PySpark's form ``@inheritable_thread_target(spark)``).
    """
    if f is not None and not callable(f) and hasattr(f, "sparkContext"):
        session = f

        def for_session(g: Callable[..., Any]) -> Callable[..., Any]:
            return _wrap(g, _snapshot(session.sparkContext))
        return for_session
    if f is None:
        return inheritable_thread_target
    return _wrap(f, _snapshot(_active_context()))


def _wrap(f: Callable[..., Any], props: dict[str, str] | None) -> Callable[..., Any]:
    @functools.wraps(f)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        _install(props)
        return f(*args, **kwargs)
    return wrapped
