"""A worker's work dir cleanup (``spark.worker.cleanup.*``): the directories of applications
and drivers that no longer run here and in which nothing changed for the TTL go.

Each is renamed away under the worker's launch lock, after a last look at what runs, so a
launch for the same application cannot start in a directory being removed; the slow
removal happens after, outside the lock.
"""
from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable

from sparkctl.conf import SparkConf

log = logging.getLogger("sparkctl.worker")


def remove_old_dirs(work_dir: str, cutoff: float, running_here: Callable[[str], bool],
                    launch_lock: threading.Lock) -> list[str]:
    """Remove *work_dir*'s directories not *running_here* and unchanged since *cutoff*; their names."""
    try:
        entries = [e for e in os.scandir(work_dir) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    removed = []
    for entry in entries:
        if running_here(entry.name) or _changed_since(entry.path, cutoff):
            continue
        trash = os.path.join(work_dir, f".removing-{entry.name}")
        with launch_lock:
            try:
                # a launch since the walk above made a new executor dir in it, or runs now
                if running_here(entry.name) or os.lstat(entry.path).st_mtime > cutoff:
                    continue
                os.rename(entry.path, trash)
            except OSError:
                continue
        shutil.rmtree(trash, ignore_errors=True)
        if not entry.name.startswith(".removing-"):  # a pass cut short earlier left it
            removed.append(entry.name)
    if removed:
        log.info("Removed %d old application director%s from %s: %s", len(removed),
                 "y" if len(removed) == 1 else "ies", work_dir, ", ".join(removed))
    return removed


def _changed_since(path: str, cutoff: float) -> bool:
    """Anything under *path* (itself included) modified after *cutoff*; symlinks are not followed."""
    try:
        if os.lstat(path).st_mtime > cutoff:
            return True
    except OSError:
        return True  # cannot tell: keep it
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                if os.lstat(os.path.join(root, name)).st_mtime > cutoff:
                    return True
            except OSError:
                continue  # removed meanwhile
    return False


def cleanup_settings(values: dict[str, str]) -> tuple[bool, float, float]:
    """(enabled, interval, ttl) from spark.worker.cleanup.enabled / .interval / .appDataTtl
    (seconds when no unit is given, as in Spark), checked as every setting is."""
    conf = SparkConf.from_values(values)
    return (conf.get_bool("spark.worker.cleanup.enabled", True), conf.get_duration("spark.worker.cleanup.interval"),
            conf.get_duration("spark.worker.cleanup.appDataTtl"))
