"""``spark.executor.pyspark.memory``: an address-space limit on each task slot process.

As PySpark limits each Python worker (``RLIMIT_AS``, the executor's setting split evenly
over its cores), a slot limits itself once, right after it is forked. A slot is a fork of
the executor, so it starts with the executor's interpreter, modules and reserved-but-unused
mappings (thread stacks and malloc arenas of the executor's threads, for a slot forked
later); the limit is that starting size plus the slot's share, so the share is what tasks
get, whenever the slot was forked. An allocation past it raises ``MemoryError`` in the
task, which fails with a message naming the setting; the slot itself lives on.
"""
from __future__ import annotations

import resource

_MIB = 1 << 20
# set in a slot process by apply(): (limit in bytes, the slot's share, the setting, slots)
_limit: tuple[int, int, int, int] | None = None


def address_space() -> int | None:
    """This process's virtual memory size in bytes (VmSize), None if /proc has none."""
    try:
        with open("/proc/self/statm", "rb") as f:
            pages = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pages * resource.getpagesize()


def apply(setting: int, slots: int) -> None:
    """In a freshly forked slot: limit the address space to what it holds now plus
    ``setting / slots`` bytes."""
    global _limit
    share = setting // max(1, slots)
    if share <= 0:
        return
    limit = (address_space() or 0) + share
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or limit < soft:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    _limit = (limit, share, setting, slots)


def explain(error: BaseException) -> BaseException:
    """A MemoryError raised under the limit, with a message that names the setting (the
    type stays MemoryError; the original is its cause). Anything else is returned as is."""
    if _limit is None or not isinstance(error, MemoryError):
        return error
    limit, share, setting, slots = _limit
    detail = f" ({error})" if str(error) else ""
    better = MemoryError(
        f"the task ran out of memory{detail}: its task slot may use {share // _MIB} MiB beyond its start "
        f"(an address-space limit of {limit // _MIB} MiB), spark.executor.pyspark.memory="
        f"{setting // _MIB}m shared by the executor's {slots} slots; raise spark.executor.pyspark.memory "
        f"or make the task hold less at once")
    better.__cause__ = error
    return better
