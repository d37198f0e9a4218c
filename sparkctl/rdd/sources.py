"""RDDs that read data: a driver-side collection, a range, text files, pickle files.

Files are named by URLs (``sparkctl.fs``): local paths, ``s3a://``, ``gs://``, ``memory://``...
The driver lists them and cuts the splits; each task opens its own file through the
filesystem it carries.

Text files are cut into byte ranges the way Hadoop's line reader does (a split skips
the partial line it starts in; it reads past its end to finish its last line), and each
range is read in large blocks and split with C-level ``str.split``: a Python call per
line would cost more than the user's whole pipeline.

File readers count the task's input metrics (Spark's bytesRead and recordsRead) per block
they read, never per record: a split counts the bytes of its own byte range (so a file's
splits add up to its size) and the lines it yields.
"""
from __future__ import annotations

import posixpath
from functools import partial
from itertools import chain
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from sparkctl import serializers
from sparkctl.fs import LOCAL, FileStatus, FileSystem, filesystem, filesystem_for
from sparkctl.rdd.codecs import decompressing, is_compressed
from sparkctl.executor import task_metrics
from sparkctl.rdd.dependencies import Partition
from sparkctl.rdd.rdd import RDD

if TYPE_CHECKING:
    from sparkctl.taskcontext import TaskContext

# Hadoop's fs.local.block.size, so split counts match Spark's (a name of this module, as tests change it)
LOCAL_BLOCK_SIZE = filesystem.LOCAL_BLOCK_SIZE
READ_CHUNK = 4 * 1024 * 1024


class SlicePartition(Partition):
    __slots__ = ("data",)

    def __init__(self, index: int, data: Sequence[Any]) -> None:
        super().__init__(index)
        self.data = data


PARALLELIZE_BATCH = 1024  # PySpark's default pickling batch for parallelize


