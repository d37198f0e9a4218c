"""Processes that hold a connection per executor raise their open-file limit, as the JVM does."""
from __future__ import annotations

import resource
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)


def _low_soft_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))


def _raised() -> int:
    """The soft limit raise_fd_limit sets: the hard limit, at most 2^20."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (1 << 20) if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)


def _printed_with_a_low_limit(code: str, timeout: float) -> list[int]:
    """What Python *code* prints, run with a soft limit of 256 open files."""
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=_low_soft_limit, capture_output=True,
                         text=True, timeout=timeout, check=True).stdout.split()
    return [int(x) for x in out]


def test_the_soft_limit_rises_to_the_hard_limit() -> None:
    code = ("import resource; from sparkctl.util.processes import raise_fd_limit; "
            "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; got = raise_fd_limit(); "
            "print(before, got, resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    assert _printed_with_a_low_limit(code, 30) == [256, _raised(), _raised()]


def test_tasks_run_with_the_raised_limit() -> None:
    """A driver started with a low soft limit: its executor raised it, so its task slots
    (forked from the executor) report the hard limit."""
    code = ("import resource; from sparkctl import SparkContext; sc = SparkContext('local[1]', 'fd'); "
            "print(sc.parallelize([0], 1).map(lambda _: __import__('resource').getrlimit(7)[0]).collect()[0], "
            "resource.getrlimit(resource.RLIMIT_NOFILE)[0]); sc.stop()")
    assert resource.RLIMIT_NOFILE == 7
    assert _printed_with_a_low_limit(code, 50) == [_raised(), 256]  # the driver itself was left alone
