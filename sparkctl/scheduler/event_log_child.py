"""The event log writer process: ``python -m sparkctl.scheduler.event_log_child DIR OVERWRITE BLOCKS``.

Reads the batches an :class:`sparkctl.scheduler.event_log_writer.EventLogClient` writes to
its stdin and writes them as Spark's JSON lines (``EventLoggingListener``). A ``stop``
item completes the log (renamed from ``.inprogress``); EOF without one leaves it in
progress, as after a driver that died. Kept out of the ``sparkctl`` package's imports, so
``-m`` runs it fresh.
"""
from __future__ import annotations

import logging
import os
import pickle
import sys
from typing import IO

from sparkctl.scheduler.event_log_writer import HEADER
from sparkctl.scheduler.event_logging import EventLoggingListener
from sparkctl.scheduler.events import TaskEndRaw, TaskStartRaw


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (n,) = HEADER.unpack(head)
    body = stream.read(n)
    return body if len(body) == n else None


def run(directory: str, overwrite: bool, log_block_updates: bool, stream: IO[bytes]) -> int:
    writer = EventLoggingListener(directory, overwrite, log_block_updates) if "://" not in directory else None
    complete = False
    try:
        while not complete:
            frame = _read_frame(stream)
            if frame is None:
                break
            for item in pickle.loads(frame):
                kind = item[0]
                if kind == "fs":  # the log goes to a URL: its filesystem comes first
                    writer = EventLoggingListener(directory, overwrite, log_block_updates, item[1])
                    continue
                assert writer is not None, "the event log's filesystem was not sent"
                if kind == "event":
                    writer.on_event(item[1])
                elif kind == "open":
                    writer.open(item[1])
                elif kind == "stop":
                    complete = True
                elif len(item) == len(TaskStartRaw._fields):
                    writer.on_task_start_raw(TaskStartRaw(*item))
                else:
                    writer.on_task_end_raw(TaskEndRaw(item[0], TaskStartRaw(*item[1]), *item[2:]))
            if writer is not None:
                writer.on_idle()
    finally:
        if writer is None:
            pass
        elif complete:
            writer.stop()
        else:
            writer.abandon()
    return 0


def main() -> int:
    directory, overwrite, blocks = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1"
    os.umask(0o077)
    try:
        # a log may lag a little; the tasks must not: on a busy machine the driver and the
        # executors go first
        os.nice(10)
    except OSError:
        pass
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return run(directory, overwrite, blocks, sys.stdin.buffer)
    except Exception as e:  # noqa: BLE001 - say why on stderr; the driver logs the exit code
        print(f"sparkctl event log writer: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
