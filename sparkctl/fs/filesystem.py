"""Hadoop's FileSystem seam, in Python: one small interface over local files and fsspec.

Every method that takes a path takes a URL. A plain path or ``file:`` URL is served by
:class:`LocalFileSystem` with ``os`` calls (no dependency, no overhead); any other scheme by
:class:`FsspecFileSystem`, a thin wrapper over an fsspec filesystem built from the scheme's
options (:mod:`sparkctl.fs.options`). Spark's scheme names map onto fsspec's: ``s3a://``
and ``s3n://`` are ``s3://``, ``wasbs://`` is ``abfs://`` and so on; a URL keeps the scheme
its user wrote wherever sparkctl shows it.

A filesystem object is small and picklable: it travels inside a task as its scheme and
options (the credentials among them, over the authenticated driver connection) and builds
the fsspec instance in the process that uses it. Its ``repr`` names the scheme only.
"""
from __future__ import annotations

import glob as _glob
import os
import shutil
from dataclasses import dataclass
from typing import IO, Any, Mapping

from sparkctl.errors import FileSystemError

#: Spark's scheme -> (fsspec protocol, the extra that installs its backend)
SCHEMES: dict[str, tuple[str, str | None]] = {
    "s3": ("s3", "s3"), "s3a": ("s3", "s3"), "s3n": ("s3", "s3"),
    "gs": ("gcs", "gcs"), "gcs": ("gcs", "gcs"),
    "abfs": ("abfs", "azure"), "abfss": ("abfs", "azure"), "az": ("abfs", "azure"),
    "wasb": ("abfs", "azure"), "wasbs": ("abfs", "azure"),
    "hdfs": ("hdfs", "hdfs"), "webhdfs": ("webhdfs", None),
    "http": ("http", "http"), "https": ("https", "http"),
    "memory": ("memory", None),
}
#: The block size byte-range splits are cut to, as Hadoop's fs.local.block.size is for local files.
LOCAL_BLOCK_SIZE = 32 * 1024 * 1024
#: Objects are read with ranged GETs, so a split costs one request: smaller splits than
#: Hadoop's 32 MB s3a default feed more executors at little cost (200 MB gives 12 tasks).
OBJECT_STORE_BLOCK_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class FileStatus:
    """One data file found by :meth:`FileSystem.expand`: its path within the filesystem and size."""

    path: str
    size: int


def scheme_of(url: str) -> str | None:
    """The URL's scheme in lower case, or None for a plain path (``C:`` is not one)."""
    head, sep, _ = url.partition("://")
    if sep and head and head.replace("+", "").replace("-", "").replace(".", "").isalnum():
        return head.lower()
    if url.startswith("file:"):
        return "file"
    return None


def is_local(url: str) -> bool:
    return scheme_of(url) in (None, "file")


class FileSystem:
    """What sparkctl asks of a filesystem; paths are URLs or, for local files, plain paths."""

    scheme = "file"
    block_size = LOCAL_BLOCK_SIZE
    #: True where a finished write becomes visible at once and whole (object stores): output
    #: is committed by the driver (sparkctl.rdd.output), not renamed into place by tasks.
    object_store = False

    def strip(self, url: str) -> str:
        """The path within this filesystem that *url* names."""
        raise NotImplementedError

    def url(self, path: str) -> str:
        """*path* as a URL with this filesystem's scheme, as shown to users."""
        raise NotImplementedError

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        raise NotImplementedError

    def info_size(self, path: str) -> int:
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def isdir(self, path: str) -> bool:
        raise NotImplementedError

    def listdir(self, path: str) -> list[FileStatus]:
        """The files (not directories) directly in directory *path*, sorted by name."""
        raise NotImplementedError

    def glob(self, pattern: str) -> list[str]:
        raise NotImplementedError

    def find(self, path: str) -> list[FileStatus]:
        """Every file under directory *path*, at any depth, sorted by path."""
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        raise NotImplementedError

    def rm(self, path: str, recursive: bool = False) -> None:
        raise NotImplementedError

    def copy(self, sources: list[str], destinations: list[str]) -> None:
        """Copy each source file to its destination (server-side where the store can)."""
        raise NotImplementedError

    def write_bytes(self, path: str, data: bytes) -> None:
        with self.open(path, "wb") as f:
            f.write(data)

    def get(self, path: str, local: str, recursive: bool = False) -> None:
        """Download *path* (a file, or a directory when *recursive*) to the local path *local*."""
        raise NotImplementedError

    def block_hosts(self, path: str, start: int, length: int) -> list[str]:
        """The hosts holding the bytes [start, start + length) of *path*, where the filesystem
        reports block locations (HDFS does; object stores and local files do not)."""
        return []

    def expand(self, url: str) -> list[FileStatus]:
        """A comma-separated list of paths, directories and globs, as sorted data files.

        A directory gives the files directly in it, leaving out names starting with ``_`` or
        ``.`` (``_SUCCESS``, ``.crc`` files), as Hadoop's FileInputFormat does.
        """
        files: list[FileStatus] = []
        for part in url.split(","):
            part = part.strip()
            if not part:
                continue
            path = self.strip(part)
            matches = self.glob(path) if _glob.has_magic(path) else [path]
            if not matches:
                raise FileNotFoundError(f"Input path does not exist: {part}")
            for match in matches:
                if self.isdir(match):
                    files += [f for f in self.listdir(match)
                              if not os.path.basename(f.path).startswith(("_", "."))]
                elif self.exists(match):
                    files.append(FileStatus(match, self.info_size(match)))
                else:
                    raise FileNotFoundError(f"Input path does not exist: {self.url(match)}")
        return files


