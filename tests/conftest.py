"""Shared test fixtures.

One SparkContext("local[2]") serves every test that asks for the ``sc`` fixture: starting
a context costs a process start, a job only a few milliseconds. The context lives for the
session, is created on first use, and is stopped at the end (``sc.stop()``), after which
no process started by the test run may remain.

A SparkContext is a singleton per process, so a test module that makes its own contexts
must not run while the shared one is alive. Modules in which no test uses ``sc`` get the
shared context stopped before they start (the next module that uses ``sc`` starts a new
one), so such modules need nothing special: they create and stop their own contexts.

After every module, ``check_no_leftover_processes`` asserts that the only processes
descending from pytest are the shared context's executor and its task slots. A module
that starts long-lived helpers on purpose can opt out with
``ALLOW_LEFTOVER_PROCESSES = True``.

Every test gets a timeout (pytest-timeout's ``timeout`` mark, 120 s unless the test sets
its own); without pytest-timeout installed a SIGALRM fallback enforces the same mark.
"""
from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any, Iterator

import pytest

DEFAULT_TIMEOUT = 120
SHARED_MASTER = "local[2]"

# ---------------------------------------------------------------------------- processes
ProcKey = tuple[int, int]  # (pid, start time): a pid alone may be reused


def process_table() -> dict[int, tuple[int, str, int, str]]:
    """pid -> (ppid, state, start time, command line) for every process in /proc."""
    table: dict[int, tuple[int, str, int, str]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read().decode("utf-8", "replace")
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:  # exited while we looked
            continue
        # the command name (field 2) is in parentheses and may itself contain spaces
        fields = stat[stat.rfind(")") + 2:].split()
        table[int(name)] = (int(fields[1]), fields[0], int(fields[19]), cmd)
    return table


def descendants(root: int | None = None,
                table: dict[int, tuple[int, str, int, str]] | None = None) -> dict[int, tuple[int, str, int, str]]:
    """Every process below ``root`` (default: this pytest process), zombies included."""
    root = os.getpid() if root is None else root
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for pid, (ppid, *_rest) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, tuple[int, str, int, str]] = {}
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out[pid] = table[pid]
        stack.extend(children.get(pid, []))
    return out


def _alive(keys: set[ProcKey]) -> set[ProcKey]:
    table = process_table()
    return {(pid, st) for pid, st in keys if pid in table and table[pid][2] == st and table[pid][1] != "Z"}


def _describe(procs: dict[int, tuple[int, str, int, str]]) -> str:
    return "; ".join(f"pid {pid} (ppid {pp}, state {state}): {cmd[:120]}"
                     for pid, (pp, state, _st, cmd) in sorted(procs.items()))


def check_no_leftover_processes(allowed_roots: set[ProcKey] = frozenset(), timeout: float = 10.0) -> None:
    """Assert that no process descends from pytest except the trees rooted at
    ``allowed_roots``; processes that are on their way out get ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        table = process_table()
        allowed: set[int] = set()
        for pid, st in allowed_roots:
            if pid in table and table[pid][2] == st:
                allowed.add(pid)
                allowed.update(descendants(pid, table))
        extra = {pid: info for pid, info in descendants(None, table).items() if pid not in allowed}
        if not extra:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"processes left behind: {_describe(extra)}")
        time.sleep(0.05)


# ---------------------------------------------------------------------------- shared context
class _Shared:
    sc: Any = None
    roots: set[ProcKey] = set()  # the shared context's executor process(es)
    seen: set[ProcKey] = set()  # every process of its tree we observed
    users: set[str] = set()  # modules with a test that uses `sc`


def _shared_alive() -> bool:
    from sparkctl import SparkContext
    return _Shared.sc is not None and SparkContext._active is _Shared.sc


def _observe_tree() -> None:
    table = process_table()
    for pid, st in list(_Shared.roots):
        if pid in table and table[pid][2] == st:
            for d, info in descendants(pid, table).items():
                _Shared.seen.add((d, info[2]))


def shared_context() -> Any:
    """The session's SparkContext("local[2]"), started now if it is not running."""
    from sparkctl import SparkConf, SparkContext
    if _shared_alive():
        return _Shared.sc
    stop_shared_context()  # a test stopped it: check its processes went, then start afresh
    if SparkContext._active is not None:
        raise RuntimeError(f"a SparkContext from an earlier test is still running: {SparkContext._active!r}; "
                           "tests that make their own contexts must stop them")
    before = set(descendants())
    conf = (SparkConf().setMaster(SHARED_MASTER).setAppName("sparkctl-rdd-tests")
            .set("spark.ui.showConsoleProgress", "false"))
    sc = SparkContext(conf=conf)
    table = process_table()
    _Shared.roots = {(pid, info[2]) for pid, info in descendants(None, table).items()
                     if pid not in before and info[0] == os.getpid()}
    _Shared.seen = set(_Shared.roots)
    _Shared.sc = sc
    _observe_tree()
    return sc


