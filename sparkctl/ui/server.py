"""The web UI's HTTP server: the driver's live UI, and the history server's pages.

```
 browser ──GET /jobs/ ...──────▶ UIServer ── page.html shell (PAGE, APP_ID, UI_ROOT filled in)
         ──GET /static/x.js───▶          ── a file of sparkctl/ui/static/ (no subdirectories)
         ──GET /api/v1/...────▶          ── sparkctl/ui/api.py, from the AppStatusListener(s)
```
The pages are static shells whose scripts read the REST API, so the live UI and the history
server serve the same pages from the same API. A live UI serves its one application at
``/``; the history server lists applications at ``/`` and serves each under
``/history/APP/``.

Read-only: every method but GET and HEAD is 405. As the daemons' pages
(sparkctl/deploy/webui.py), the ``Host`` header must name this server, so a DNS-rebinding
page cannot read it; scripts and styles come only from this server (a Content-Security-Policy
says so), which also keeps the UI working without internet access.
"""
from __future__ import annotations

import errno
import html
import json
import logging
import os
import re
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sparkctl.deploy.webui import AllowedHosts, allowed_hosts, host_allowed
from sparkctl.ui import api
from sparkctl.util.http_serving import ServingThread

log = logging.getLogger("sparkctl.ui")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
_STATIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".ico": "image/x-icon", ".json": "application/json"}
#: the application pages: path under the app's root -> the page name the shell gets
PAGES = {"jobs/": "jobs", "jobs/job/": "job", "stages/": "stages", "stages/stage/": "stage", "storage/": "storage",
         "storage/rdd/": "rdd", "environment/": "environment", "executors/": "executors"}
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"


def render_shell(page: str, app_id: str, ui_root: str, title: str) -> bytes:
    """``page.html`` with its placeholders filled in (escaped); a plain fallback without it."""
    try:
        with open(os.path.join(STATIC_DIR, "page.html"), encoding="utf-8") as f:
            shell = f.read()
    except OSError:
        shell = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>{{TITLE}}</title></head>"
                 "<body><h1>{{TITLE}}</h1><p>Page {{PAGE}}: see <a href='/api/v1/applications'>the REST API</a>."
                 "</p></body></html>")
    for key, value in (("{{TITLE}}", title), ("{{PAGE}}", page), ("{{APP_ID}}", app_id), ("{{UI_ROOT}}", ui_root)):
        shell = shell.replace(key, html.escape(value, quote=True))
    return shell.encode("utf-8")


