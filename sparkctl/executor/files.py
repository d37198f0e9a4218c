"""The executor's side of files for tasks: PutFile chunks from the driver become the
SparkFiles root under the executor's local dir.

```
 driver ── PutFile(name, kind, offset, data, last) ──▶ executor's driver loop
                                                          └─ ExecutorFiles.receive
   <local dir>/files-incoming/<name>   while chunks arrive
   <local dir>/files/<name>            when the last one has: a file, or an archive unpacked
```
The driver loop stores a chunk before it reads the next message, so every LaunchTask
sent after the file reaches the slots after the file is in place. Both directories are
private (0700) and go with the executor's local dir.
"""
from __future__ import annotations

import os
import shutil
import sys
from typing import BinaryIO

from sparkctl.errors import ProtocolError
from sparkctl.files import is_package, unpack, use_as_root
from sparkctl.scheduler import messages as m
from sparkctl.util.fsutil import private_makedirs


class ExecutorFiles:
    def __init__(self, local_dir: str) -> None:
        self.root = os.path.join(local_dir, "files")
        self.incoming = os.path.join(local_dir, "files-incoming")
        self._open: dict[str, tuple[BinaryIO, int]] = {}  # name -> (file, bytes so far)

    def make_root(self) -> str:
        """Create the root, make it this process's SparkFiles root and put it on the import
        path, as PySpark's workers do (a .py file from addPyFile lands there); forked slots
        inherit both."""
        private_makedirs(self.root)
        use_as_root(self.root, on_worker=True)
        if self.root not in sys.path:
            sys.path.insert(1, self.root)
        return self.root

    def receive(self, msg: m.PutFile) -> list[str] | None:
        """Store one chunk. When it is the entry's last, put the entry in place and return
        the import-path entries it adds (a package added by addPyFile; else none); None
        while chunks are still to come."""
        name = msg.name
        if os.path.basename(name) != name or name in ("", ".", "..") or msg.kind not in ("file", "zip", "tar"):
            raise ProtocolError(f"bad file entry {name!r} of kind {msg.kind!r}")
        if msg.offset == 0:
            self._discard(name)
            private_makedirs(self.incoming)
            self._open[name] = (open(os.path.join(self.incoming, name), "wb"), 0)
        f, written = self._open.get(name, (None, -1))
        if f is None or msg.offset != written:
            self._discard(name)
            raise ProtocolError(f"chunk of {name!r} at offset {msg.offset}, expected {max(written, 0)}")
        f.write(msg.data)
        self._open[name] = (f, written + len(msg.data))
        if not msg.last:
            return None
        f.close()
        del self._open[name]
        partial = os.path.join(self.incoming, name)
        dest = os.path.join(self.root, name)
        private_makedirs(self.root)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        if msg.kind == "file":
            os.replace(partial, dest)
        else:
            try:
                unpack(partial, msg.kind, dest)
            finally:
                os.unlink(partial)
        return [dest] if msg.python and msg.kind == "file" and is_package(name) else []

    def _discard(self, name: str) -> None:
        f, _ = self._open.pop(name, (None, 0))
        if f is not None:
            f.close()
            try:
                os.unlink(os.path.join(self.incoming, name))
            except FileNotFoundError:
                pass
