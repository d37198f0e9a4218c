"""How much memory a task really uses: size estimates of its collections, checked against
the process's resident set.

Measuring every record would cost more than processing it, so, as Spark's SizeTracker,
we measure a sample now and then (each time the number of updates grows by 10%) and
extrapolate the bytes per update in between. The estimate errs high for shared objects
(interned strings, small ints are counted once per use) but low for what Python keeps
around them: allocator pools, over-allocated lists and dict tables, the pickled batch
being read. So a task slot also has a ceiling on its real resident memory (its RSS when
it started plus its execution budget, see :func:`set_rss_limit`), read from
``/proc/self/statm`` at the same sample points (about a microsecond a read); a spillable
collection spills when either its estimate or the process passes its mark.

Freeing a spilled collection returns its memory to the allocator; :func:`release_memory`
then hands it back to the kernel (CPython's free lists and glibc keep it otherwise), so
the next run, or the next task, starts from a low resident set. A finished task's
collections are freed, and its memory released, after its result is sent
(:func:`defer_freeing`): that work is then off the path between the task's end and the
driver hearing of it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import sys
from itertools import islice
from typing import Any, Callable

_getsizeof = sys.getsizeof
_SAMPLE = 8
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def deep_size(obj: Any, depth: int = 3) -> int:
    """Approximate bytes of ``obj`` and what it holds, by sampling containers."""
    size = _getsizeof(obj)
    if depth <= 0:
        return size
    t = type(obj)
    if t is tuple or t is list:
        n = len(obj)
        if n:
            sample = obj[:_SAMPLE] if n > _SAMPLE else obj
            size += sum(deep_size(x, depth - 1) for x in sample) * n // len(sample)
    elif t is dict:
        n = len(obj)
        if n:
            sample = list(islice(obj.items(), _SAMPLE))
            size += sum(deep_size(k, depth - 1) + deep_size(v, depth - 1) for k, v in sample) * n // len(sample)
    elif t is set or t is frozenset:
        n = len(obj)
        if n:
            sample = list(islice(obj, _SAMPLE))
            size += sum(deep_size(x, depth - 1) for x in sample) * n // len(sample)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        size += deep_size(vars(obj), depth - 1)
    return size


class SizeTracker:
    """Extrapolates a collection's size from occasional samples.

    It holds no reference to the collection (the owner passes each measurement to
    :meth:`sample`): a tracker that held its owner would make a reference cycle, and the
    collection would then outlive a spill until the cyclic collector ran, which in a task
    slot is rare (its collector thresholds are high)."""

    def __init__(self, measure: Callable[[], int] | None = None) -> None:
        self._measure = measure
        self.reset()

    def reset(self) -> None:
        self.updates = 0
        self.next_sample = 64
        self._last_updates = 0
        self._last_bytes = 0
        self._bytes_per_update = 0.0

    def sample(self, measured: int | None = None) -> int:
        """Record a measurement taken now (or take one with the tracker's own ``measure``);
        returns it. Call when ``updates >= next_sample``."""
        if measured is None:
            assert self._measure is not None, "a tracker without measure needs the measured bytes"
            measured = self._measure()
        delta_updates = self.updates - self._last_updates
        if delta_updates > 0:
            self._bytes_per_update = max(0.0, (measured - self._last_bytes) / delta_updates)
        self._last_updates = self.updates
        self._last_bytes = measured
        self.next_sample = int(self.updates * 1.1) + 64
        return measured

    def estimate(self) -> int:
        return int(self._last_bytes + (self.updates - self._last_updates) * self._bytes_per_update)


# ---------------------------------------------------------------- pickled batches
# A pickled batch aims at no more than this: spark.shuffle.spill.batchSize records of a
# few hundred bytes, fewer of large ones, so that no batch (written, spilled or read back)
# is a large part of a task's memory budget.
BATCH_BYTES = 1 << 20
FIRST_BATCH = 8  # records of a writer's first batch, before their size is known


def batch_limit(batch_size: int, records: int, pickled: int) -> int:
    """Records for the next batch, from the last batch's count and pickled size."""
    return max(1, min(batch_size, BATCH_BYTES * records // max(1, pickled)))


# ---------------------------------------------------------------- the process's real memory
_statm: tuple[int, int] | None = None  # (pid, fd): /proc/self is resolved at open, so reopen after a fork
_rss_limit: int | None = None


def rss() -> int | None:
    """This process's resident set in bytes, or None where /proc is not available."""
    global _statm
    pid = os.getpid()
    if _statm is None or _statm[0] != pid:
        try:
            _statm = (pid, os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        except OSError:
            return None
    try:
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return None


def set_rss_limit(limit: int | None) -> None:
    """Set the resident-memory mark past which this process's spillable collections spill
    (a task slot sets it once: its RSS at start plus its execution budget)."""
    global _rss_limit
    _rss_limit = limit


def rss_limit() -> int | None:
    return _rss_limit


def over_rss_limit() -> bool:
    """True when this process has a mark and its resident set is past it, counting only
    memory in use: free pages an earlier task left (see :func:`hold_release`) are handed
    back first."""
    limit = _rss_limit
    if limit is None:
        return False
    now = rss()
    if now is not None and now > limit and _release_held:
        release_memory()
        now = rss()
    return now is not None and now > limit


def _load_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim  # glibc only (musl has none)
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_malloc_trim = _load_malloc_trim()


_retired: list[Any] | None = None  # a task slot's: collections to free once its result is sent


def defer_freeing() -> None:
    """From now on :func:`retire` keeps collections until :func:`free_retired` (a task slot
    frees a finished task's collections after sending its result: deallocating millions
    of records takes tens of milliseconds the driver need not wait for)."""
    global _retired
    _retired = []


def retire(collection: Any) -> None:
    """A finished task's collection: freed now, or by :func:`free_retired` when deferred."""
    if _retired is not None:
        _retired.append(collection)


def free_retired() -> None:
    """Free the retired collections, in the order they were retired."""
    while _retired:
        _retired.pop(0)


_release_held = False  # a task slot's: a finished task's free pages are still resident


def hold_release(held: bool = True) -> None:
    """Keep a finished task's free pages for now (a task slot hands them back once it is at
    rest: the next task, if one follows at once, reuses them instead of faulting in new
    pages); :func:`over_rss_limit` hands them back first if the process passes its mark."""
    global _release_held
    _release_held = held


def release_held() -> bool:
    return _release_held


def release_memory() -> None:
    """Give the memory of freed collections back to the kernel, after a spill or a task.

    CPython returns an arena (1 MiB) only once every object in it is gone, and the
    interpreter's free lists keep thousands of dead tuples, lists and dicts: scattered
    over the arenas a large collection used, they keep tens of MiB resident. A full
    collection empties the free lists (and costs microseconds when little is alive beyond
    the frozen start-up heap). Large buffers (list and dict tables, pickled batches) come
    from malloc, whose free pages stay resident until trimmed."""
    global _release_held
    _release_held = False
    gc.collect()
    trim_heap()


def trim_heap() -> None:
    """Hand malloc's free pages back to the kernel (glibc; elsewhere nothing)."""
    if _malloc_trim is not None:
        _malloc_trim(0)