def stop_shared_context() -> None:
    """Stop the shared context (if running) and check that its processes are all gone,
    slots included (an orphaned slot would no longer descend from pytest)."""
    sc = _Shared.sc
    if sc is None:
        return
    _observe_tree()
    _Shared.sc = None
    sc.stop()
    seen, _Shared.seen, _Shared.roots = _Shared.seen, set(), set()
    deadline = time.monotonic() + 10
    while _alive(seen) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = _alive(seen)
    assert not left, f"processes of the stopped SparkContext still running: {sorted(left)}"


@pytest.fixture(scope="session", autouse=True)
def _session_context() -> Iterator[None]:
    """Owns the shared context's lifetime: stopped when the session ends, and then no
    process started during the session may be left."""
    yield
    stop_shared_context()
    check_no_leftover_processes()


@pytest.fixture
def sc() -> Any:
    """The shared SparkContext("local[2]")."""
    return shared_context()


@pytest.fixture
def assert_no_child_processes() -> Any:
    """``assert_no_child_processes()`` fails if any process started by this test run is
    still alive, other than the shared context's (pass ``allow_shared=False`` to forbid
    those too)."""
    def check(allow_shared: bool = True, timeout: float = 10.0) -> None:
        check_no_leftover_processes(_Shared.roots if allow_shared and _shared_alive() else set(), timeout)
    return check


@pytest.fixture(scope="module", autouse=True)
def _module_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    if getattr(request.module, "__name__", None) not in _Shared.users:
        stop_shared_context()  # the module may make its own SparkContext
    yield
    if getattr(request.module, "ALLOW_LEFTOVER_PROCESSES", False):
        return
    _observe_tree()
    check_no_leftover_processes(_Shared.roots if _shared_alive() else set())


@pytest.fixture(scope="module", autouse=True)
def _restore_sparkctl_logging() -> Iterator[None]:
    """A SparkContext configures the ``sparkctl`` logger (its own handler, no propagation
    to the root logger); put it back after each module, so a later module's ``caplog``
    still sees sparkctl's records."""
    logger = logging.getLogger("sparkctl")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]


# ---------------------------------------------------------------------------- collection, timeouts
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a long test (a JVM, a browser, a lot of data): left out of a plain "
                                       "run, run with -m slow (.ci/run runs them after the rest)")
    if not config.pluginmanager.hasplugin("timeout"):
        config.addinivalue_line("markers", "timeout(seconds): fail the test if it runs longer (fallback for "
                                           "pytest-timeout)")
    if getattr(config.option, "durations", None) is None:
        config.option.durations = 15  # the slowest tests, in every log: what to mark slow next


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.option.markexpr and not _named_on_command_line(config):
        # a plain run stays within minutes; the slow suites run with -m slow (CI runs both)
        slow = [i for i in items if i.get_closest_marker("slow") is not None]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [i for i in items if i.get_closest_marker("slow") is None]
    for item in items:
        module = getattr(item, "module", None)
        if module is not None and "sc" in getattr(item, "fixturenames", ()):
            _Shared.users.add(module.__name__)
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


def _named_on_command_line(config: pytest.Config) -> bool:
    """A test or file named explicitly (``pytest tests/test_x.py::test_y``) runs even if slow."""
    return any("::" in str(a) or str(a).endswith(".py") for a in config.args)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.config.pluginmanager.hasplugin("timeout"):
        yield
        return
    marker = item.get_closest_marker("timeout")
    seconds = float(marker.args[0]) if marker and marker.args else DEFAULT_TIMEOUT

    def on_alarm(signum: int, frame: Any) -> None:
        pytest.fail(f"Timeout >{seconds:g}s", pytrace=True)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
