"""Filesystems behind URLs: local files with ``os``, everything else through fsspec."""
from sparkctl.fs.filesystem import LOCAL, FileStatus, FileSystem, FsspecFileSystem, is_local, scheme_of
from sparkctl.fs.options import filesystem_for

__all__ = ["LOCAL", "FileStatus", "FileSystem", "FsspecFileSystem", "filesystem_for", "is_local", "scheme_of"]
