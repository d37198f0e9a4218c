"""Read-only HTTP status pages of the standalone daemons (the master's, and the worker's).

```
 browser / curl ──GET /──────▶ StatusServer ──get_json()──▶ daemon state (under its lock)
                ◀─HTML page──       │
                ──GET /json──▶      └─ the same dict, as JSON
```

:func:`start_status_server` serves any daemon: it takes a callable returning the
daemon's JSON document and a title, and renders HTML from that document with
:func:`render_master_page`, :func:`render_worker_page` or, by default, the generic
:func:`render_generic_page`. ``GET /`` is the page, ``GET /json`` (or ``/json/``) the
document (Spark's field names, unchanged); a daemon may add read-only routes of its own
(the worker's log pages, :mod:`sparkctl.deploy.log_page`); any other path is 404 and any
other method 405. Every text from the document is HTML-escaped: worker ids, application
names and users come from the network. The pages show labels, dates, durations and sizes
for people, and reload themselves every few seconds; they load nothing from elsewhere.

What keeps a web page in someone's browser from using these servers (docs/security.md):

- the ``Host`` header must name this server: the address it is bound to, ``localhost``,
  127.0.0.1, ::1, or a name listed in ``spark.ui.allowedHosts``. A DNS-rebinding page
  (the attacker's name, re-pointed at this address) gets 421 and never reads a page;
- a POST whose ``Origin`` (or, without one, ``Referer``) is another site gets 403, so a
  cross-site form cannot fire a kill;
- every answer says ``X-Content-Type-Options: nosniff`` and a Content-Security-Policy
  that allows no script and nothing from elsewhere, so a log line or an application
  name that looks like HTML can never run in the page;
- the kill token, derived from the cluster secret and a random nonce drawn at every
  start of the daemon, must be in the form: a request forged blind, without reading
  the page, is refused, and a token seen once is worthless after a restart.
"""
from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import secrets
import socket
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sparkctl.deploy.log_page import LOG_TYPES, LogOwner, log_query
from sparkctl.util.http_serving import ServingThread

__all__ = ["StatusServer", "start_status_server", "render_generic_page", "render_master_page", "render_worker_page",
           "render_body", "kill_token", "AllowedHosts", "allowed_hosts", "ALLOWED_HOSTS_KEY", "HISTORY_SERVER_URL_KEY",
           "Route", "REFRESH_SECONDS", "history_app_url"]

log = logging.getLogger("sparkctl.webui")

JsonSource = Callable[[], dict[str, Any]]
PageRenderer = Callable[[str, dict[str, Any]], str]
KillAction = Callable[[str, str], str]  # (kind "app" or "driver", id) -> what happened
#: An extra read-only GET route: the query string in, (status, content type, body) out.
Route = Callable[[str], tuple[int, str, bytes]]

#: Where the master's page links completed applications (Spark 4's key): URL/history/APP_ID/jobs/.
HISTORY_SERVER_URL_KEY = "spark.master.ui.historyServerUrl"
#: The daemons' pages reload themselves this often (seconds), so a state change shows up.
REFRESH_SECONDS = 5
#: No script, nothing from elsewhere: the pages are plain HTML with one inline style sheet.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"

#: Comma-separated extra names the web UIs answer to (a DNS name, a reverse proxy's host).
ALLOWED_HOSTS_KEY = "spark.ui.allowedHosts"
_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("", "0.0.0.0", "::")
#: Drawn once per process: every start of a daemon gets new kill tokens.
_PROCESS_NONCE = secrets.token_bytes(16)

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
ul.summary { list-style: none; padding: 0; } ul.summary li { margin: 0.15em 0; }
td.reason { max-width: 40em; white-space: pre-wrap; font-size: 0.9em; color: #555; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre.log { background: #f7f7f7; border: 1px solid #ddd; padding: 0.6em; white-space: pre-wrap;
          word-break: break-all; font-size: 0.85em; }
p.lognav a, td a.log { margin-right: 0.6em; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: list[str], refresh: int | None = REFRESH_SECONDS, json_link: bool = True) -> str:
    return "\n".join([
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        *([f'<meta http-equiv="refresh" content="{int(refresh)}">'] if refresh else []),
        f"<title>{_e(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>{_e(title)}</h1>",
        *body,
        *(['<p><a href="/json">JSON</a></p>'] if json_link else []),
        "</body></html>",
    ])


