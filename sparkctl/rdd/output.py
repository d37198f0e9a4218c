"""saveAsTextFile and saveAsPickleFile, with each partition's output committed once.

Every task attempt writes its part under an attempt-private name,
``_temporary/0/_temporary/attempt_<stage>_<partition>_<task>/part-NNNNN``. Then:

- on a local filesystem the attempt renames its file into place, unless another attempt
  of the partition got there first (rename is atomic there);
- on an object store (no rename; an object appears whole when its upload completes) the
  task returns its attempt's name, and the driver, once the job has succeeded, copies
  each partition's winning attempt to ``part-NNNNN`` (a server-side copy), once.

Either way the attempts' directory is deleted and ``_SUCCESS`` is written last. A failed,
killed or losing speculative attempt leaves nothing outside ``_temporary``, which readers
skip; a failed job deletes ``_temporary`` too.

A task's output metrics (Spark's bytesWritten and recordsWritten) count the file it wrote,
as stored (compressed when a codec is set), and the records its writer batched.
"""
from __future__ import annotations

import os
import posixpath
import shutil
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sparkctl import serializers
from sparkctl.fs import LOCAL, FileSystem, filesystem_for
from sparkctl.rdd.codecs import output_codec
from sparkctl.executor import task_metrics

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD



class Output:
    """Where a save writes: the directory's filesystem and path. ``mode`` is the DataFrame
    writer's: ``error`` (an existing directory is refused), ``overwrite`` (it is deleted
    first), ``append`` (new parts join it)."""

    def __init__(self, ctx: Any, url: str, mode: str = "error") -> None:
        self.fs = filesystem_for(url, ctx._conf)
        path = self.fs.strip(url)
        self.path = os.path.abspath(path) if self.fs is LOCAL else path
        self.temporary = posixpath.join(self.path, "_temporary")
        if self.fs.exists(self.path):
            if mode == "overwrite":
                self.fs.rm(self.path, recursive=True)
            elif mode == "error" and ctx._conf.get_bool("spark.hadoop.validateOutputSpecs", True):
                raise FileExistsError(f"Output directory {self.fs.url(self.path)} already exists")
        self.fs.makedirs(self.temporary if self.fs is LOCAL else self.path)

    def commit(self, attempts: list[Any]) -> None:
        """The job's commit, on the driver: on an object store, each partition's winning
        attempt's files are copied to their final names (server-side), once; then the
        attempts go, and ``_SUCCESS`` is written last."""
        chosen = [pair for a in attempts if a for pair in a]
        self.fs.copy([src for src, _ in chosen], [dst for _, dst in chosen])
        self.fs.rm(self.temporary, recursive=True)
        self.fs.write_bytes(posixpath.join(self.path, "_SUCCESS"), b"")

    def abort(self) -> None:
        """The job failed: no attempt's output stays (what was committed stays, as in Hadoop)."""
        self.fs.rm(self.temporary, recursive=True)


class _CountingWriter:
    """Counts the bytes written through it (the part as stored, for the task's output metrics)."""

    def __init__(self, raw: Any) -> None:
        self.raw, self.written = raw, 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.close()


#: write_files(fs, attempt directory, partition, records) -> [(file name under the output, records, bytes)]
WriteFiles = Callable[[FileSystem, str, int, Iterator[Any]], "list[tuple[str, int, int]]"]


class _OneFile:
    """The RDD savers' writer: one ``part-NNNNN`` file a partition, compressed if asked."""

    def __init__(self, suffix: str, write: Callable[[Iterator[Any], Any], int],
                 compress: Callable[[Any], Any] | None = None) -> None:
        self.suffix, self.write, self.compress = suffix, write, compress

    def __call__(self, fs: FileSystem, attempt_dir: str, part: int, it: Iterator[Any]) -> list[tuple[str, int, int]]:
        name = f"part-{part:05d}{self.suffix}"
        raw = _CountingWriter(fs.open(posixpath.join(attempt_dir, name), "wb"))
        out: Any = self.compress(raw) if self.compress is not None else raw
        try:
            records = self.write(it, out)
        finally:
            out.close()
            if out is not raw:
                raw.close()
        return [(name, records, raw.written)]


class _CommitWriter:
    def __init__(self, output: Output, write_files: WriteFiles) -> None:
        self.fs, self.path, self.write_files = output.fs, output.path, write_files

    def __call__(self, it: Iterator[Any]) -> list[tuple[str, str]] | None:
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        assert tc is not None
        part = tc.partitionId()
        attempt_dir = posixpath.join(self.path, "_temporary", "0", "_temporary",
                                     f"attempt_{tc.stageId()}_{part}_{tc.taskAttemptId()}")
        if self.fs is LOCAL:
            os.makedirs(attempt_dir, exist_ok=True)
        written = self.write_files(self.fs, attempt_dir, part, it)
        metrics = task_metrics.current()
        for _, records, size in written:
            metrics.output_records_written += records
            metrics.output_bytes_written += size
        pairs = [(posixpath.join(attempt_dir, name), posixpath.join(self.path, name)) for name, _, _ in written]
        if self.fs is not LOCAL:
            return pairs  # the driver commits the first attempt to finish, once
        for tmp, final in pairs:
            if os.path.exists(final):  # another attempt of this partition committed first
                continue
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(tmp, final)
        shutil.rmtree(attempt_dir, ignore_errors=True)
        return None


def _write_text(it: Iterator[Any], out: Any) -> int:
    buf: list[str] = []
    written = 0
    for x in it:
        buf.append(x if isinstance(x, str) else (x.decode("utf-8") if isinstance(x, bytes) else str(x)))
        if len(buf) >= 4096:
            out.write(("\n".join(buf) + "\n").encode("utf-8"))
            written += len(buf)
            buf.clear()
    if buf:
        out.write(("\n".join(buf) + "\n").encode("utf-8"))
        written += len(buf)
    return written


class _PickleWriter:
    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def __call__(self, it: Iterator[Any], out: Any) -> int:
        """Batches of ``batch_size`` records, as serializers.write_batches writes them;
        returns how many records."""
        size = max(1, self.batch_size)
        written = 0
        while True:
            batch = list(islice(it, size))
            if not batch:
                return written
            serializers.write_batch(out, batch)
            written += len(batch)


def save(rdd: "RDD", url: str, write_files: WriteFiles, mode: str = "error") -> None:
    output = Output(rdd.ctx, url, mode)
    try:
        attempts = rdd.ctx.run_job(rdd, _CommitWriter(output, write_files))
    except BaseException:
        output.abort()
        raise
    output.commit(attempts)


def save_as_text_file(rdd: "RDD", path: str, codec: str | None) -> None:
    suffix, compress = output_codec(codec) if codec else ("", None)
    save(rdd, path, _OneFile(suffix, _write_text, compress))


def save_as_pickle_file(rdd: "RDD", path: str, batch_size: int) -> None:
    save(rdd, path, _OneFile("", _PickleWriter(batch_size)))