def slice_bounds(data: Sequence[Any], num_slices: int) -> list[tuple[int, int]]:
    """The [lo, hi) element range of each slice, cut where PySpark cuts.

    A ``range`` is cut by element position. Any other collection PySpark first pickles in
    batches of ``max(1, min(len // num_slices, 1024))`` elements and then cuts the list of
    batches by position, so uneven slices get their extra batch at the end:
    ``parallelize([0..9], 4)`` is ``[[0, 1], [2, 3], [4, 5], [6, 7, 8, 9]]``.
    """
    n = len(data)
    if isinstance(data, range):
        return [(i * n // num_slices, (i + 1) * n // num_slices) for i in range(num_slices)]
    batch = max(1, min(n // num_slices, PARALLELIZE_BATCH))
    num_batches = -(-n // batch)
    return [(min(n, i * num_batches // num_slices * batch), min(n, (i + 1) * num_batches // num_slices * batch))
            for i in range(num_slices)]


class ParallelCollectionRDD(RDD):
    """A driver-side sequence cut into slices; each task carries only its own slice."""

    def __init__(self, ctx: Any, data: Sequence[Any], num_slices: int) -> None:
        super().__init__(ctx, [])
        num_slices = max(1, num_slices)
        self._slices = [SlicePartition(i, data[lo:hi])
                        for i, (lo, hi) in enumerate(slice_bounds(data, num_slices))]

    def _get_partitions(self) -> list[Partition]:
        return list(self._slices)

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_slices", None)
        return state

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, SlicePartition)
        return iter(split.data)


def list_inputs(path: str, conf: Any) -> list[tuple[FileSystem, FileStatus]]:
    """Comma-separated URLs, directories and globs, as the data files they name, each with
    its filesystem (read with *conf*'s settings: credentials, endpoints)."""
    found: list[tuple[FileSystem, FileStatus]] = []
    for part in path.split(","):
        part = part.strip()
        if part:
            fs = filesystem_for(part, conf)
            found += [(fs, status) for status in fs.expand(part)]
    return found


def input_files(ctx: Any, path: str) -> list[tuple[FileSystem, FileStatus]]:
    """list_inputs with the context's settings; an empty path is a missing input."""
    if not path.strip():
        raise FileNotFoundError(f"Input path does not exist: {path!r}")
    return list_inputs(path, getattr(ctx, "_conf", None))


class FileSplit(Partition):
    __slots__ = ("fs", "path", "start", "length", "hosts")

    def __init__(self, index: int, fs: FileSystem, path: str, start: int, length: int,
                 hosts: tuple[str, ...] = ()) -> None:
        super().__init__(index)
        self.fs = fs
        self.path = path
        self.start = start
        self.length = length
        self.hosts = hosts  # where the filesystem says the bytes are (HDFS), for task locality


def file_splits(files: list[tuple[FileSystem, FileStatus]], min_partitions: int,
                split_bzip2: bool = True) -> list[FileSplit]:
    """Hadoop's FileInputFormat split sizing: goal = total / minPartitions, capped by the
    filesystem's block size; a file's last split may be up to 10% larger. Compressed files
    are not split, except bzip2 (cut at its blocks, as Hadoop's BZip2Codec)."""
    goal = sum(status.size for _, status in files) // max(1, min_partitions)
    splits: list[FileSplit] = []
    for fs, status in files:
        f, size = status.path, status.size
        if (is_compressed(f) and not (split_bzip2 and splittable(f))) or size == 0:
            splits.append(FileSplit(len(splits), fs, f, 0, size))
            continue
        block = LOCAL_BLOCK_SIZE if fs is LOCAL else fs.block_size
        split_size = max(1, min(goal, block))
        # as many splits as Hadoop makes, but of equal size: Hadoop's short last split
        # leaves a task slot idle while another reads two full ones
        count = 1
        pos = 0
        while size - pos > split_size * 1.1:
            pos += split_size
            count += 1
        for i in range(count):
            start, end = i * size // count, (i + 1) * size // count
            hosts = () if fs is LOCAL else tuple(fs.block_hosts(f, start, end - start))
            splits.append(FileSplit(len(splits), fs, f, start, end - start, hosts))
    return splits


def splittable(path: str) -> bool:
    """A compressed file Hadoop splits anyway: bzip2, at its blocks."""
    return path.endswith(".bz2")


def _read_range(fs: FileSystem, path: str, start: int, length: int) -> Iterator[bytes]:
    """Blocks of whole lines: the lines that start in (start, start+length], plus the
    first line when start is 0, Hadoop's rule, so neighbouring splits neither overlap nor
    leave a gap. The bytes of the range it gets through count as the task's input."""
    end = start + length
    metrics = task_metrics.current()
    with fs.open(path, "rb") as f:
        pos = 0
        if start > 0:
            f.seek(start)
            skipped = f.readline()  # the line we start in belongs to the previous split
            metrics.input_bytes_read += min(len(skipped), length)
            if not skipped.endswith(b"\n"):
                return
            pos = start + len(skipped)
            if pos > end:
                return
        remaining = end - pos

        def chunks() -> Iterator[bytes]:
            nonlocal remaining
            while remaining > 0:
                block = f.read(min(READ_CHUNK, remaining))
                if not block:
                    return
                remaining -= len(block)
                metrics.input_bytes_read += len(block)
                yield block

        # finish the line that crosses (or starts at) the end
        yield from _line_blocks(chunks(), lambda carry: carry + f.readline())


def _line_blocks(chunks: Iterator[bytes], finish: Callable[[bytes], bytes] = lambda carry: carry) -> Iterator[bytes]:
    """Re-cut byte chunks into blocks of whole lines; ``finish`` completes the last,
    partial line (by default it is kept as it is)."""
    carry = b""
    for block in chunks:
        if carry:
            block = carry + block
        cut = block.rfind(b"\n")
        if cut < 0:
            carry = block
            continue
        carry = block[cut + 1:]
        yield block[:cut + 1]
    tail = finish(carry)
    if tail:
        yield tail


def _split_lines(block: bytes, use_unicode: bool) -> list[Any]:
    if use_unicode:
        text = block.decode("utf-8", "replace")
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
    else:
        if b"\r" in block:  # Hadoop's reader ends lines at \r\n, \n and a lone \r alike
            block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = block.split(b"\n")  # type: ignore[assignment]
    if lines and not lines[-1]:
        lines.pop()
    task_metrics.current().input_records_read += len(lines)
    return lines


class FileSplitsRDD(RDD):
    """An RDD read from the byte-range splits of files (one partition a split)."""

    split_bzip2 = True  # its reader reads a range of a bzip2 file

    def __init__(self, ctx: Any, path: str, min_partitions: int) -> None:
        super().__init__(ctx, [])
        self.path = path
        self._splits = file_splits(input_files(ctx, path), min_partitions, self.split_bzip2)

    def _get_partitions(self) -> list[Partition]:
        return list(self._splits)

    def preferred_hosts(self, partition: int) -> tuple[str, ...]:
        """The hosts holding the partition's bytes, where the filesystem reports them."""
        return self._splits[partition].hosts


class TextFileRDD(FileSplitsRDD):
    def __init__(self, ctx: Any, path: str, min_partitions: int, use_unicode: bool = True) -> None:
        super().__init__(ctx, path, min_partitions)
        self.use_unicode = use_unicode

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, FileSplit)
        use_unicode = self.use_unicode
        if splittable(split.path):
            blocks = _bzip2_range(split.fs, split.path, split.start, split.length)
        elif is_compressed(split.path):
            return self._compressed_lines(split.fs, split.path)
        else:
            blocks = _read_range(split.fs, split.path, split.start, split.length)
        return chain.from_iterable(map(partial(_split_lines, use_unicode=use_unicode), blocks))

    def _compressed_lines(self, fs: FileSystem, path: str) -> Iterator[Any]:
        with fs.open(path, "rb") as raw, decompressing(raw, path) as f:
            for block in _line_blocks(iter(partial(f.read, READ_CHUNK), b"")):
                yield from _split_lines(block, self.use_unicode)
            # the compressed bytes, as Hadoop's file system counts a compressed input
            task_metrics.current().input_bytes_read += raw.tell()


def _bzip2_range(fs: FileSystem, path: str, start: int, length: int) -> Iterator[bytes]:
    """The line blocks of one byte range of a bzip2 file, its compressed bytes counted as input."""
    from sparkctl.rdd.bzip2_split import bzip2_line_blocks
    with fs.open(path, "rb") as raw:
        yield from bzip2_line_blocks(raw, start, length)  # type: ignore[arg-type]
        task_metrics.current().input_bytes_read += length


class FileGroupPartition(Partition):
    __slots__ = ("files",)

    def __init__(self, index: int, files: list[tuple[FileSystem, FileStatus]]) -> None:
        super().__init__(index)
        self.files = files

    @property
    def paths(self) -> list[str]:
        return [status.path for _, status in self.files]


def _group_files(files: list[Any], n: int) -> list[list[Any]]:
    n = max(1, min(n, len(files))) if files else 1
    return [files[i * len(files) // n:(i + 1) * len(files) // n] for i in range(n)]


def open_input(fs: FileSystem, path: str) -> Any:
    """*path* for reading, decompressed by its extension (sparkctl.rdd.codecs)."""
    raw = fs.open(path, "rb")
    try:
        return decompressing(raw, path)
    except BaseException:
        raw.close()
        raise


class FileGroupsRDD(RDD):
    """An RDD of whole files, grouped into partitions (one partition a group of files)."""

    def __init__(self, ctx: Any, path: str, min_partitions: int) -> None:
        super().__init__(ctx, [])
        self._groups = _group_files(input_files(ctx, path), min_partitions)

    def _get_partitions(self) -> list[Partition]:
        return [FileGroupPartition(i, g) for i, g in enumerate(self._groups)]


class WholeTextFilesRDD(FileGroupsRDD):
    """(URL, whole content) per file; a local file's URL is ``file:`` and its absolute path."""

    def __init__(self, ctx: Any, path: str, min_partitions: int, use_unicode: bool = True) -> None:
        super().__init__(ctx, path, min_partitions)
        self.use_unicode = use_unicode

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, FileGroupPartition)
        for fs, status in split.files:
            with open_input(fs, status.path) as f:
                data = f.read()
            count_file_read(status)
            yield (fs.url(status.path), data.decode("utf-8", "replace") if self.use_unicode else data)


class PickleFileRDD(RDD):
    """Reads what saveAsPickleFile wrote: each part file a run of pickled batches."""

    def __init__(self, ctx: Any, path: str, min_partitions: int) -> None:
        super().__init__(ctx, [])
        self._files = [(fs, st) for fs, st in input_files(ctx, path) if posixpath.basename(st.path).startswith("part-")]

    def _get_partitions(self) -> list[Partition]:
        return [FileGroupPartition(i, [f]) for i, f in enumerate(self._files)]

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        assert isinstance(split, FileGroupPartition)
        for fs, status in split.files:
            yield from _counted_records(fs, status)


class CheckpointRDD(RDD):
    """A checkpointed RDD's partitions, read back from its checkpoint directory (a URL)."""

    def __init__(self, ctx: Any, directory: str, num_partitions: int, partitioner: Any) -> None:
        super().__init__(ctx, [])
        self.fs = filesystem_for(directory, getattr(ctx, "_conf", None))
        self.directory = self.fs.strip(directory)
        self.num = num_partitions
        self.partitioner = partitioner

    def _get_partitions(self) -> list[Partition]:
        return [Partition(i) for i in range(self.num)]

    def part_path(self, index: int) -> str:
        return posixpath.join(self.directory, f"part-{index:05d}")

    def compute(self, split: Partition, tc: "TaskContext") -> Iterator[Any]:
        # not counted as input: Spark counts none for a checkpoint read back either
        with self.fs.open(self.part_path(split.index), "rb") as f:
            yield from serializers.load_records(f)


def count_file_read(status: FileStatus, records: int = 1) -> None:
    """A whole file was read as ``records`` records: its size (as stored) is the input."""
    metrics = task_metrics.current()
    metrics.input_bytes_read += status.size
    metrics.input_records_read += records


def _counted_records(fs: FileSystem, status: FileStatus) -> Iterator[Any]:
    """The records of a file saveAsPickleFile wrote, counted as input a batch at a time."""
    metrics = task_metrics.current()
    with open_input(fs, status.path) as f:
        for batch in serializers.read_batches(f):
            metrics.input_records_read += len(batch)
            yield from batch
    metrics.input_bytes_read += status.size
