"""DataFrame operators in bounded memory: Arrow tables spilled as IPC files, hash-partitioned.

A reduce task's aggregation or join holds the tables it has read until they pass the task
slot's memory budget (``TaskContext.memory_budget``, the same budget the RDD shuffle's
aggregation and sorts get). Past it, the rows go to disk, cut into ``FANOUT`` files by a
hash of the operator's keys (seeded apart from the exchange's hash, so one exchange
partition's keys spread over the files); every key's rows then sit in one file (one pair of
files, for a join), and the operator runs file by file, each a fraction of the whole:

```
 tables ──▶ held in memory ──(past budget)──▶ PartitionedSpill: FANOUT IPC stream files
                │                                 by hash(keys, seed = depth + 1)
                ▼ (all fit)                        │
          run in memory                            ▼ file by file (a file still past the
                                                 budget is split again, a level deeper)
```

Files live in the executor's local dir (``sql-spill-*``), are written with Arrow's IPC
compression when ``spark.shuffle.spill.compress`` is on, are deleted once read, and at the
latest when the task ends. A spill counts in the task's metrics as RDD spills do: the
tables' bytes in memory (memoryBytesSpilled) and the files' bytes (diskBytesSpilled).
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from sparkctl.executor import task_metrics
from sparkctl.sql.arrow_serde import ipc_options
from sparkctl.sql.exchange import partition_ids, split_by
from sparkctl.storage import compression

FANOUT = 16  # files a spill cuts its rows into
MAX_DEPTH = 3  # levels of re-splitting a file still past the budget (skewed keys stop helping)
SPILL_PREFIX = "sql-spill-"
_NO_TASK_BUDGET = 1 << 62  # outside a task (the driver, unit tests): never spill


class SpillContext:
    """One operator's budget, spill directory and files, for the running task."""

    def __init__(self, budget: int | None = None, directory: str | None = None) -> None:
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        in_task = tc is not None and tc.env is not None
        task_budget = tc.memory_budget if tc is not None and in_task else _NO_TASK_BUDGET
        self.budget = budget if budget is not None else task_budget
        self.directory = directory or (tc.local_dir if tc is not None and in_task else tempfile.gettempdir())
        self.options = ipc_options(compression.spill_codec())
        self.paths: set[str] = set()
        if tc is not None:
            tc.add_completion_listener(self.cleanup)

    def new_path(self) -> str:
        fd, path = tempfile.mkstemp(prefix=SPILL_PREFIX, dir=self.directory)
        os.close(fd)
        self.paths.add(path)
        return path

    def delete(self, path: str) -> None:
        self.paths.discard(path)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def cleanup(self) -> None:
        for path in list(self.paths):
            self.delete(path)

    def note_held(self, nbytes: int) -> None:
        task_metrics.current().note_execution_memory(nbytes)


class SpillFile:
    """One IPC stream on disk, read back a batch at a time and deleted once read."""

    def __init__(self, ctx: SpillContext, path: str, memory_bytes: int, rows: int) -> None:
        self.ctx = ctx
        self.path = path
        self.memory_bytes = memory_bytes  # what its tables took in memory
        self.rows = rows

    def tables(self) -> Iterator[pa.Table]:
        try:
            if self.memory_bytes:
                with pa.OSFile(self.path, "rb") as f:
                    reader = pa.ipc.open_stream(f)
                    for batch in reader:
                        yield pa.Table.from_batches([batch])
        finally:
            self.ctx.delete(self.path)

    def read_all(self) -> list[pa.Table]:
        return list(self.tables())


class IpcRunWriter:
    """Tables appended to one IPC stream file (one schema; later tables cast to it)."""

    def __init__(self, ctx: SpillContext) -> None:
        self.ctx = ctx
        self.path = ctx.new_path()
        self.sink: Any = None
        self.writer: Any = None
        self.schema: pa.Schema | None = None
        self.memory_bytes = 0
        self.rows = 0

    def write(self, table: pa.Table, max_chunksize: int | None = None) -> None:
        if not table.num_rows:
            return
        if self.writer is None:
            self.schema = table.schema
            self.sink = pa.OSFile(self.path, "wb")
            self.writer = pa.ipc.new_stream(self.sink, table.schema, options=self.ctx.options)
        elif table.schema != self.schema:
            table = table.cast(self.schema)
        self.writer.write_table(table, max_chunksize)
        self.memory_bytes += table.nbytes
        self.rows += table.num_rows

    def close(self) -> SpillFile:
        disk = 0
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
            disk = os.path.getsize(self.path)
        task_metrics.current().note_spill(self.memory_bytes, disk)
        return SpillFile(self.ctx, self.path, self.memory_bytes, self.rows)


