"""saveAsTextFile and saveAsPickleFile, with each task's output committed once.

A task attempt writes into ``_temporary/<attempt>/`` and renames its file into place
only when it has written all of it; a retried or duplicate attempt for the same
partition finds the part already committed and discards its copy. The driver writes
``_SUCCESS`` last, after every task committed.
"""
from __future__ import annotations

import gzip
import os
import shutil
from typing import TYPE_CHECKING, Any, Callable, Iterator

from sparkctl import serializers

if TYPE_CHECKING:
    from sparkctl.rdd.rdd import RDD

_CODECS = {
    "org.apache.hadoop.io.compress.GzipCodec": ".gz",
    "org.apache.hadoop.io.compress.DefaultCodec": ".gz",
    "gzip": ".gz",
    "gz": ".gz",
}


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
    def __init__(self, path: str, suffix: str, write: Callable[[Iterator[Any], Any], None], gz: bool) -> None:
        self.path, self.suffix, self.write, self.gz = path, suffix, write, gz

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
        out: Any = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6) if self.gz else raw
        try:
            self.write(it, out)
        finally:
            out.close()
            if out is not raw:
                raw.close()
        if os.path.exists(final):  # another attempt of this partition committed first
            shutil.rmtree(attempt_dir, ignore_errors=True)
            return
        os.replace(tmp, final)
        shutil.rmtree(attempt_dir, ignore_errors=True)


def _write_text(it: Iterator[Any], out: Any) -> None:
    buf: list[str] = []
    for x in it:
        buf.append(x if isinstance(x, str) else (x.decode("utf-8") if isinstance(x, bytes) else str(x)))
        if len(buf) >= 4096:
            out.write(("\n".join(buf) + "\n").encode("utf-8"))
            buf.clear()
    if buf:
        out.write(("\n".join(buf) + "\n").encode("utf-8"))


class _PickleWriter:
    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def __call__(self, it: Iterator[Any], out: Any) -> None:
        serializers.write_batches(out, it, max(1, self.batch_size))


def save_as_text_file(rdd: "RDD", path: str, codec: str | None) -> None:
    suffix = ""
    if codec:
        if codec not in _CODECS:
            raise ValueError(f"unknown compression codec {codec!r}; use one of {sorted(_CODECS)}")
        suffix = _CODECS[codec]
    out = _prepare_output(rdd, path)
    rdd.ctx.run_job(rdd, _CommitWriter(out, suffix, _write_text, bool(suffix)))
    _finish_output(out)


def save_as_pickle_file(rdd: "RDD", path: str, batch_size: int) -> None:
    out = _prepare_output(rdd, path)
    rdd.ctx.run_job(rdd, _CommitWriter(out, "", _PickleWriter(batch_size), False))
    _finish_output(out)