def render_body(title: str, body: list[str]) -> str:
    """A page of the daemons' layout around *body* (already-escaped HTML), without the
    self-reload: for pages a person reads at length, such as a log."""
    return _page(title, body, refresh=None, json_link=False)


def _table(headers: list[str], rows: list[list[str]], empty: str = "none", numeric: tuple[str, ...] = ()) -> str:
    """*rows* hold already-escaped HTML cells; the columns named in *numeric* are right-aligned."""
    if not rows:
        return f"<p><em>{_e(empty)}</em></p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    opens = ['<td class="num">' if h in numeric else "<td>" for h in headers]
    body = "".join("<tr>" + "".join(f"{o}{c}</td>" for o, c in zip(opens, row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _duration(ms: Any) -> str:
    try:
        s = int(ms) / 1000
    except (TypeError, ValueError):
        return _e(ms)
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _memory(mib: Any) -> str:
    """Megabytes (MiB, as the daemons count memory) with a unit a person reads: "512 MiB", "4.0 GiB"."""
    try:
        value = int(mib)
    except (TypeError, ValueError):
        return _e(mib)
    if abs(value) >= 1024:
        return f"{value / 1024:.1f} GiB"
    return f"{value} MiB"


def _link(url: Any, text: str) -> str:
    """*text* (escaped HTML) as a link to *url* when that is an http(s) URL; else just *text*.
    URLs come from the network: no ``javascript:`` or other scheme becomes a link."""
    url = str(url or "")
    try:
        scheme = urllib.parse.urlsplit(url).scheme.lower()
    except ValueError:
        return text
    if scheme not in ("http", "https"):
        return text
    return f'<a href="{_e(url)}">{text}</a>'


def _clock(ms: Any) -> str:
    try:
        return _e(time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(int(ms) / 1000)))
    except (TypeError, ValueError, OverflowError, OSError):
        return _e(ms)


def render_generic_page(title: str, doc: dict[str, Any]) -> str:
    """Any JSON document: its scalar fields as a list, each list of objects as a table."""
    body: list[str] = []
    scalars = [(k, v) for k, v in doc.items() if not isinstance(v, (list, dict))]
    if scalars:
        body.append('<ul class="summary">' + "".join(
            f"<li><strong>{_e(k)}:</strong> {_e(v)}</li>" for k, v in scalars) + "</ul>")
    for key, value in doc.items():
        if isinstance(value, dict):
            value = [value]
        if not isinstance(value, list):
            continue
        body.append(f"<h2>{_e(key)}</h2>")
        if value and all(isinstance(item, dict) for item in value):
            headers: list[str] = []
            for item in value:
                headers += [k for k in item if k not in headers]
            rows = [[_e(item.get(h, "")) for h in headers] for item in value]
            body.append(_table(headers, rows))
        else:
            body.append(_table([key], [[_e(item)] for item in value]))
    return _page(title, body)


def _kill_form(kind: str, ident: str, token: str | None) -> str:
    if token is None:
        return ""
    return (f'<form method="post" action="/{kind}/kill" style="display:inline">'
            f'<input type="hidden" name="id" value="{_e(ident)}">'
            f'<input type="hidden" name="token" value="{_e(token)}">'
            f'<button type="submit">kill</button></form>')


def history_app_url(history_url: str, app_id: str) -> str:
    """Where a history server (``spark.master.ui.historyServerUrl``) shows an application's jobs."""
    if not history_url:
        return ""
    return f"{history_url.rstrip('/')}/history/{urllib.parse.quote(app_id, safe='')}/jobs/"


def render_master_page(title: str, doc: dict[str, Any], kill_token: str | None = None,
                       history_url: str = "") -> str:
    """The master's page: summary, workers, running and completed applications and drivers.

    A running application's name links to its driver's UI (``appuiurl``, sent by the
    driver); a completed one's to *history_url* (``spark.master.ui.historyServerUrl``),
    where the history server shows it from its event log. With ``kill_token``
    (spark.ui.killEnabled), running applications and drivers get a kill button that POSTs
    the token."""
    workers = doc.get("workers", [])
    active = doc.get("activeapps", [])
    completed = doc.get("completedapps", [])
    active_drivers = doc.get("activedrivers", [])
    completed_drivers = doc.get("completeddrivers", [])
    body = ['<ul class="summary">',
            f"<li><strong>URL:</strong> {_e(doc.get('url', ''))}</li>",
            f"<li><strong>Alive workers:</strong> {_e(doc.get('aliveworkers', 0))}</li>",
            f"<li><strong>Cores in use:</strong> {_e(doc.get('cores', 0))} total, "
            f"{_e(doc.get('coresused', 0))} used</li>",
            f"<li><strong>Memory in use:</strong> {_memory(doc.get('memory', 0))} total, "
            f"{_memory(doc.get('memoryused', 0))} used</li>",
            f"<li><strong>Applications:</strong> {len(active)} running, {len(completed)} completed</li>",
            f"<li><strong>Drivers:</strong> {len(active_drivers)} running, {len(completed_drivers)} completed</li>",
            f"<li><strong>Status:</strong> {_e(doc.get('status', ''))}</li>",
            *([f"<li><strong>History server:</strong> {_link(history_url, _e(history_url))}</li>"]
              if history_url else []),
            "</ul>"]
    body.append(f"<h2>Workers ({len(workers)})</h2>")
    body.append(_table(
        ["Worker Id", "Address", "State", "Cores", "Memory", "Last heartbeat"],
        [[_link(w.get("webuiaddress", ""), _e(w.get("id", ""))),
          f"{_e(w.get('host', ''))}:{_e(w.get('port', ''))}",
          _e(w.get("state", "")),
          f"{_e(w.get('cores', 0))} ({_e(w.get('coresused', 0))} used)",
          f"{_memory(w.get('memory', 0))} ({_memory(w.get('memoryused', 0))} used)",
          _clock(w.get("lastheartbeat"))] for w in workers],
        "no workers registered", numeric=("Cores", "Memory")))

    def app_rows(apps: list[dict[str, Any]], running: bool) -> list[list[str]]:
        rows = []
        for a in apps:
            app_id = str(a.get("id", ""))
            url = a.get("appuiurl", "") if running else history_app_url(history_url, app_id)
            row = [_e(app_id), _link(url, _e(a.get("name", ""))), _e(a.get("cores", 0)),
                   _memory(a.get("memoryperexecutor", 0)), _clock(a.get("starttime")),
                   _e(a.get("user", "")), _e(a.get("state", "")), _duration(a.get("duration"))]
            if running:
                row.append(f'<span class="reason">{_e(a.get("waitingreason", ""))}</span>'
                           + _kill_form("app", app_id, kill_token))
            rows.append(row)
        return rows

    headers = ["Application ID", "Name", "Cores", "Memory per Executor", "Submitted", "User", "State", "Duration"]
    numeric = ("Cores", "Memory per Executor", "Duration")
    body.append(f"<h2>Running Applications ({len(active)})</h2>")
    body.append(_table(headers + ["Waiting for"], app_rows(active, True), "no running applications", numeric))
    body.append(f"<h2>Completed Applications ({len(completed)})</h2>")
    body.append(_table(headers, app_rows(completed, False), "no completed applications", numeric))

    worker_uis = {str(w.get("id", "")): str(w.get("webuiaddress", "")) for w in workers}

    def driver_logs(d: dict[str, Any]) -> str:
        """Links to the driver's stdout and stderr on the worker that runs (or ran) it."""
        base = worker_uis.get(str(d.get("worker", "")), "")
        if not base:
            return ""
        owner = LogOwner(driver_id=str(d.get("id", "")))
        return "".join(_link(f"{base}/logPage/?{log_query(owner, t)}", t) + " " for t in LOG_TYPES)

    def driver_rows(drivers: list[dict[str, Any]]) -> list[list[str]]:
        return [[_e(d.get("id", "")), _e(d.get("mainclass", "")),
                 _link(worker_uis.get(str(d.get("worker", "")), ""), _e(d.get("worker", ""))),
                 _e(d.get("cores", 0)), _memory(d.get("memory", 0)), _clock(d.get("starttime")),
                 _e(d.get("state", "")), _e("" if d.get("exitcode") is None else d.get("exitcode")),
                 "yes" if d.get("supervise") else "no", driver_logs(d),
                 f'<span class="reason">{_e(d.get("message", ""))}</span>'] for d in drivers]

    driver_headers = ["Submission ID", "Main", "Worker", "Cores", "Memory", "Submitted", "State", "Exit code",
                      "Supervise", "Logs", "Message"]
    driver_numeric = ("Cores", "Memory", "Exit code")
    body.append(f"<h2>Running Drivers ({len(active_drivers)})</h2>")
    running_rows = driver_rows(active_drivers)
    for row, d in zip(running_rows, active_drivers):
        row[-1] += _kill_form("driver", str(d.get("id", "")), kill_token)
    body.append(_table(driver_headers, running_rows, "no running drivers", driver_numeric))
    body.append(f"<h2>Completed Drivers ({len(completed_drivers)})</h2>")
    body.append(_table(driver_headers, driver_rows(completed_drivers), "no completed drivers", driver_numeric))
    return _page(title, body)


def _log_links(owner: LogOwner) -> str:
    """Links to one executor's or driver's stdout and stderr pages on this worker."""
    return "".join(f'<a class="log" href="/logPage/?{_e(log_query(owner, t))}">{t}</a>' for t in LOG_TYPES)


def render_worker_page(title: str, doc: dict[str, Any]) -> str:
    """The worker's page: what it offers and uses, its executors and drivers (running and
    finished) with links to their stdout and stderr, from the worker's JSON document."""
    executors = doc.get("executors", [])
    finished = doc.get("finishedexecutors", [])
    drivers = doc.get("drivers", [])
    finished_drivers = doc.get("finisheddrivers", [])
    master_ui = doc.get("masterwebuiurl", "")
    body = ['<ul class="summary">',
            f"<li><strong>ID:</strong> {_e(doc.get('id', ''))}</li>",
            f"<li><strong>Address:</strong> {_e(doc.get('host', ''))}:{_e(doc.get('port', ''))}</li>",
            f"<li><strong>Master:</strong> {_link(master_ui, _e(doc.get('masterurl', '')))}</li>",
            f"<li><strong>State:</strong> {_e(doc.get('state', ''))}</li>",
            f"<li><strong>Cores:</strong> {_e(doc.get('cores', 0))} ({_e(doc.get('coresused', 0))} used)</li>",
            f"<li><strong>Memory:</strong> {_memory(doc.get('memory', 0))} "
            f"({_memory(doc.get('memoryused', 0))} used)</li>",
            f"<li><strong>Work directory:</strong> {_e(doc.get('workdir', ''))}</li>",
            "</ul>"]

    def executor_rows(runners: list[dict[str, Any]], done: bool) -> list[list[str]]:
        rows = []
        for x in runners:
            row = [_e(x.get("id", "")), _e(x.get("appid", "")), _e(x.get("appname", "")), _e(x.get("cores", 0)),
                   _memory(x.get("memory", 0)), _e(x.get("state", "")), _e(x.get("pid", "")),
                   _clock(x.get("starttime"))]
            if done:
                row += [_clock(x.get("finishtime")), _e("" if x.get("exitcode") is None else x.get("exitcode"))]
            row.append(_log_links(LogOwner(app_id=str(x.get("appid", "")), executor_id=str(x.get("id", "")))))
            rows.append(row)
        return rows

    exec_headers = ["Executor ID", "Application ID", "Application", "Cores", "Memory", "State", "PID", "Started"]
    numeric = ("Cores", "Memory", "PID", "Exit code")
    body.append(f"<h2>Running Executors ({len(executors)})</h2>")
    body.append(_table(exec_headers + ["Logs"], executor_rows(executors, False), "no running executors", numeric))
    body.append(f"<h2>Finished Executors ({len(finished)})</h2>")
    body.append(_table(exec_headers + ["Finished", "Exit code", "Logs"], executor_rows(finished, True),
                       "no finished executors", numeric))

    def driver_rows(runners: list[dict[str, Any]], done: bool) -> list[list[str]]:
        rows = []
        for d in runners:
            row = [_e(d.get("id", "")), _e(d.get("mainclass", "")), _e(d.get("cores", 0)), _memory(d.get("memory", 0)),
                   _e(d.get("state", "")), _e(d.get("pid", "")), "yes" if d.get("supervise") else "no",
                   _clock(d.get("starttime"))]
            if done:
                row += [_clock(d.get("finishtime")), _e("" if d.get("exitcode") is None else d.get("exitcode"))]
            row.append(_log_links(LogOwner(driver_id=str(d.get("id", "")))))
            rows.append(row)
        return rows

    driver_headers = ["Submission ID", "Main", "Cores", "Memory", "State", "PID", "Supervise", "Started"]
    body.append(f"<h2>Running Drivers ({len(drivers)})</h2>")
    body.append(_table(driver_headers + ["Logs"], driver_rows(drivers, False), "no running drivers", numeric))
    body.append(f"<h2>Finished Drivers ({len(finished_drivers)})</h2>")
    body.append(_table(driver_headers + ["Finished", "Exit code", "Logs"], driver_rows(finished_drivers, True),
                       "no finished drivers", numeric))
    return _page(title, body)


def _host_name(netloc: str) -> str | None:
    """The host part of a ``Host`` header or an origin's netloc, lowercased, without
    brackets or port; None when it does not parse (or holds a path, user info, space)."""
    netloc = netloc.strip()
    if any(c in netloc for c in "/\\@?# \t"):
        return None
    try:
        parts = urllib.parse.urlsplit("//" + netloc)
        _ = parts.port  # a port that is not a number raises ValueError
    except ValueError:
        return None
    return parts.hostname or None


def _origin_key(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the default port filled in; None if malformed."""
    try:
        parts = urllib.parse.urlsplit(f"{scheme}://{netloc.strip()}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname, port if port is not None else (443 if scheme == "https" else 80)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class AllowedHosts:
    """The host names a web UI answers to (see :func:`allowed_hosts`)."""

    names: frozenset[str]
    any_address: bool = False  # bound to every interface: any literal address is ours
    anything: bool = False  # spark.ui.allowedHosts=*: no check (behind a trusted proxy)

    def allows(self, header: str) -> bool:
        if self.anything:
            return True
        name = _host_name(header)
        if name is None:
            return False
        return name in self.names or (self.any_address and _is_ip(name))


def allowed_hosts(bind_host: str, configured: str | None = None) -> AllowedHosts:
    """The names a web UI bound to *bind_host* answers to: that host, the loopback names,
    and *configured* (``spark.ui.allowedHosts``, comma-separated; ``*`` turns the check
    off). Bound to every interface, it also answers to this machine's names and to any
    literal address: a literal address cannot be a rebinding attacker's name."""
    names = set(_LOCAL_NAMES)
    host = bind_host.strip().strip("[]").lower()
    wildcard = host in _WILDCARDS
    if wildcard:
        names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
    else:
        names.add(host)
    items = [i.strip().strip("[]").lower() for i in (configured or "").split(",")]
    names |= {i for i in items if i and i != "*"}
    return AllowedHosts(frozenset(names), any_address=wildcard, anything="*" in items)


def _configured_allowed_hosts() -> str:
    from sparkctl.conf import load_defaults_file

    return load_defaults_file().get(ALLOWED_HOSTS_KEY, "")


def host_allowed(handler: BaseHTTPRequestHandler, allowed: AllowedHosts,
                 send: Callable[[int, str, bytes], None]) -> bool:
    """Whether *handler*'s request names one of our hosts; if not, answer 421 and say why.
    A request with no ``Host`` (HTTP/1.0) is not a browser's, so not a rebinding page's."""
    host = handler.headers.get("Host")
    if host is None or allowed.allows(host):
        return True
    log.warning("refused a web request from %s for host %r", handler.address_string(), host[:100])
    handler.close_connection = True
    send(421, "text/plain; charset=utf-8",
         f"misdirected request: this server does not answer to the host name in the Host header; "
         f"add it to {ALLOWED_HOSTS_KEY} if it is really this server\n".encode())
    return False


class _Handler(BaseHTTPRequestHandler):
    server: _StatusHTTPServer
    server_version = "sparkctl"

    def parse_request(self) -> bool:
        """Refuse, before any handler runs, a request whose Host is not one of ours."""
        return super().parse_request() and host_allowed(self, self.server.allowed_hosts, self._send)

    def _foreign_origin(self) -> str | None:
        """The Origin (or Referer) of a browser's request when it is not this server's own
        page; None for a same-origin request or a client that sends neither."""
        origin = self.headers.get("Origin")
        source = origin if origin is not None else self.headers.get("Referer")
        if source is None:
            return None
        host = self.headers.get("Host")
        if host is None:
            return source  # a browser always sends Host; this is not one of our pages
        parts = urllib.parse.urlsplit(source.strip())
        ours = _origin_key(parts.scheme or "http", host)
        theirs = _origin_key(parts.scheme, parts.netloc) if parts.scheme in ("http", "https") else None
        if ours is not None and theirs is not None and theirs[1:] == ours[1:]:
            return None
        return source

    def do_GET(self) -> None:
        path, _, query = self.path.split("#", 1)[0].partition("?")
        route = self.server.routes.get(path)
        if route is not None:
            try:
                code, ctype, body = route(query)
            except Exception:
                log.exception("status page %s failed", path)
                self._send(500, "text/plain; charset=utf-8", b"internal error\n")
                return
            self._send(code, ctype, body)
            return
        if path not in ("/", "/json", "/json/"):
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        try:
            doc = self.server.get_json()
            if path == "/":
                body = self.server.render(self.server.title, doc).encode("utf-8")
                ctype = "text/html; charset=utf-8"
            else:
                body = (json.dumps(doc, indent=2, default=str) + "\n").encode("utf-8")
                ctype = "application/json"
        except Exception:
            log.exception("status page %s failed", path)
            self._send(500, "text/plain; charset=utf-8", b"internal error\n")
            return
        self._send(200, ctype, body)

    def do_POST(self) -> None:
        """Kill actions, only when the daemon enabled them, and only with the token."""
        actions = self.server.actions
        path = self.path.split("?", 1)[0]
        if actions is None:
            self._not_allowed()
            return
        if path not in ("/app/kill", "/driver/kill"):
            self._send(404, "text/plain; charset=utf-8", b"not found\n")
            return
        foreign = self._foreign_origin()
        if foreign is not None:
            log.warning("refused a web kill request from %s: posted from %r", self.address_string(), foreign[:100])
            self._send(403, "text/plain; charset=utf-8", b"forbidden: cross-site request\n")
            return
        try:
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
        except ValueError:
            length = 0
        form = urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        ident = (form.get("id") or [""])[0]
        if not hmac.compare_digest(token.encode(), (self.server.token or "").encode()):
            log.warning("refused a web kill request from %s: bad token", self.address_string())
            self._send(403, "text/plain; charset=utf-8", b"forbidden: missing or wrong token\n")
            return
        message = actions(path.split("/")[1], ident)
        log.info("web kill request from %s: %s %s: %s", self.address_string(), path, ident, message)
        self._send(303, "text/plain; charset=utf-8", (message + "\n").encode(), {"Location": "/"})

    def _not_allowed(self) -> None:
        self._send(405, "text/plain; charset=utf-8", b"method not allowed: this server is read-only\n",
                   {"Allow": "GET"})

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD>; answer every method but GET with 405.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _send(self, code: int, ctype: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.debug("%s %s", self.address_string(), format % args)


class _StatusHTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck browser connection never holds up the daemon's exit

    def __init__(self, address: tuple[str, int], get_json: JsonSource, title: str, render: PageRenderer,
                 actions: KillAction | None, token: str | None, hosts: AllowedHosts,
                 routes: Mapping[str, Route] | None = None) -> None:
        self.get_json = get_json
        self.routes = dict(routes or {})
        self.title = title
        self.render = render
        self.actions = actions
        self.token = token
        self.allowed_hosts = hosts
        super().__init__(address, _Handler)


class StatusServer:
    """A running status HTTP server; :meth:`stop` shuts it down."""

    def __init__(self, httpd: _StatusHTTPServer, name: str) -> None:
        self._httpd = httpd
        self._serving = ServingThread(httpd, name)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.address[1]

    def stop(self) -> None:
        self._serving.stop(5.0)


def kill_token(secret: bytes, nonce: bytes | None = None) -> str:
    """The token web kill requests must carry: derived from the secret (never the secret
    itself) and from *nonce*, by default one drawn at random when this process started,
    so every start of a daemon has a new token."""
    nonce = _PROCESS_NONCE if nonce is None else nonce
    return hmac.new(secret, b"sparkctl web ui kill\0" + nonce, hashlib.sha256).hexdigest()


def start_status_server(host: str, port: int, get_json: JsonSource, title: str,
                        render: PageRenderer | None = None, actions: KillAction | None = None,
                        token: str | None = None, extra_hosts: str | None = None,
                        routes: Mapping[str, Route] | None = None) -> StatusServer:
    """Serve ``GET /`` (HTML) and ``GET /json`` on *host*:*port* (0: any free port) in a
    daemon thread. *get_json* is called for every request, from that request's thread.
    *routes* adds read-only GET paths: each gets the query string and answers
    (status, content type, body).
    With *actions*, ``POST /app/kill`` and ``POST /driver/kill`` (form fields ``id`` and
    ``token``) call ``actions(kind, id)``; without, every POST is refused.

    Requests must name this server in ``Host`` (see :func:`allowed_hosts`; *extra_hosts*
    defaults to ``spark.ui.allowedHosts`` from the defaults file)."""
    hosts = allowed_hosts(host, _configured_allowed_hosts() if extra_hosts is None else extra_hosts)
    httpd = _StatusHTTPServer((host, port), get_json, title, render or render_generic_page, actions, token, hosts,
                              routes)
    return StatusServer(httpd, f"webui-{port}")
