"""Web UI actions: off by default (every POST refused); with spark.ui.killEnabled a kill
needs POST and a token derived from the secret (and a nonce drawn at every daemon start),
which never appears itself. Every request must name the server in its Host header (DNS
rebinding), and a POST from another site's page is refused even with the token."""
from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator

import pytest

from sparkctl.deploy import messages as dm
from sparkctl.deploy.master import MasterDaemon, MasterSettings
from sparkctl.deploy.webui import allowed_hosts, kill_token, start_status_server
from sparkctl.rpc import connect

pytestmark = pytest.mark.timeout(60)
SECRET = b"web-ui-test-secret"


def _master(kill_enabled: bool) -> MasterDaemon:
    return MasterDaemon("127.0.0.1", 0, 0, SECRET, MasterSettings(kill_enabled=kill_enabled)).start()


@pytest.fixture
def master() -> Iterator[MasterDaemon]:
    m = _master(True)
    yield m
    m.stop()


def _register_app(m: MasterDaemon) -> tuple[Any, str]:
    host, port = m.master_url[len("spark://"):].rsplit(":", 1)
    conn = connect(host, int(port), SECRET)
    conn.send(dm.RegisterApplication(dm.ApplicationDescription("web-kill", "127.0.0.1", 1, None, None, 512)))
    reply = conn.recv(timeout=10)
    assert isinstance(reply, dm.RegisteredApplication)
    return conn, reply.app_id


def _post(url: str, fields: dict[str, str]) -> int:
    data = urllib.parse.urlencode(fields).encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, data=data, method="POST"), timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _state(m: MasterDaemon) -> dict[str, Any]:
    with urllib.request.urlopen(m.webui_url + "/json", timeout=10) as r:
        return json.loads(r.read())


def test_kill_needs_the_token(master: MasterDaemon) -> None:
    conn, app_id = _register_app(master)
    try:
        page = urllib.request.urlopen(master.webui_url + "/", timeout=10).read().decode()
        token = kill_token(SECRET)
        assert token in page and SECRET.decode() not in page
        assert SECRET.decode() not in json.dumps(_state(master))
        assert _post(master.webui_url + "/app/kill", {"id": app_id}) == 403
        assert _post(master.webui_url + "/app/kill", {"id": app_id, "token": "0" * 64}) == 403
        assert [a["id"] for a in _state(master)["activeapps"]] == [app_id]
        assert _post(master.webui_url + "/app/kill", {"id": app_id, "token": token}) == 303
        assert [(a["id"], a["state"]) for a in _state(master)["completedapps"]] == [(app_id, "KILLED")]
        assert isinstance(conn.recv(timeout=10), dm.ApplicationRemoved)  # the driver is told
    finally:
        conn.close()


def test_actions_are_off_by_default() -> None:
    m = _master(False)
    try:
        conn, app_id = _register_app(m)
        try:
            page = urllib.request.urlopen(m.webui_url + "/", timeout=10).read().decode()
            assert "<form" not in page
            assert _post(m.webui_url + "/app/kill", {"id": app_id, "token": kill_token(SECRET)}) == 405
            assert [a["id"] for a in _state(m)["activeapps"]] == [app_id]
        finally:
            conn.close()
    finally:
        m.stop()


def _request(url: str, method: str = "GET", headers: dict[str, str] | None = None,
             fields: dict[str, str] | None = None) -> tuple[int, str]:
    """One raw request with exactly the headers given (Host included), no redirects."""
    parsed = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        body = urllib.parse.urlencode(fields).encode() if fields is not None else None
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, parsed.path or "/", body=body, headers=hdrs)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def test_a_foreign_host_header_is_refused(master: MasterDaemon) -> None:
    port = urllib.parse.urlsplit(master.webui_url).port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example", "localhost.evil.example",
                 "127.0.0.1:notaport", "evil.example@127.0.0.1", "127.0.0.1/x"):
        for path in ("/", "/json"):
            code, body = _request(master.webui_url + path, headers={"Host": host})
            assert code == 421, (host, path, code)
            assert "Host" in body and "<" not in body  # a short plain-text reason, no page
    code, _ = _request(master.webui_url + "/app/kill", "POST", {"Host": "evil.example"}, {"token": kill_token(SECRET)})
    assert code == 421
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}"):
        code, body = _request(master.webui_url + "/json", headers={"Host": host})
        assert code == 200, (host, code)
        assert json.loads(body)["url"] == master.master_url


def test_allowed_hosts_from_the_setting() -> None:
    server = start_status_server("127.0.0.1", 0, lambda: {"ok": 1}, "t", extra_hosts="ui.example, Spark.Internal")
    try:
        url = f"http://127.0.0.1:{server.port}/json"
        assert _request(url, headers={"Host": "ui.example"})[0] == 200
        assert _request(url, headers={"Host": f"spark.internal:{server.port}"})[0] == 200
        assert _request(url, headers={"Host": "other.example"})[0] == 421
    finally:
        server.stop()
    # bound to every interface: this machine's addresses and names, never another name
    wide = allowed_hosts("0.0.0.0", "")
    assert wide.allows("10.1.2.3:8080") and wide.allows("[fe80::1]") and wide.allows("localhost")
    assert not wide.allows("attacker.example")
    assert allowed_hosts("127.0.0.1", "*").allows("anything.example")
    assert not allowed_hosts("127.0.0.2", "").allows("10.1.2.3")


def test_a_cross_site_post_is_refused_even_with_the_token(master: MasterDaemon) -> None:
    conn, app_id = _register_app(master)
    try:
        netloc = urllib.parse.urlsplit(master.webui_url).netloc
        token = kill_token(SECRET)
        for foreign in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Origin": f"http://{netloc.split(':')[0]}:1"},  # same host, another port: another site
                        {"Referer": "http://evil.example/page.html"}):
            code, body = _request(master.webui_url + "/app/kill", "POST", {"Host": netloc, **foreign},
                                  {"id": app_id, "token": token})
            assert code == 403, (foreign, code)
            assert "cross-site" in body
        assert [a["id"] for a in _state(master)["activeapps"]] == [app_id]
        # the page's own form: Origin is the server itself
        code, _ = _request(master.webui_url + "/app/kill", "POST", {"Host": netloc, "Origin": f"http://{netloc}"},
                           {"id": app_id, "token": token})
        assert code == 303
        assert [(a["id"], a["state"]) for a in _state(master)["completedapps"]] == [(app_id, "KILLED")]
    finally:
        conn.close()


def test_the_token_changes_at_every_start() -> None:
    code = ("import sys; from sparkctl.deploy.webui import kill_token; "
            "print(kill_token(sys.argv[1].encode()))")
    tokens = {subprocess.run([sys.executable, "-c", code, SECRET.decode()], capture_output=True, text=True,
                             timeout=30, check=True).stdout.strip() for _ in range(2)}
    assert len(tokens) == 2 and all(len(t) == 64 for t in tokens)
    assert kill_token(SECRET) not in tokens
    # the same secret and nonce give the same token: it is derived, not random
    assert kill_token(SECRET, b"n" * 16) == kill_token(SECRET, b"n" * 16) != kill_token(SECRET, b"m" * 16)
