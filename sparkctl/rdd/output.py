"""saveAsTextFile and saveAsPickleFile, with each task's output committed once.

A task attempt writes into ``_temporary/<attempt>/`` and renames its file into place
only when it has written all of it; a retried or duplicate attempt for the same
partition finds the part already committed and discards its copy. The driver writes
``_SUCCESS`` last, after every task committed.

A task's output metrics (Spark's bytesWritten and recordsWritten) count the file it wrote,
as stored (compressed when a codec is set), and the records its writer batched.
"""
from __future__ import annotations

import os
import shutil
from itertools import islice
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sparkctl import serializers
from sparkctl.rdd.codecs import output_codec
from sparkctl.executor import task_metrics

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD



def _prepare_output(rdd: "RDD", path: str) -> str:
    if path.startswith("file:"):
        path = path[len("file://"):] if path.startswith("file://") else path[len("file:"):]
    path = os.path.abspath(path)
    validate = rdd.ctx._conf.get_bool("spark.hadoop.validateOutputSpecs", True)
    if os.path.exists(path):
        if validate:
            raise FileExistsError(f"Output directory file:{path} already exists")
    os.makedirs(os.path.join(path, "_temporary"), exist_ok=True)
    return path


def _finish_output(path: str) -> None:
    shutil.rmtree(os.path.join(path, "_temporary"), ignore_errors=True)
    with open(os.path.join(path, "_SUCCESS"), "wb"):
        pass


class _CommitWriter:
    # write(records, file) -> how many records it wrote
    def __init__(self, path: str, suffix: str, write: Callable[[Iterator[Any], Any], int],
                 compress: Callable[[Any], Any] | None = None) -> None:
        self.path, self.suffix, self.write, self.compress = path, suffix, write, compress

    def __call__(self, it: Iterator[Any]) -> None:
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        assert tc is not None
        part = tc.partitionId()
        final = os.path.join(self.path, f"part-{part:05d}{self.suffix}")
        attempt_dir = os.path.join(self.path, "_temporary", f"attempt_{tc.stageId()}_{part}_{tc.taskAttemptId()}")
        os.makedirs(attempt_dir, exist_ok=True)
        tmp = os.path.join(attempt_dir, os.path.basename(final))
        raw = open(tmp, "wb")
        out: Any = self.compress(raw) if self.compress is not None else raw
        try:
            records = self.write(it, out)
        finally:
            out.close()
            if out is not raw:
                raw.close()
        metrics = task_metrics.current()
        metrics.output_records_written += records
        metrics.output_bytes_written += os.path.getsize(tmp)
        if os.path.exists(final):  # another attempt of this partition committed first
            shutil.rmtree(attempt_dir, ignore_errors=True)
            return
        os.replace(tmp, final)
        shutil.rmtree(attempt_dir, ignore_errors=True)


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


def save_as_text_file(rdd: "RDD", path: str, codec: str | None) -> None:
    suffix, compress = output_codec(codec) if codec else ("", None)
    out = _prepare_output(rdd, path)
    rdd.ctx.run_job(rdd, _CommitWriter(out, suffix, _write_text, compress))
    _finish_output(out)


def save_as_pickle_file(rdd: "RDD", path: str, batch_size: int) -> None:
    out = _prepare_output(rdd, path)
    rdd.ctx.run_job(rdd, _CommitWriter(out, "", _PickleWriter(batch_size)))
    _finish_output(out)
