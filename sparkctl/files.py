"""Files for tasks: ``SparkFiles`` and the driver's record of what ``addFile``,
``addArchive`` and ``addPyFile`` added.

The driver copies each added path into its own SparkFiles root (so ``SparkFiles.get``
works on the driver too) and sends it to every executor over the authenticated
driver connection it already has, in chunks well under the frame limit; no port is
opened for files:

```
 sc.addFile(p) ─▶ AddedFiles: copy into the driver's root, one FileEntry
                     │ DriverRuntime.add_file (under its lock)
                     ▼
 executor ◀─ PutFile chunk, chunk, ..., last ─ driver   (then any later LaunchTask)
   └─ ExecutorFiles: <local dir>/files/<name>, unpacked when an archive
```
The connection is ordered and the executor stores a file before it reads its next
message, so a task launched after ``addFile`` returned finds the file in place; an
executor that registers later is sent every entry before its first task.
"""
from __future__ import annotations

import filecmp
import logging
import os
import posixpath
import shutil
import tarfile
import threading
import zipfile
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Iterator

from sparkctl.errors import SparkctlError
from sparkctl.scheduler import messages as m

log = logging.getLogger("sparkctl.driver")

#: addPyFile: files with these endings go on the import path themselves (a .py file's
#: directory, the SparkFiles root, is on it already), as PySpark's PACKAGE_EXTENSIONS.
PACKAGE_EXTENSIONS = (".zip", ".egg", ".jar", ".whl")
_ZIP = (".zip", ".jar")
_TAR = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


class FileConflictError(SparkctlError, ValueError):
    """A file of the same name, with other contents, was added before: the one on the
    executors cannot be replaced while tasks may be reading it (Spark refuses this too)."""


class SparkFiles:
    """Where the files added with ``SparkContext.addFile`` / ``addArchive`` are, in a
    task or on the driver: ``SparkFiles.get(name)``."""

    _root_directory: ClassVar[str | None] = None
    _is_running_on_worker: ClassVar[bool] = False

    def __init__(self) -> None:
        raise NotImplementedError("Do not construct SparkFiles objects: use SparkFiles.get(name)")

    @classmethod
    def get(cls, filename: str) -> str:
        """The absolute path of a file (or directory, or unpacked archive) added by name."""
        return os.path.join(cls.getRootDirectory(), filename)

    @classmethod
    def getRootDirectory(cls) -> str:
        """The directory holding every added file: the executor's in a task, the driver's
        own copy on the driver."""
        if cls._root_directory is None:
            raise SparkctlError("SparkFiles has no root directory: no SparkContext is running in this process")
        return cls._root_directory


def use_as_root(root: str | None, on_worker: bool) -> None:
    """Make ``root`` what SparkFiles answers in this process (and in processes forked from it)."""
    SparkFiles._root_directory = root
    SparkFiles._is_running_on_worker = on_worker


@dataclass(frozen=True)
class FileEntry:
    """One added path, as the executors receive it."""

    uri: str  # what listFiles / listArchives show, and the key that makes a second add a no-op
    name: str  # its name under the SparkFiles root
    kind: str  # "file": stored as is; "zip" / "tar": unpacked into a directory called ``name``
    source: str  # the driver's copy that is streamed to executors
    python: bool = False  # added by addPyFile

    def messages(self, chunk: int) -> Iterator[m.PutFile]:
        """The entry as PutFile chunks of at most ``chunk`` bytes (one, empty, for an empty file)."""
        with open(self.source, "rb") as f:
            offset = 0
            data = f.read(chunk)
            while True:
                following = f.read(chunk) if data else b""
                last = not following
                yield m.PutFile(self.name, self.kind, offset, data, last, self.python)
                if last:
                    return
                offset += len(data)
                data = following


