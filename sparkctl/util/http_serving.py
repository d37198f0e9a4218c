"""An HTTP server's accept loop that sleeps until a request or a stop, never on a timer.

``socketserver``'s ``serve_forever`` wakes every ``poll_interval`` to see whether
``shutdown()`` was asked: at 0.1 s each idle daemon's web UI woke ten times a second, and a
hundred idle workers spent several percent of a core doing it. Here the loop waits on the
listening socket and on a pipe that ``stop`` writes to, so an idle server costs nothing.
"""
from __future__ import annotations

import os
import selectors
import socketserver
import threading

__all__ = ["ServingThread"]


class ServingThread:
    """Serve ``httpd`` in a daemon thread named ``name`` until ``stop()``."""

    def __init__(self, httpd: socketserver.BaseServer, name: str) -> None:
        self.httpd = httpd
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.httpd, selectors.EVENT_READ)  # type: ignore[arg-type]
                selector.register(self._wake_r, selectors.EVENT_READ)
                while not self._stopped.is_set():
                    for key, _ in selector.select():
                        if key.fileobj is self.httpd and not self._stopped.is_set():
                            # what serve_forever calls: accept, verify, process (a thread
                            # per request with ThreadingMixIn), errors to handle_error
                            self.httpd._handle_request_noblock()  # type: ignore[attr-defined]
        finally:
            os.close(self._wake_r)

    def stop(self, timeout: float = 5.0) -> None:
        """End the loop, wait for it (up to ``timeout`` s) and close the listening socket."""
        if not self._stopped.is_set():
            self._stopped.set()
            try:
                os.write(self._wake_w, b"x")
            except OSError:
                pass
            if self.thread is not threading.current_thread():
                self.thread.join(timeout)
            os.close(self._wake_w)
        self.httpd.server_close()
