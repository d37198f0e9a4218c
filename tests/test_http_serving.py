"""The web UIs' accept loop (sparkctl/util/http_serving.py): it serves, stops at once, and
sleeps while idle instead of waking on a timer."""
from __future__ import annotations

import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sparkctl.util.http_serving import ServingThread


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _wakeups(native_id: int) -> int:
    """How many times the thread has been run by the scheduler (schedstat's third field)."""
    with open(f"/proc/self/task/{native_id}/schedstat") as f:
        return int(f.read().split()[2])


@pytest.mark.timeout(30)
def test_serves_sleeps_while_idle_and_stops_at_once() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    serving = ServingThread(httpd, "test-http")
    port = httpd.server_address[1]
    try:
        for path in ("/a", "/b/c"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                assert r.read() == path.encode()
        native_id = serving.thread.native_id
        assert native_id is not None
        time.sleep(0.2)
        before = _wakeups(native_id)
        time.sleep(1.0)  # serve_forever(poll_interval=0.1) wakes ten times in this second
        assert _wakeups(native_id) - before <= 1
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/after", timeout=10) as r:
            assert r.read() == b"/after"  # and a request still wakes it
    finally:
        started = time.monotonic()
        serving.stop()
    assert time.monotonic() - started < 1.0
    assert not serving.thread.is_alive()
    assert httpd.socket.fileno() == -1  # closed
    serving.stop()  # twice is harmless