class AddedFiles:
    """The driver's side: its SparkFiles root and every entry added so far.

    Lives in a private directory owned by the driver (removed at stop, swept after a crash
    like the driver's other scratch space)::

        sparkctl-APPID-files-XXXX/userFiles/   the SparkFiles root on the driver
        sparkctl-APPID-files-XXXX/staging/     what is streamed: archives, directories as tar
    """

    def __init__(self, app_id: str, base: str | None = None, conf: Any = None) -> None:
        from sparkctl.util.cleanup import make_owned_dir
        from sparkctl.util.fsutil import private_makedirs
        self.conf = conf  # the settings a URL's filesystem is read with (credentials)
        self._downloads = 0  # files fetched from URLs, each into its own staging directory
        self.directory = make_owned_dir(f"sparkctl-{app_id}-files-", base)
        self.root = private_makedirs(os.path.join(self.directory, "userFiles"))
        self.staging = private_makedirs(os.path.join(self.directory, "staging"))
        self.files: dict[str, FileEntry] = {}
        self.archives: dict[str, FileEntry] = {}
        self._by_name: dict[str, FileEntry] = {}
        self._lock = threading.Lock()

    def add_file(self, path: str, recursive: bool = False, python: bool = False) -> FileEntry | None:
        """Copy ``path`` into the root; the entry to send to the executors, or None when they
        have it already (this path, or the same contents under the same name, was added before)."""
        local, remote = self._fetch(path, recursive)
        if not os.path.exists(local):
            raise FileNotFoundError(f"File {path} does not exist")
        is_dir = os.path.isdir(local)
        if is_dir and not recursive:
            raise ValueError(f"Added file {path} is a directory and recursive is not turned on "
                             f"(use addFile(path, recursive=True))")
        local = os.path.realpath(local)
        uri = remote or "file:" + local + ("/" if is_dir else "")
        name = os.path.basename(local)
        with self._lock:
            if uri in self.files:
                earlier = self.files[uri]
                if python and not earlier.python and earlier.kind == "file" and is_package(name):
                    # addFile, then addPyFile of the same package: now it goes on the import path
                    self.files[uri] = self._by_name[name] = replace(earlier, python=True)
                    return self.files[uri]
                log.warning("The path %s has been added already; adding it again does nothing", path)
                return None
            known = self._check_name(name, local, is_dir)
            dest = os.path.join(self.root, name)
            if known is not None:
                self.files[uri] = known
                return None
            if is_dir:
                source = os.path.join(self.staging, f"{len(self._by_name)}-{name}.tar")
                with tarfile.open(source, "w", dereference=True) as tar:  # links as the copy below has them
                    tar.add(local, arcname=".")
                shutil.copytree(local, dest, symlinks=False)
                entry = FileEntry(uri, name, "tar", source, python)
            else:
                shutil.copyfile(local, dest)
                entry = FileEntry(uri, name, "file", dest, python)
            self.files[uri] = entry
            self._by_name[name] = entry
            return entry

    def add_archive(self, path: str) -> FileEntry | None:
        """Unpack the archive ``path`` (``#alias`` names the directory) into the root; the
        entry to send to the executors, or None when they have it already."""
        target, _, alias = path.partition("#")
        local, remote = self._fetch(target, False)
        if not os.path.isfile(local):
            raise FileNotFoundError(f"Archive {target} does not exist" if not os.path.exists(local)
                                    else f"Archive {target} is not a file")
        kind = archive_kind(local)
        local = os.path.realpath(local)
        name = alias or os.path.basename(local)
        if os.path.basename(name) != name or name in (".", ".."):
            raise ValueError(f"invalid archive alias {alias!r} in {path!r}: it names a directory, not a path")
        uri = (remote or "file:" + local) + (f"#{alias}" if alias else "")
        with self._lock:
            if uri in self.archives:
                log.warning("The archive %s has been added already; adding it again does nothing", path)
                return None
            known = self._check_name(name, local, False, archive=True)
            if known is not None:
                self.archives[uri] = known
                return None
            source = os.path.join(self.staging, f"{len(self._by_name)}-{os.path.basename(local)}")
            shutil.copyfile(local, source)
            unpack(source, kind, os.path.join(self.root, name))
            entry = FileEntry(uri, name, kind, source)
            self.archives[uri] = entry
            self._by_name[name] = entry
            return entry

    def _fetch(self, path: str, recursive: bool) -> tuple[str, str | None]:
        """(a local path holding *path*, its URL when it is not a local file). A URL's file
        (or directory) is downloaded on the driver, which then ships it as a local one: the
        executors need no access to the store."""
        from sparkctl.fs import LOCAL, filesystem_for
        fs = filesystem_for(path, self.conf)
        if fs is LOCAL:
            return _local_path(path), None
        source = fs.strip(path)
        if not fs.exists(source):
            raise FileNotFoundError(f"File {path} does not exist")
        with self._lock:
            self._downloads += 1
            where = os.path.join(self.staging, f"download-{self._downloads}")
        os.mkdir(where, 0o700)
        local = os.path.join(where, posixpath.basename(source.rstrip("/")) or "file")
        fs.get(source, local, recursive=recursive and fs.isdir(source))
        return local, path

    def _check_name(self, name: str, local: str, is_dir: bool, archive: bool = False) -> FileEntry | None:
        """Refuse a second entry of the same name unless it holds the same contents; the
        earlier entry when it does."""
        earlier = self._by_name.get(name)
        if earlier is None:
            return None
        same = False
        if archive and earlier.kind in ("zip", "tar") and not earlier.uri.endswith("/"):
            same = filecmp.cmp(local, earlier.source, shallow=False)
        elif not archive and is_dir and earlier.kind == "tar" and earlier.uri.endswith("/"):
            same = _same_tree(local, os.path.join(self.root, name))
        elif not archive and not is_dir and earlier.kind == "file":
            same = filecmp.cmp(local, os.path.join(self.root, name), shallow=False)
        if not same:
            raise FileConflictError(f"File {name} exists and does not match contents of file:{local} "
                                    f"(added before from {earlier.uri}); give the new one another name")
        return earlier

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _local_path(path: str) -> str:
    if path.startswith("file://"):
        path = path[len("file://"):]
    elif path.startswith("file:"):
        path = path[len("file:"):]
    return os.path.abspath(os.path.expanduser(path))