class PartitionedSpill:
    """Rows cut into ``fanout`` files by a seeded hash of ``keys``."""

    def __init__(self, ctx: SpillContext, keys: list[str], seed: int, fanout: int = FANOUT) -> None:
        self.ctx = ctx
        self.keys = keys
        self.seed = seed
        self.fanout = fanout
        self.writers: list[IpcRunWriter | None] = [None] * fanout

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        ids = partition_ids(table, self.keys, self.fanout, seed=self.seed)
        for p, part in split_by(table, ids, self.fanout):
            w = self.writers[p]
            if w is None:
                w = self.writers[p] = IpcRunWriter(self.ctx)
            w.write(part)

    def finish(self) -> list[SpillFile | None]:
        return [w.close() if w is not None else None for w in self.writers]


def _nbytes(tables: Iterable[pa.Table]) -> int:
    return sum(t.nbytes for t in tables)


def grouped_in_budget(tables: Iterable[pa.Table], keys: list[str], run: Callable[[list[pa.Table]], Iterator[pa.Table]],
                      combine: Callable[[list[pa.Table]], pa.Table] | None = None,
                      ctx: SpillContext | None = None, depth: int = 0) -> Iterator[pa.Table]:
    """``run`` over every key's rows together, holding about the budget at a time.

    ``run`` gets a list of tables holding all rows of the keys it sees (all of them, when
    they fit). ``combine``, where the operator has one (merging partial aggregates), shrinks
    held tables to one with the same schema before anything is spilled: when the combined
    rows still fit, nothing is written."""
    ctx = ctx or SpillContext()
    budget = ctx.budget
    held: list[pa.Table] = []
    held_bytes = 0
    spill: PartitionedSpill | None = None
    for t in tables:
        if not t.num_rows:
            continue
        held.append(t)
        held_bytes += t.nbytes
        ctx.note_held(held_bytes)
        if held_bytes <= budget:
            continue
        if combine is not None and len(held) > 1:
            held = [combine(held)]
            held_bytes = held[0].nbytes
            if held_bytes <= budget // 2 and spill is None:
                continue
        if spill is None:
            spill = PartitionedSpill(ctx, keys, seed=depth + 1)
        for h in held:
            spill.write(h)
        held, held_bytes = [], 0
    if spill is None:
        if held:
            yield from run(held)
        return
    for h in held:
        spill.write(h)
    del held
    for f in spill.finish():
        if f is None:
            continue
        if f.memory_bytes > budget and depth < MAX_DEPTH:
            yield from grouped_in_budget(f.tables(), keys, run, combine, ctx, depth + 1)
        else:
            yield from run(f.read_all())


def paired_in_budget(items: Iterable[tuple[str, pa.Table]], keys: list[str],
                     run: Callable[[list[pa.Table], list[pa.Table]], Iterator[pa.Table]],
                     ctx: SpillContext | None = None, depth: int = 0) -> Iterator[pa.Table]:
    """A grace hash join's driver: ``run(lefts, rights)`` over every key's rows of both sides
    (tagged ``"L"`` / ``"R"``) together; past the budget both sides go to disk by the same
    seeded hash of the keys and ``run`` takes one pair of files at a time."""
    ctx = ctx or SpillContext()
    budget = ctx.budget
    held: dict[str, list[pa.Table]] = {"L": [], "R": []}
    held_bytes = 0
    spills: dict[str, PartitionedSpill] | None = None
    for side, t in items:
        if not t.num_rows:
            continue
        if spills is not None:
            spills[side].write(t)
            continue
        held[side].append(t)
        held_bytes += t.nbytes
        ctx.note_held(held_bytes)
        if held_bytes > budget:
            spills = {s: PartitionedSpill(ctx, keys, seed=depth + 1) for s in ("L", "R")}
            for s, ts in held.items():
                for h in ts:
                    spills[s].write(h)
            held = {"L": [], "R": []}
    if spills is None:
        yield from run(held["L"], held["R"])
        return
    lefts, rights = spills["L"].finish(), spills["R"].finish()
    for lf, rf in zip(lefts, rights):
        if lf is None and rf is None:
            continue
        size = (lf.memory_bytes if lf else 0) + (rf.memory_bytes if rf else 0)
        if size > budget and depth < MAX_DEPTH:
            yield from paired_in_budget(_tagged(lf, rf), keys, run, ctx, depth + 1)
        else:
            yield from run(lf.read_all() if lf else [], rf.read_all() if rf else [])


def _tagged(left: SpillFile | None, right: SpillFile | None) -> Iterator[tuple[str, pa.Table]]:
    for side, f in (("L", left), ("R", right)):
        if f is not None:
            for t in f.tables():
                yield side, t
