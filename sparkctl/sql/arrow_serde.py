"""The DataFrame shuffle's record format: Arrow IPC streams, not pickled tables.

An exchange's map task emits ``(reduce partition, table)`` (or ``(partition, (tag, table))``
for a join, whose two sides share one shuffle). ``ArrowShuffleSerializer`` is set on the
exchange's ``ShuffleDependency``; the shuffle writer it makes keeps the shuffle file layout
(one data file, one index, each reducer's slice a run of length-prefixed frames) but every
frame is one Arrow IPC stream: a schema message and the record batches of the tables
buffered for that reducer, their buffers compressed by Arrow's own IPC compression (lz4
frame or zstd, as ``spark.shuffle.compress`` and ``spark.io.compression.codec`` say). A
join side's tag rides in the stream's schema metadata.

```
 map task ──(p, table)──▶ ArrowPartitionedWriter ──▶ per reducer: [len][IPC stream]...
                          (tables pending per reducer,   spilled past the budget and copied
                           one stream each ~FLUSH bytes)  into the data file, as RDD shuffles
 reduce task ◀── serializers.loads_batch: a frame starting 0xFF is an IPC stream, read
                 zero-copy over the frame's bytes into one Table
```

The reader side needs no setting: an IPC stream starts with its continuation marker
(0xFFFFFFFF), which no pickle (0x80) or codec frame starts with.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import pyarrow as pa

from sparkctl.executor import task_metrics
from sparkctl.storage import compression, sizing
from sparkctl.storage.shuffle import PartitionedWriter

TAG_KEY = b"sparkctl.tag"  # the schema metadata key of a join side's tag (serializers reads it back)
# bytes of tables a reducer's pending list gathers before they become one IPC stream:
# large enough that a schema message per stream costs nothing, small enough to hold
FLUSH_BYTES = 4 << 20


def ipc_options(codec: compression.Codec | None) -> pa.ipc.IpcWriteOptions:
    """IPC write options with Arrow's buffer compression for *codec* (None: uncompressed)."""
    if codec is None:
        return pa.ipc.IpcWriteOptions(use_threads=False)
    return pa.ipc.IpcWriteOptions(compression="lz4" if codec.name == "lz4" else "zstd", use_threads=False)


def encode_stream(tables: list[pa.Table], options: pa.ipc.IpcWriteOptions, tag: str | None = None) -> pa.Buffer:
    """*tables* (one schema) as one Arrow IPC stream."""
    schema = tables[0].schema
    if tag is not None:
        schema = schema.with_metadata({TAG_KEY: tag.encode()})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema, options=options) as writer:
        for t in tables:
            writer.write_table(t if tag is None else t.replace_schema_metadata(schema.metadata))
    return sink.getvalue()


class ArrowPartitionedWriter(PartitionedWriter):
    """``PartitionedWriter`` for tables: frames are IPC streams, records counted as rows."""

    def __init__(self, num_partitions: int, partition_of: Callable[[Any], int], budget: int,
                 spill_dir: str, batch_size: int = 1000) -> None:
        super().__init__(num_partitions, partition_of, budget, spill_dir, batch_size)
        self.options = ipc_options(self.codec)
        # per reducer: (tag, schema) of the pending tables, the tables, their bytes
        self.waiting: list[list[pa.Table]] = [[] for _ in range(num_partitions)]
        self.pending_key: list[Any] = [None] * num_partitions
        self.pending_bytes = [0] * num_partitions
        self.pending_total = 0

    def write_all(self, records: Iterable[tuple[Any, Any]]) -> None:
        part = self.partition_of
        n = self.n
        for key, value in records:
            p = part(key) if n > 1 else 0
            tag, table = value if isinstance(value, tuple) else (None, value)
            if not table.num_rows:
                continue
            pkey = (tag, table.schema)
            if self.waiting[p] and self.pending_key[p] != pkey:
                self._flush(p)
            self.pending_key[p] = pkey
            self.waiting[p].append(table)
            size = table.nbytes
            self.pending_bytes[p] += size
            self.pending_total += size
            if self.pending_bytes[p] >= FLUSH_BYTES:
                self._flush(p)
            self._check_memory()

    def _flush(self, p: int) -> None:
        tables = self.waiting[p]
        if not tables:
            return
        tag = self.pending_key[p][0]
        data = encode_stream(tables, self.options, tag)
        self.buffers[p] += len(data).to_bytes(4, "little")
        self.buffers[p] += memoryview(data)
        self.buffered += 4 + len(data)
        self.records_written += sum(t.num_rows for t in tables)
        self.pending_total -= self.pending_bytes[p]
        self.waiting[p] = []
        self.pending_bytes[p] = 0

    def _check_memory(self) -> None:
        held = self.buffered + self.pending_total
        task_metrics.current().note_execution_memory(held)
        if held > self.budget or (held >= self.budget >> 3 and sizing.over_rss_limit()):
            self.spill()

    def _pending_estimate(self) -> int:
        return self.pending_total

    def _encode_buckets(self) -> None:
        for p in range(self.n):
            self._flush(p)


class ArrowShuffleSerializer:
    """Set on a ShuffleDependency (``dep.serializer``): its map tasks write tables as IPC."""

    def writer(self, num_partitions: int, partition_of: Callable[[Any], int], budget: int,
               spill_dir: str, batch_size: int) -> PartitionedWriter:
        return ArrowPartitionedWriter(num_partitions, partition_of, budget, spill_dir, batch_size)

    def __repr__(self) -> str:
        return "ArrowShuffleSerializer()"


ARROW_SERIALIZER = ArrowShuffleSerializer()
