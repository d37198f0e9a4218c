"""Directories that outlive no process: each says which process owns it, and the next
start removes the ones whose owner is provably dead.

A driver's scratch space (``sparkctl-APPID-*``, shuffle files and spills) and the private
directory of a ``local-cluster`` (``sparkctl-local-cluster-*``, its daemons' logs and work
dirs) are removed when the driver stops. A driver killed with SIGKILL cannot do that, so
every such directory carries an ``owner`` file, written right after the directory is
made::

    {"pid": 4242, "start": 1234567, "boot": "6f1c...-..."}

``start`` is the process start time the kernel reports (clock ticks since boot, field 22
of ``/proc/PID/stat``) and ``boot`` the kernel's boot id: a pid alone may be reused by an
unrelated process, a (boot, pid, start) triple is not. Processes that share the
directory (the local cluster's master and workers) list themselves under ``daemons/``
in the same format.

:func:`sweep_leftovers` removes a directory only if it is a real directory (not a
symlink) of the current user, its owner file parses, and the owner and every listed
daemon are dead: gone, a zombie, or a different process under the same pid. Anything it
cannot prove stays.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable

from sparkctl.util.fsutil import write_private_atomic
from sparkctl.util.processes import ProcessIdentity

__all__ = ["OWNER_FILE", "DAEMONS_DIR", "ProcessIdentity", "make_owned_dir", "write_identity", "remove_identity",
           "owned_dir_is_abandoned", "sweep_leftovers", "LEFTOVER_PREFIX"]

log = logging.getLogger("sparkctl.cleanup")

OWNER_FILE = "owner"
DAEMONS_DIR = "daemons"
#: Every directory a driver makes under a temp dir starts so; only those are swept.
LEFTOVER_PREFIX = "sparkctl-"


def _write_private(path: str, text: str) -> None:
    write_private_atomic(path, text.encode("ascii"))


def make_owned_dir(prefix: str, base: str | None = None, owner: ProcessIdentity | None = None) -> str:
    """A new private (0700) directory under *base* (default: the system temp dir) whose
    ``owner`` file names *owner* (default: this process)."""
    directory = tempfile.mkdtemp(prefix=prefix, dir=base)
    try:
        _write_private(os.path.join(directory, OWNER_FILE), (owner or ProcessIdentity.current()).to_json())
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return directory


def write_identity(directory: str, name: str, who: ProcessIdentity | None = None) -> str:
    """List a process that shares *directory* (under ``daemons/``); returns the file's path."""
    daemons = os.path.join(directory, DAEMONS_DIR)
    os.makedirs(daemons, mode=0o700, exist_ok=True)
    path = os.path.join(daemons, name)
    _write_private(path, (who or ProcessIdentity.current()).to_json())
    return path


def remove_identity(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _read_identity(path: str) -> ProcessIdentity:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, encoding="ascii", errors="replace") as f:
        return ProcessIdentity.from_json(f.read(4096))


def owned_dir_is_abandoned(directory: str) -> bool:
    """*directory* is ours, has a valid owner file, and its owner and daemons are all dead."""
    try:
        st = os.lstat(directory)
        if not os.path.isdir(directory) or os.path.islink(directory) or st.st_uid != os.getuid():
            return False
        if not _read_identity(os.path.join(directory, OWNER_FILE)).is_dead():
            return False
        daemons = os.path.join(directory, DAEMONS_DIR)
        names = os.listdir(daemons) if os.path.isdir(daemons) else []
        return all(_read_identity(os.path.join(daemons, n)).is_dead() for n in names)
    except (OSError, ValueError):
        return False  # no owner file, unreadable, half-written or not ours: leave it


def sweep_leftovers(bases: Iterable[str | None]) -> list[str]:
    """Remove abandoned ``sparkctl-*`` directories directly under each of *bases* (None:
    the system temp dir); returns those removed. Never raises: a sweep that cannot
    finish leaves the rest for the next one."""
    removed: list[str] = []
    seen: set[str] = set()
    for base in bases:
        base = os.path.realpath(base or tempfile.gettempdir())
        if base in seen:
            continue
        seen.add(base)
        try:
            entries = [e for e in os.scandir(base) if e.name.startswith(LEFTOVER_PREFIX)]
        except OSError:
            continue
        for entry in entries:
            if not owned_dir_is_abandoned(entry.path):
                continue
            log.info("Removing %s, left behind by a process that no longer runs", entry.path)
            shutil.rmtree(entry.path, ignore_errors=True)
            if not os.path.lexists(entry.path):
                removed.append(entry.path)
    return removed