class LocalFileSystem(FileSystem):
    """Local files, with ``os`` calls."""

    def strip(self, url: str) -> str:
        if url.startswith("file://"):
            url = url[len("file://"):]
        elif url.startswith("file:"):
            url = url[len("file:"):]
        return url

    def url(self, path: str) -> str:
        return "file:" + os.path.abspath(path)

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        return open(path, mode)  # noqa: SIM115 - the caller closes it

    def info_size(self, path: str) -> int:
        return os.path.getsize(path)

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[FileStatus]:
        out = []
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isfile(full):
                out.append(FileStatus(full, os.path.getsize(full)))
        return out

    def glob(self, pattern: str) -> list[str]:
        return sorted(_glob.glob(pattern))

    def find(self, path: str) -> list[FileStatus]:
        out = []
        for root, _, names in os.walk(path):
            for name in names:
                full = os.path.join(root, name)
                out.append(FileStatus(full, os.path.getsize(full)))
        return sorted(out, key=lambda f: f.path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def rm(self, path: str, recursive: bool = False) -> None:
        if os.path.isdir(path) and recursive:
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)

    def copy(self, sources: list[str], destinations: list[str]) -> None:
        for src, dst in zip(sources, destinations):
            shutil.copyfile(src, dst)

    def get(self, path: str, local: str, recursive: bool = False) -> None:
        if os.path.isdir(path) and recursive:
            shutil.copytree(path, local)
        else:
            shutil.copyfile(path, local)

    def __repr__(self) -> str:
        return "LocalFileSystem()"

    def __reduce__(self) -> str:
        return "LOCAL"  # one instance per process, so ``fs is LOCAL`` holds after pickling


LOCAL = LocalFileSystem()


class FsspecFileSystem(FileSystem):
    """Any other scheme, through fsspec. Built lazily in each process that uses it."""

    def __init__(self, scheme: str, options: Mapping[str, Any], block_size: int | None = None,
                 authority: str = "") -> None:
        protocol, extra = SCHEMES.get(scheme, (scheme, None))
        self.scheme = scheme
        self.protocol = protocol
        self.extra = extra
        self.options = dict(options)
        self.authority = authority  # hdfs://namenode:port, which its paths leave out
        self.object_store = protocol in ("s3", "gcs", "abfs", "memory")
        self.block_size = block_size or (OBJECT_STORE_BLOCK_SIZE if self.object_store else LOCAL_BLOCK_SIZE)
        self._fs: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fs"] = None
        return state

    def __repr__(self) -> str:  # never the options: they hold credentials
        return f"FsspecFileSystem({self.scheme}://)"

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs = build(self.scheme, self.protocol, self.extra, self.options)
        return self._fs

    def strip(self, url: str) -> str:
        """The backend's own path for *url* (``bucket/key`` for S3, the URL itself for HTTP)."""
        if scheme_of(url) != self.scheme:
            raise FileSystemError(f"{url} is not a {self.scheme}:// URL")
        rest = url.split("://", 1)[1]
        if self.protocol in ("http", "https"):
            return url
        if self.protocol == "hdfs":
            return "/" + rest.split("/", 1)[1] if "/" in rest else "/"
        if self.protocol == "abfs" and "@" in rest.split("/", 1)[0]:  # container@account.dfs.core.windows.net
            head, _, tail = rest.partition("/")
            rest = head.split("@", 1)[0] + ("/" + tail if tail else "")
        path = rest.rstrip("/") or rest
        return "/" + path if self.protocol == "memory" else path

    def url(self, path: str) -> str:
        if self.protocol in ("http", "https"):
            return path
        if self.protocol == "hdfs":
            return f"{self.scheme}://{self.authority}{path}"
        return f"{self.scheme}://{path.lstrip('/')}"

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        with translated(self, path):
            if "r" in mode:
                return self.fs.open(path, mode, block_size=4 * 1024 * 1024, cache_type="readahead")
            return self.fs.open(path, mode)

    def info_size(self, path: str) -> int:
        with translated(self, path):
            return int(self.fs.size(path))

    def exists(self, path: str) -> bool:
        with translated(self, path):
            return bool(self.fs.exists(path))

    def isdir(self, path: str) -> bool:
        with translated(self, path):
            return bool(self.fs.isdir(path))

    def listdir(self, path: str) -> list[FileStatus]:
        with translated(self, path):
            entries = self.fs.ls(path, detail=True)
        return sorted((FileStatus(_name(e), int(e.get("size") or 0)) for e in entries if e.get("type") == "file"),
                      key=lambda f: f.path)

    def glob(self, pattern: str) -> list[str]:
        with translated(self, pattern):
            return sorted(_name({"name": p}) for p in self.fs.glob(pattern))

    def find(self, path: str) -> list[FileStatus]:
        with translated(self, path):
            found = self.fs.find(path, detail=True)
        return sorted((FileStatus(_name(e), int(e.get("size") or 0)) for e in found.values()
                       if e.get("type") == "file"), key=lambda f: f.path)

    def makedirs(self, path: str) -> None:
        with translated(self, path):
            self.fs.makedirs(path, exist_ok=True)

    def rm(self, path: str, recursive: bool = False) -> None:
        with translated(self, path):
            try:
                self.fs.rm(path, recursive=recursive)
            except FileNotFoundError:
                pass

    def copy(self, sources: list[str], destinations: list[str]) -> None:
        if not sources:
            return
        with translated(self, sources[0]):
            self.fs.copy(sources, destinations)

    def write_bytes(self, path: str, data: bytes) -> None:
        with translated(self, path):
            self.fs.pipe_file(path, data)

    def get(self, path: str, local: str, recursive: bool = False) -> None:
        with translated(self, path):
            self.fs.get(path, local, recursive=recursive)

    def block_hosts(self, path: str, start: int, length: int) -> list[str]:
        locate = getattr(self.fs, "block_locations", None)  # an fsspec backend that knows its blocks
        if locate is None:
            return []
        with translated(self, path):
            return [str(h) for h in locate(path, start, length)]


