"""Private files and directories: what sparkctl creates on disk is readable by its user alone.

Daemons are often started by root or a service account, with their pid and log files in
places other users can write to (``/tmp``, a shared log dir). Three rules keep another
local user from steering those writes:

- every directory sparkctl creates is 0700 (:func:`private_makedirs`, parents included);
- a directory that must be private (the PID dir) is refused when it is a symlink, is not
  ours, or is writable by group or others (:func:`check_private_dir`);
- files are opened with ``O_NOFOLLOW`` and checked to be our regular files
  (:func:`open_private`), and a file that readers must never see half-written is written
  to a fresh name made with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and renamed into place
  (:func:`write_private_atomic`), so a planted symlink or file is never written through.
"""
from __future__ import annotations

import os
import secrets
import stat

from sparkctl.errors import SparkctlError

__all__ = [
    "UnsafePathError",
    "private_makedirs",
    "check_private_dir",
    "ensure_private_dir",
    "is_private_dir",
    "open_private",
    "write_private_atomic",
]

#: Flags added to every open of a private file: a symlink in the last component fails
#: with ELOOP instead of being followed, and no child process inherits the descriptor.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class UnsafePathError(SparkctlError):
    """A path sparkctl would write to could be steered by another user (a symlink, a
    file or directory someone else owns, a directory others can write to)."""


def private_makedirs(path: str) -> str:
    """Create *path* and any missing parents with mode 0700; return its absolute path.

    Directories that already exist are left as they are (``spark.local.dir=/tmp`` stays
    /tmp). ``os.makedirs(mode=...)`` applies the mode to the last directory only, so
    the missing ones are made one by one.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        return path
    missing = []
    p = path
    while not os.path.isdir(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    for d in reversed(missing):
        try:
            # The umask can only take bits away from 0700: never more open than that.
            os.mkdir(d, 0o700)
        except FileExistsError:
            if not os.path.isdir(d):  # a racing creator is fine; a file in the way is not
                raise
    return path


def _describe_problem(st: os.stat_result) -> str | None:
    if stat.S_ISLNK(st.st_mode):
        return "is a symlink"
    if not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if st.st_uid != os.geteuid():
        return f"belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def check_private_dir(path: str, what: str = "directory", hint: str = "") -> None:
    """Raise :class:`UnsafePathError` (one line, saying what is wrong) unless *path* is a
    real directory (not a symlink), owned by us and not writable by group or others."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise UnsafePathError(f"{what} {path} does not exist") from None
    problem = _describe_problem(st)
    if problem:
        raise UnsafePathError(f"{what} {path} {problem}" + (f"; {hint}" if hint else ""))


def is_private_dir(path: str) -> bool:
    """Whether *path* passes :func:`check_private_dir` (False if it does not exist)."""
    try:
        return _describe_problem(os.lstat(path)) is None
    except OSError:
        return False


def ensure_private_dir(path: str, what: str = "directory", hint: str = "") -> str:
    """Create *path* (0700, as :func:`private_makedirs`) if missing, then check it as
    :func:`check_private_dir` does; return its absolute path."""
    path = private_makedirs(path)
    check_private_dir(path, what, hint)
    return path


def open_private(path: str, flags: int, mode: int = 0o600) -> int:
    """``os.open`` that never follows a symlink at *path* and only returns a descriptor
    of a regular file we own (a file created here gets *mode*, default 0600).

    Raises :class:`UnsafePathError` for a symlink, another user's file or a non-regular
    file; other failures stay ``OSError``.
    """
    try:
        fd = os.open(path, flags | _NOFOLLOW, mode)
    except OSError as e:
        if os.path.islink(path):
            raise UnsafePathError(f"{path} is a symlink; refusing to follow it") from None
        raise
    try:
        st = os.fstat(fd)
        problem = None
        if not stat.S_ISREG(st.st_mode):
            problem = "is not a regular file"
        elif st.st_uid != os.geteuid():
            problem = f"belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})"
        if problem:
            raise UnsafePathError(f"{path} {problem}; refusing to use it")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _temp_name(path: str) -> str:
    # Unpredictable, so nobody can plant something there ahead of us; O_EXCL catches the rest.
    return f"{path}.{os.getpid()}.{secrets.token_hex(6)}.tmp"


def write_private_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    """Write *data* to *path* (mode 0600) so a reader sees the old file or the new one.

    The data goes to a fresh temporary name, created with ``O_CREAT|O_EXCL|O_NOFOLLOW``
    (an existing file or symlink there is never opened: another name is tried), and is
    then renamed over *path*; the rename replaces a symlink at *path* rather than
    writing through it.
    """
    for _ in range(100):
        tmp = _temp_name(path)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode)
        except FileExistsError:
            continue
        break
    else:
        raise UnsafePathError(f"cannot create a temporary file next to {path}: every name tried exists")
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
