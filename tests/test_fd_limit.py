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


def test_the_soft_limit_rises_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = ("import resource; from sparkctl.util.processes import raise_fd_limit; "
            "before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]; got = raise_fd_limit(); "
            "print(before, got, resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=_low_soft_limit, capture_output=True,
                         text=True, timeout=30, check=True).stdout.split()
    want = (1 << 20) if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    assert [int(x) for x in out] == [256, want, want]


def test_tasks_run_with_the_raised_limit() -> None:
    """A driver started with a low soft limit: its executor raised it, so its task slots
    (forked from the executor) report the hard limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    code = ("import resource; from sparkctl import SparkContext; sc = SparkContext('local[1]', 'fd'); "
            "print(sc.parallelize([0], 1).map(lambda _: __import__('resource').getrlimit(7)[0]).collect()[0], "
            "resource.getrlimit(resource.RLIMIT_NOFILE)[0]); sc.stop()")
    out = subprocess.run([sys.executable, "-c", code], preexec_fn=_low_soft_limit, capture_output=True,
                         text=True, timeout=50, check=True).stdout.split()
    want = (1 << 20) if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    assert resource.RLIMIT_NOFILE == 7
    assert [int(x) for x in out] == [want, 256]  # the driver itself was left alone
