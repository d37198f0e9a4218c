"""Web UI actions: off by default (every POST refused); with spark.ui.killEnabled a kill
needs POST and a token derived from the secret, which never appears itself."""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterator

import pytest

from sparkctl.deploy import messages as dm
from sparkctl.deploy.master import MasterDaemon, MasterSettings
from sparkctl.deploy.webui import kill_token
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
