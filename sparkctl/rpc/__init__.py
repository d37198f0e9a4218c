"""sparkctl's messaging layer: framed, authenticated, pickled messages over TCP.

* :mod:`~sparkctl.rpc.framing` - 8-byte length-prefixed frames (``send_frame``,
  ``recv_frame``, ``FrameDecoder``);
* :mod:`~sparkctl.rpc.auth` - the mutual HMAC-SHA256 shared-secret handshake that runs
  before anything is unpickled, and the secret's storage (``load_secret``,
  ``create_secret_file``);
* :mod:`~sparkctl.rpc.connection` - ``Connection`` and the client's ``connect``;
* :mod:`~sparkctl.rpc.server` - ``Server``, ``serve_forever_reader`` and ``Dispatcher``;
* :mod:`~sparkctl.rpc.tls` - optional TLS under all of it (``spark.ssl.*``).
"""
from __future__ import annotations

from sparkctl.rpc.auth import client_handshake, create_secret_file, load_secret, server_handshake
from sparkctl.rpc.connection import Connection, TLSConnection, connect
from sparkctl.rpc.framing import DEFAULT_MAX_FRAME, FrameDecoder, recv_frame, send_frame
from sparkctl.rpc.server import Dispatcher, Server, serve_forever_reader
from sparkctl.rpc.tls import TLSConfig

__all__ = [
    "Connection",
    "TLSConnection",
    "TLSConfig",
    "Server",
    "connect",
    "Dispatcher",
    "serve_forever_reader",
    "load_secret",
    "create_secret_file",
    "server_handshake",
    "client_handshake",
    "send_frame",
    "recv_frame",
    "FrameDecoder",
    "DEFAULT_MAX_FRAME",
]