class _UIHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], apps: api.AppLookup, history: bool, title: str,
                 hosts: AllowedHosts) -> None:
        self.apps = apps
        self.history = history
        self.title = title
        self.allowed = hosts
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _UIHTTPServer
    server_version = "sparkctl"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)

    def parse_request(self) -> bool:
        return super().parse_request() and host_allowed(self, self.server.allowed, self._send)

    def _send(self, code: int, ctype: str, body: bytes, headers: dict[str, str] | None = None,
              head_only: bool = False) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "same-origin")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def _json(self, code: int, doc: Any, head_only: bool) -> None:
        body = json.dumps(doc, indent=2).encode()
        self._send(code, "application/json", body, {"Cache-Control": "no-store"}, head_only)

    def _redirect(self, location: str) -> None:
        self._send(302, "text/plain; charset=utf-8", b"", {"Location": location})

    def _not_found(self, what: str, head_only: bool = False) -> None:
        self._send(404, "text/plain; charset=utf-8", f"not found: {what}\n".encode(), head_only=head_only)

    def do_HEAD(self) -> None:
        self._get(head_only=True)

    def do_GET(self) -> None:
        self._get(head_only=False)

    def _get(self, head_only: bool) -> None:
        try:
            parts = urllib.parse.urlsplit(self.path)
            path = urllib.parse.unquote(parts.path)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
            self._dispatch(path, query, head_only)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # a bug answers 500, the server stays up
            log.warning("UI request %r failed: %s: %s", self.path[:200], type(e).__name__, e, exc_info=True)
            try:
                self._send(500, "text/plain; charset=utf-8", b"internal error\n", head_only=head_only)
            except OSError:
                pass

    def _dispatch(self, path: str, query: dict[str, str], head_only: bool) -> None:
        if path.startswith("/api/v1/") or path == "/api/v1":
            code, doc = api.route(path[len("/api/v1/"):], query, self.server.apps)
            self._json(code, doc, head_only)
            return
        if path.startswith("/static/"):
            self._static(path[len("/static/"):], head_only)
            return
        if self.server.history:
            self._history_page(path, head_only)
        else:
            self._live_page(path, head_only)

    def _static(self, name: str, head_only: bool) -> None:
        if not _STATIC_NAME.match(name):
            self._not_found(name, head_only)
            return
        full = os.path.join(STATIC_DIR, name)
        try:
            with open(full, "rb") as f:
                body = f.read()
        except OSError:
            self._not_found(name, head_only)
            return
        ctype = _TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
        self._send(200, ctype, body, {"Cache-Control": "max-age=300"}, head_only)

    def _shell(self, page: str, app_id: str, ui_root: str, title: str, head_only: bool) -> None:
        self._send(200, "text/html; charset=utf-8", render_shell(page, app_id, ui_root, title),
                   {"Cache-Control": "no-store"}, head_only)

    def _live_page(self, path: str, head_only: bool) -> None:
        apps = self.server.apps()
        app_id = next(iter(apps), "")
        rel = path.lstrip("/")
        if rel == "":
            self._redirect("/jobs/")
            return
        if rel in PAGES:
            name = apps[app_id].app.name if app_id else ""
            self._shell(PAGES[rel], app_id, "", f"{name} - {PAGES[rel].title()}" if name else self.server.title,
                        head_only)
            return
        if rel + "/" in PAGES:
            self._redirect("/" + rel + "/")
            return
        self._not_found(path, head_only)

    def _history_page(self, path: str, head_only: bool) -> None:
        if path in ("/", ""):
            self._shell("history", "", "", self.server.title, head_only)
            return
        m = re.match(r"^/history/([^/]+)(/.*)?$", path)
        if m is None:
            self._not_found(path, head_only)
            return
        app_id, rest = m.group(1), (m.group(2) or "/").lstrip("/")
        apps = self.server.apps()
        st = apps.get(app_id)
        if st is None:
            self._not_found(f"application {app_id}", head_only)
            return
        if rest == "":
            self._redirect(f"/history/{urllib.parse.quote(app_id)}/jobs/")
            return
        if rest in PAGES:
            self._shell(PAGES[rest], app_id, f"/history/{app_id}", f"{st.app.name} - {PAGES[rest].title()}",
                        head_only)
            return
        if rest + "/" in PAGES:
            self._redirect(f"/history/{urllib.parse.quote(app_id)}/{rest}/")
            return
        self._not_found(path, head_only)

    def _method_not_allowed(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"the UI is read-only\n", {"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # type: ignore[assignment]


class UIServer:
    """A running UI server; ``url`` is where a browser finds it."""

    def __init__(self, httpd: _UIHTTPServer, host: str) -> None:
        self.httpd = httpd
        self.host = host
        self._serving = ServingThread(httpd, "ui-server")
        self.thread = self._serving.thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._serving.stop(5.0)


def start_ui_server(host: str, port: int, apps: api.AppLookup, *, history: bool = False, title: str = "sparkctl",
                    max_retries: int = 16, allowed: str | None = None) -> UIServer:
    """Bind ``port`` on ``host``, or the next free one up to ``max_retries`` further (as Spark's
    ``spark.port.maxRetries``); port 0 takes any free port."""
    hosts = allowed_hosts(host, allowed)
    last: OSError | None = None
    for attempt in range(max_retries + 1 if port else 1):
        try:
            httpd = _UIHTTPServer((host, port + attempt if port else 0), apps, history, title, hosts)
        except OSError as e:
            if e.errno != errno.EADDRINUSE:
                raise
            last = e
            continue
        return UIServer(httpd, host)
    raise OSError(errno.EADDRINUSE, f"no free port for the UI in {port}..{port + max_retries} on {host} "
                                    f"(spark.ui.port, spark.port.maxRetries): {last}")


