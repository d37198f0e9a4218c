"""``python -m sparkctl.executor``: the executor process, started by a driver or a worker.

Its settings and the cluster secret arrive as one JSON line on stdin (never on the
command line, where other users could read them). A worker's fork server
(:mod:`sparkctl.deploy.fork_server`) imports this once and calls :func:`run` in each
executor it forks, with the settings the worker sent."""
from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
from typing import Any


def run(cfg: dict[str, Any], parent: int | None = None) -> int:
    """Run an executor with *cfg* (its settings, plus ``secret`` and ``log_level``) until its
    driver lets go, or its *parent* process (the one that started it; this one's parent
    now if None) dies."""
    parent = os.getppid() if parent is None else parent
    from sparkctl.executor.executor import Executor, ExecutorSettings
    from sparkctl.util.processes import raise_fd_limit

    os.umask(0o077)  # shuffle files, spills and cached blocks are for this user only
    raise_fd_limit()  # a connection to and from every executor of a wide cluster
    secret = cfg.pop("secret").encode()
    level = cfg.pop("log_level", "WARNING")
    # Task lines are logged at INFO on every task: buffer them (flushed on a warning, when
    # full, on each heartbeat and at exit) so logging costs no write per task.
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%y/%m/%d %H:%M:%S"))
    buffered = logging.handlers.MemoryHandler(capacity=512, flushLevel=logging.WARNING, target=stream)
    root = logging.getLogger()
    root.addHandler(buffered)
    root.setLevel(getattr(logging, level, logging.WARNING))
    for p in reversed(cfg.get("extra_paths", [])):
        if p not in sys.path:
            sys.path.insert(0, p)
    settings = ExecutorSettings(**cfg)
    if settings.extra_paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(settings.extra_paths + [os.environ.get("PYTHONPATH", "")])
    Executor(settings, secret, parent).run()
    return 0


def main() -> int:
    parent = os.getppid()  # before anything: the worker may die while this one starts
    line = sys.stdin.readline()
    if not line:
        print("sparkctl executor: expected its settings as a JSON line on stdin", file=sys.stderr)
        return 2
    return run(json.loads(line), parent)


if __name__ == "__main__":
    sys.exit(main())