def _name(entry: Mapping[str, Any]) -> str:
    return str(entry["name"])


def build(scheme: str, protocol: str, extra: str | None, options: Mapping[str, Any]) -> Any:
    """The fsspec filesystem for *protocol*; a FileSystemError naming the extra to install
    when its backend is missing, or the schemes sparkctl knows when fsspec knows none."""
    try:
        import fsspec
    except ImportError:
        raise FileSystemError(f"{scheme}:// URLs need fsspec: pip install 'sparkctl[{extra or 'fsspec'}]'") from None
    try:
        return fsspec.filesystem(protocol, **options)
    except ImportError:
        raise FileSystemError(f"{scheme}:// URLs need the {extra or protocol} extra: "
                              f"pip install 'sparkctl[{extra or protocol}]'") from None
    except ValueError as e:
        if "not known" in str(e) or "Protocol" in str(e):
            raise unknown_scheme(scheme) from None
        raise


def unknown_scheme(scheme: str) -> FileSystemError:
    known = ", ".join(["file", *SCHEMES])
    return FileSystemError(f"unknown filesystem scheme {scheme!r}: sparkctl reads and writes {known}")


class translated:
    """Turns a backend's error into one line that names the URL and never the credentials:
    a refused login, a missing bucket, an unreachable endpoint. FileNotFoundError stays
    itself (callers handle it), with the URL as the message."""

    def __init__(self, fs: FsspecFileSystem, path: str) -> None:
        self.fs, self.path = fs, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, error: BaseException | None, tb: Any) -> None:
        if error is None or isinstance(error, (FileSystemError, FileNotFoundError, IsADirectoryError)):
            return
        url = self.fs.url(self.path)
        if isinstance(error, PermissionError):
            raise FileSystemError(f"access to {url} was refused: {self._line(error)} (check the credentials: "
                                  "spark.hadoop.fs.s3a.access.key/secret.key, the environment or the backend's "
                                  "config files)") from None
        if isinstance(error, (OSError, ValueError, TypeError)) or type(error).__module__.split(".")[0] in (
                "botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "adlfs", "fsspec", "pyarrow"):
            raise FileSystemError(f"{url}: {type(error).__name__}: {self._line(error)}") from None

    def _line(self, error: BaseException) -> str:
        """The error's first line, with any option value (a key, a secret) blotted out."""
        text = (str(error).strip() or type(error).__name__).splitlines()[0][:300]
        for value in _secret_values(self.fs.options):
            text = text.replace(value, "*********(redacted)")
        return text


def _secret_values(options: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for value in options.values():
        if isinstance(value, Mapping):
            found += _secret_values(value)
        elif isinstance(value, str) and len(value) >= 4 and "://" not in value:
            found.append(value)
    return found

