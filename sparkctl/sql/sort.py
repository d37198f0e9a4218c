"""ORDER BY in bounded memory: sorted runs spilled as Arrow IPC, merged a batch at a time.

A global sort's reduce task reads every table. While they fit the task's memory budget it
sorts them at once (``sort_table``). Past it, each budget's worth is sorted and written as
a run (an IPC stream of batches of about ``budget / RUN_BATCHES`` bytes, the sort keys
evaluated once and kept beside the rows), and the runs are merged, ``FAN_IN`` at a time
(more runs are first merged into longer ones):

```
 runs: [r0 batch][r0 batch]...   merge round: the run whose current batch ends lowest
       [r1 batch]...             bounds what can go out; every row held that sorts at
       [r2 batch]...             or before that row is emitted (one vectorized sort of
                                 the held rows), the rest waits for the next round
```

Each round loads the next batch of the run it exhausted, so a merge holds about two
batches a run. Ties between runs are broken by run and row number, which makes the
bounding row's run empty after the round.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.sql.expressions import Attribute, as_array
from sparkctl.sql.spill import IpcRunWriter, SpillContext, SpillFile

RUN_BATCHES = 32  # a run's batch: about budget / RUN_BATCHES bytes
FAN_IN = 8  # runs merged together: FAN_IN x 2 batches stay well inside the budget
_RUN, _ROW = "__sort_run", "__sort_row"


def _nan_flagged(order: Any) -> bool:
    """Whether the order sorts with a NaN flag: a descending FLOAT/DOUBLE key. pyarrow puts
    NaN after every number whichever the direction, Spark counts it the greatest value, so
    only a descending sort needs the flag."""
    if order.ascending:
        return False
    try:
        return pa.types.is_floating(order.child.dtype)
    except NotImplementedError:  # a column read by name (a window's partition key): NaN sort together anyway
        return False


def sort_keys(orders: list[Any], columns: list[str] | None = None) -> list[tuple[str, str]]:
    """The sort keys over the columns ``with_sort_columns`` appends (of *columns*, where given:
    a NaN flag left out for a table without NaN)."""
    keys = []
    for i, o in enumerate(orders):
        direction = "ascending" if o.ascending else "descending"
        keys.append((f"__sn{i}", "descending" if o.nulls_first else "ascending"))
        if _nan_flagged(o) and (columns is None or f"__sq{i}" in columns):
            keys.append((f"__sq{i}", direction))
        keys.append((f"__sv{i}", direction))
    return keys


def with_sort_columns(table: pa.Table, orders: list[Any], only_where_nan: bool = False) -> pa.Table:
    """*table* with each order's null flag, NaN flag (descending FLOAT/DOUBLE keys; with
    *only_where_nan*, only where the table holds a NaN) and value appended (evaluated once,
    kept in runs)."""
    work = table
    for i, o in enumerate(orders):
        value = as_array(o.child.eval(table), table.num_rows)
        work = work.append_column(f"__sn{i}", pc.is_null(value))
        if _nan_flagged(o):
            nan = pc.fill_null(pc.is_nan(value), False) if pa.types.is_floating(value.type) \
                else pa.nulls(len(value), pa.bool_()).fill_null(False)
            if not only_where_nan or pc.any(nan).as_py():
                work = work.append_column(f"__sq{i}", nan)
        work = work.append_column(f"__sv{i}", value)
    return work


def sort_partition(tables: Iterator[pa.Table], orders: list[Any], attrs: list[Attribute],
                   ctx: SpillContext | None = None) -> Iterator[pa.Table]:
    """This partition's rows in order: sorted in memory, or merged from spilled runs."""
    from sparkctl.sql.execution import concat, sort_table
    ctx = ctx or SpillContext()
    columns = [a.column for a in attrs]
    held: list[pa.Table] = []
    held_bytes = 0
    runs: list[SpillFile] = []
    for t in tables:
        if not t.num_rows:
            continue
        held.append(t)
        held_bytes += t.nbytes
        ctx.note_held(held_bytes)
        if held_bytes > ctx.budget:
            runs.append(_write_run(ctx, concat(held, attrs), orders))
            held, held_bytes = [], 0
    if not runs:
        if held:
            yield sort_table(concat(held, attrs), orders)
        return
    if held:
        runs.append(_write_run(ctx, concat(held, attrs), orders))
    del held
    keys = sort_keys(orders)
    while len(runs) > FAN_IN:  # merge the first runs into a longer one until one merge holds them all
        writer = IpcRunWriter(ctx)
        rows = _batch_rows(ctx, runs[0])
        for out in merge_runs(runs[:FAN_IN], keys):
            writer.write(out, rows)
        runs = runs[FAN_IN:] + [writer.close()]
    for out in merge_runs(runs, keys):
        yield out.select(columns)


def _batch_rows(ctx: SpillContext, run: SpillFile) -> int:
    """Rows of a run's batch: about budget / RUN_BATCHES bytes."""
    return max(1, ctx.budget // RUN_BATCHES // max(1, run.memory_bytes // max(1, run.rows)))


def _write_run(ctx: SpillContext, table: pa.Table, orders: list[Any]) -> SpillFile:
    work = with_sort_columns(table, orders)
    work = work.take(pc.sort_indices(work, sort_keys=sort_keys(orders)))
    row_bytes = max(1, work.nbytes // max(1, work.num_rows))
    writer = IpcRunWriter(ctx)
    writer.write(work, max(1, ctx.budget // RUN_BATCHES // row_bytes))
    return writer.close()


def merge_runs(runs: list[SpillFile], keys: list[tuple[str, str]]) -> Iterator[pa.Table]:
    """The k-way merge of sorted runs (tables with the key columns), a round at a time."""
    sources = [r.tables() for r in runs]
    current: list[pa.Table | None] = [next(s, None) for s in sources]
    tie = [(_RUN, "ascending"), (_ROW, "ascending")]
    while True:
        live = [i for i, t in enumerate(current) if t is not None]
        if len(live) <= 1:
            for i in live:
                yield current[i]  # type: ignore[misc]
                yield from sources[i]
            return
        tagged = []
        for i in live:
            t = current[i]
            assert t is not None
            tagged.append(t.append_column(_RUN, pa.array(np.full(t.num_rows, i, dtype=np.int32)))
                          .append_column(_ROW, pa.array(np.arange(t.num_rows, dtype=np.int64))))
        # the run whose held rows end lowest: nothing after its last row can go out yet
        lasts = pa.concat_tables([t.slice(t.num_rows - 1, 1) for t in tagged])
        first = int(pc.sort_indices(lasts, sort_keys=keys + tie)[0].as_py())
        held = pa.concat_tables(tagged)
        order = pc.sort_indices(held, sort_keys=keys + tie).to_numpy()
        offsets = np.cumsum([0] + [t.num_rows for t in tagged])
        bound_row = offsets[first + 1] - 1  # the bounding run's last row, in `held`
        pos = int(np.flatnonzero(order == bound_row)[0])
        yield held.take(pa.array(order[:pos + 1])).drop_columns([_RUN, _ROW])
        rest = order[pos + 1:]
        run_of = np.repeat(np.array(live), [t.num_rows for t in tagged])[rest]
        for i in live:
            mine = rest[run_of == i]
            current[i] = held.take(pa.array(mine)).drop_columns([_RUN, _ROW]) if len(mine) else None
        for i in live:
            if current[i] is None:
                current[i] = next(sources[i], None)
