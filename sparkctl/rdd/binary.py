"""RDDs of raw bytes: ``sc.binaryFiles`` (one record per file) and ``sc.binaryRecords``
(fixed-length records), as PySpark's.

``binaryFiles`` gives ``("file:" + absolute path, bytes)`` per file, as ``wholeTextFiles``
does for text; the bytes are the file's as stored (no decompression, as Hadoop's
``PortableDataStream``). ``binaryRecords`` cuts files into records of ``recordLength``
bytes; a byte range split of a file owns the records that start in it (Hadoop's
``FixedLengthInputFormat``), so no record is read twice or cut in two. Gzip files are read
decompressed and whole, as Hadoop reads a compressed file it cannot split.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator

from sparkctl.rdd.codecs import is_compressed
from sparkctl.executor import task_metrics
from sparkctl.rdd.dependencies import Partition
from sparkctl.rdd.sources import (READ_CHUNK, FileGroupPartition, FileSplit, FileGroupsRDD, FileSplitsRDD,
                                  count_file_read, open_input)

if TYPE_CHECKING:
    from sparkctl.taskcontext import TaskContext


class BinaryFilesRDD(FileGroupsRDD):
    """(URL, content as bytes) per file; a local file's URL is ``file:`` and its absolute path."""

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, FileGroupPartition)
        for fs, status in split.files:
            with fs.open(status.path, "rb") as f:
                data = f.read()
            count_file_read(status)
            yield (fs.url(status.path), data)


class BinaryRecordsRDD(FileSplitsRDD):
    """Records of ``record_length`` bytes each, read from flat binary files."""

    split_bzip2 = False  # a compressed file is read whole

    def __init__(self, ctx: Any, path: str, record_length: int, min_partitions: int) -> None:
        if not isinstance(record_length, int) or record_length <= 0:
            raise ValueError(f"Fixed record length {record_length} is invalid. It should be set to a value "
                             f"greater than zero")
        super().__init__(ctx, path, min_partitions)
        self.record_length = record_length

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, FileSplit)
        size = self.record_length
        if is_compressed(split.path):
            with open_input(split.fs, split.path) as f:
                yield from _records(f, size, None, split.path)
            return
        # the records that start in [start, start + length)
        first = -(-split.start // size)
        last = -(-(split.start + split.length) // size)
        if last <= first:
            return
        with split.fs.open(split.path, "rb") as f:
            f.seek(first * size)
            yield from _records(f, size, (last - first) * size, split.path)


def _records(f: Any, size: int, limit: int | None, path: str) -> Iterator[bytes]:
    """Records of *size* bytes from *f*, at most *limit* bytes of them (None: to the end);
    counted as the task's input a chunk at a time (for a gzip file, its bytes unpacked)."""
    chunk = max(size, READ_CHUNK // size * size)
    remaining = limit
    metrics = task_metrics.current()
    while remaining is None or remaining > 0:
        want = chunk if remaining is None else min(chunk, remaining)
        buf = f.read(want)
        if not buf:
            return
        if remaining is not None:
            remaining -= len(buf)
        whole = len(buf) // size * size
        metrics.input_bytes_read += len(buf)
        metrics.input_records_read += whole // size
        yield from [buf[i:i + size] for i in range(0, whole, size)]
        if whole != len(buf):
            more = f.read(size - (len(buf) - whole)) if remaining is None else b""
            tail = buf[whole:] + more
            if len(tail) == size:
                metrics.input_bytes_read += len(more)
                metrics.input_records_read += 1
                yield tail
                continue
            raise ValueError(f"Partial record (length = {len(tail)}, fixed record length = {size}) found at the "
                             f"end of {path}")