def _same_tree(a: str, b: str) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatch and not errors and all(_same_tree(os.path.join(a, d), os.path.join(b, d))
                                               for d in cmp.common_dirs)


def archive_kind(path: str) -> str:
    """``zip`` or ``tar`` (any compression), by the archive's name, as Spark unpacks them."""
    lower = path.lower()
    if lower.endswith(_ZIP):
        return "zip"
    if lower.endswith(_TAR):
        return "tar"
    raise ValueError(f"cannot unpack {path}: archives must end in .zip, .jar, .tar, .tar.gz or .tgz")


def unpack(source: str, kind: str, dest: str) -> None:
    """Unpack ``source`` into the new directory ``dest`` (through a temporary sibling, so a
    half-unpacked archive is never seen under its name). Members that would land outside
    ``dest`` (absolute paths, ``..``, links out) are refused."""
    tmp = f"{dest}.unpacking"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp, 0o700)
    try:
        if kind == "zip":
            with zipfile.ZipFile(source) as z:
                for info in z.infolist():
                    _inside(tmp, info.filename)
                z.extractall(tmp)
        elif kind == "tar":
            with tarfile.open(source, "r:*") as t:
                _extract_tar(t, tmp)
        else:
            raise ValueError(f"unknown archive kind {kind!r}")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _extract_tar(t: tarfile.TarFile, dest: str) -> None:
    """Extract as tarfile's "data" filter does (Python 3.11.4 and later): regular files,
    directories and links that stay inside ``dest`` only. Before 3.11.4 there is no filter,
    so the same rules are applied here, member by member, before anything is written."""
    if hasattr(tarfile, "data_filter"):
        t.extractall(dest, filter="data")
        return
    try:
        members = _checked_members(t, dest)
    except ValueError as e:
        raise tarfile.TarError(str(e)) from None  # as the data filter's OutsideDestinationError is
    t.extractall(dest, members=members)


def _checked_members(t: tarfile.TarFile, dest: str) -> list[tarfile.TarInfo]:
    members = t.getmembers()
    for member in members:
        _inside(dest, member.name)
        if member.issym() or member.islnk():
            base = os.path.dirname(member.name) if member.issym() else ""
            if os.path.isabs(member.linkname):
                raise ValueError(f"archive member {member.name!r} links to an absolute path")
            _inside(dest, os.path.join(base, member.linkname))
        elif not (member.isfile() or member.isdir()):
            raise ValueError(f"archive member {member.name!r} is not a file, directory or link")
        member.mode &= 0o755  # as the data filter: no set-id bits, nothing writable by others
    return members


def _inside(root: str, member: str) -> None:
    target = os.path.realpath(os.path.join(root, member))
    if os.path.commonpath([os.path.realpath(root), target]) != os.path.realpath(root):
        raise ValueError(f"archive member {member!r} would be written outside its directory")


def is_package(name: str) -> bool:
    return name.lower().endswith(PACKAGE_EXTENSIONS)


def add_configured(sc: Any, py_files: list[str]) -> None:
    """Add ``spark.files``, ``spark.archives`` and the py files (``spark.submit.pyFiles``,
    ``SparkContext(pyFiles=...)``) as the context starts; a path that cannot be added is a
    ConfigError naming its setting, before any job."""
    from sparkctl.errors import ConfigError
    for key, add in (("spark.files", sc.addFile), ("spark.archives", sc.addArchive)):
        value = sc._conf.get(key) or ""
        for p in filter(None, (s.strip() for s in value.split(","))):
            try:
                add(p)
            except (OSError, ValueError) as e:
                raise ConfigError(f"{key}: cannot add {p}: {e}", key=key, value=value) from None
    for p in py_files:
        try:
            sc.addPyFile(p)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read --py-files entry {p}: {e}") from None


def driver_import_path(root: str, path: str) -> None:
    """addPyFile on the driver: a package goes on ``sys.path`` (a .py file's directory,
    the root, is on it already), and the import system forgets what it cached."""
    import importlib
    import sys
    name = posixpath.basename(path.split("#", 1)[0].rstrip("/"))
    if is_package(name):
        path = os.path.join(root, name)
        if path not in sys.path:
            sys.path.insert(1, path)
    importlib.invalidate_caches()
