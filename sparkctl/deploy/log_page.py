"""The worker's log pages: executors' and cluster-mode drivers' stdout and stderr over HTTP.

```
 browser ── GET /logPage/?appId=A&executorId=E&logType=stderr[&offset=N&byteLength=M] ──▶ worker web UI
         ◀── HTML: bytes [start, end) of WORK_DIR/A/E/stderr, links to the bytes before and after
 curl    ── GET /log?driverId=D&logType=stdout ──▶ the same bytes as text/plain
```

Spark's worker serves the same two routes with the same query parameters, so a link
made for Spark's worker works here. Without ``offset`` the page shows the last
``byteLength`` bytes (100 KiB by default): the end of a log is where the error is.

Everything here is read-only, and only two names are ever opened: ``stdout`` and
``stderr``, in an executor's directory (``WORK_DIR/APP_ID/EXECUTOR_ID``) or a driver's
(``WORK_DIR/DRIVER_ID``). The ids in the query must be plain path components, as the
worker requires of them when it launches (so ``..`` and ``/`` never pass), and the file's
real path must stay inside the work dir: a symlink someone planted there that points
elsewhere is refused. A driver's directory also holds its secret, which no query can name.

The URLs an executor's logs have (Spark's "Log Urls" of an executor) are
:func:`executor_log_urls`; the worker hands them to the executor it launches in the
environment variable :data:`LOG_URLS_ENV`, as JSON ``{"stdout": url, "stderr": url}``.
"""
from __future__ import annotations

import html
import os
import re
import stat
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LogRequestError", "LogChunk", "LOG_TYPES", "LOG_URLS_ENV", "DEFAULT_BYTES", "MAX_BYTES",
           "LogOwner", "resolve_log", "read_log", "log_query", "executor_log_urls", "serve_log_page", "serve_raw_log"]

LOG_TYPES = ("stdout", "stderr")
#: The executor's environment variable holding its log URLs (JSON {"stdout": url, "stderr": url}).
LOG_URLS_ENV = "SPARKCTL_EXECUTOR_LOG_URLS"
#: Bytes shown when the query names none: Spark's worker shows 100 KiB too.
DEFAULT_BYTES = 100 * 1024
#: The most one request reads, so one page cannot make the worker hold a whole huge log.
MAX_BYTES = 4 << 20
# The worker's own rule for ids that become directory names (see worker._SAFE_ID).
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")

Response = tuple[int, str, bytes]
#: Wraps a page body (escaped HTML) in the daemon's layout: (title, body) -> page.
PageFn = Callable[[str, list[str]], str]


class LogRequestError(Exception):
    """A log request that cannot be served; ``status`` is its HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LogChunk:
    """Bytes ``[start, end)`` of a log file that is ``total`` bytes long."""

    data: bytes
    start: int
    end: int
    total: int


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise LogRequestError(400, f"{name} is given {len(values)} times; give it once")
    return values[0]


def _int_param(params: dict[str, list[str]], name: str, low: int) -> int | None:
    text = _one(params, name)
    if text is None or text == "":
        return None
    try:
        value = int(text)
    except ValueError:
        raise LogRequestError(400, f"{name} must be a whole number, not {text[:40]!r}") from None
    if value < low:
        raise LogRequestError(400, f"{name} must be at least {low}, not {value}")
    return value


def _check_id(kind: str, value: str) -> None:
    if not _SAFE_ID.fullmatch(value):
        raise LogRequestError(400, f"{value[:80]!r} is not a valid {kind}: one path component of letters, "
                                   f"digits, '.', '_' or '-' is")


def resolve_log(work_dir: str, params: dict[str, list[str]]) -> tuple[str, str]:
    """The path of the log a query names, and a description of it ("stderr of executor 3 of
    app-..."); :class:`LogRequestError` (400 or 404) when it names none this worker has."""
    log_type = _one(params, "logType")
    if log_type not in LOG_TYPES:
        raise LogRequestError(400, "logType must be stdout or stderr")
    app_id, executor_id, driver_id = (_one(params, k) for k in ("appId", "executorId", "driverId"))
    root = os.path.realpath(work_dir)
    if driver_id is not None:
        if app_id is not None or executor_id is not None:
            raise LogRequestError(400, "give either driverId, or appId and executorId")
        _check_id("driver id", driver_id)
        if not driver_id.startswith("driver-"):
            raise LogRequestError(400, f"{driver_id!r} is not a driver id (they start with 'driver-')")
        directory = os.path.join(root, driver_id)
        what = f"{log_type} of driver {driver_id}"
        if not os.path.isdir(directory):
            raise LogRequestError(404, f"no driver {driver_id} has run on this worker "
                                       f"(or its directory was cleaned up)")
    else:
        if app_id is None or executor_id is None:
            raise LogRequestError(400, "give appId and executorId (or driverId) to name a log")
        _check_id("application id", app_id)
        _check_id("executor id", executor_id)
        if app_id.startswith("driver-"):
            raise LogRequestError(400, f"{app_id!r} is a driver id: ask with driverId")
        app_dir = os.path.join(root, app_id)
        if not os.path.isdir(app_dir):
            raise LogRequestError(404, f"no application {app_id} has run on this worker "
                                       f"(or its directory was cleaned up)")
        directory = os.path.join(app_dir, executor_id)
        what = f"{log_type} of executor {executor_id} of {app_id}"
        if not os.path.isdir(directory):
            raise LogRequestError(404, f"application {app_id} has had no executor {executor_id} on this worker")
    path = os.path.join(directory, log_type)
    real = os.path.realpath(path)
    if os.path.commonpath([root, real]) != root:
        raise LogRequestError(403, f"the {what} lies outside this worker's work dir")
    return real, what


def read_log(path: str, offset: int | None, length: int) -> LogChunk:
    """*length* bytes of *path* from *offset*, or its last *length* bytes without one; both
    clamped to the file. A file that is no regular file (or a symlink) is refused."""
    length = max(0, min(length, MAX_BYTES))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise LogRequestError(404, "the log file does not exist (yet)") from None
    except OSError as e:
        raise LogRequestError(403, f"the log file cannot be read: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise LogRequestError(403, "the log is not a regular file")
        total = st.st_size
        start = max(total - length, 0) if offset is None else min(offset, total)
        f.seek(start)
        data = f.read(min(length, total - start))
    return LogChunk(data, start, start + len(data), total)


@dataclass(frozen=True)
class LogOwner:
    """Whose logs: an executor (``app_id`` and ``executor_id``) or a driver (``driver_id``)."""

    app_id: str = ""
    executor_id: str = ""
    driver_id: str = ""


def log_query(owner: LogOwner, log_type: str, offset: int | None = None, byte_length: int | None = None) -> str:
    """The query string naming one log (and optionally a byte range), as Spark's worker spells it."""
    fields: list[tuple[str, str]] = []
    if owner.driver_id:
        fields.append(("driverId", owner.driver_id))
    else:
        fields += [("appId", owner.app_id), ("executorId", owner.executor_id)]
    fields.append(("logType", log_type))
    if offset is not None:
        fields.append(("offset", str(offset)))
    if byte_length is not None:
        fields.append(("byteLength", str(byte_length)))
    return urllib.parse.urlencode(fields)


def executor_log_urls(worker_webui_url: str, app_id: str, executor_id: str) -> dict[str, str]:
    """``{"stdout": url, "stderr": url}`` of an executor's log pages on the worker whose web UI
    is at *worker_webui_url* (``http://host:port``): what Spark lists as an executor's log URLs."""
    base = worker_webui_url.rstrip("/")
    owner = LogOwner(app_id=app_id, executor_id=executor_id)
    return {t: f"{base}/logPage/?{log_query(owner, t)}" for t in LOG_TYPES}


def _parse(query: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(query, keep_blank_values=True, max_num_fields=20)


def _read(work_dir: str, query: str) -> tuple[dict[str, list[str]], str, LogChunk]:
    try:
        params = _parse(query)
    except ValueError:
        raise LogRequestError(400, "too many query fields") from None
    path, what = resolve_log(work_dir, params)
    offset = _int_param(params, "offset", 0)
    length = _int_param(params, "byteLength", 1)
    return params, what, read_log(path, offset, DEFAULT_BYTES if length is None else length)


def _error(e: LogRequestError) -> Response:
    return e.status, "text/plain; charset=utf-8", f"{e}\n".encode()


def serve_raw_log(work_dir: str, query: str) -> Response:
    """``GET /log?...``: the bytes of the range, as text."""
    try:
        _, _, chunk = _read(work_dir, query)
    except LogRequestError as e:
        return _error(e)
    return 200, "text/plain; charset=utf-8", chunk.data


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    if n < 1 << 30:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / (1 << 30):.1f} GiB"


def serve_log_page(work_dir: str, query: str, render: PageFn) -> Response:
    """``GET /logPage/?...``: the range in a page, with links to the bytes before and after
    it and to the raw text. *render* wraps the body in the daemon's page layout."""
    try:
        params, what, chunk = _read(work_dir, query)
    except LogRequestError as e:
        return _error(e)
    owner = LogOwner(_one(params, "appId") or "", _one(params, "executorId") or "", _one(params, "driverId") or "")
    log_type = _one(params, "logType") or "stdout"
    span = max(chunk.end - chunk.start, _int_param(params, "byteLength", 1) or DEFAULT_BYTES)
    links = []
    if chunk.start > 0:
        q = log_query(owner, log_type, max(chunk.start - span, 0), min(span, chunk.start))
        links.append(f'<a href="/logPage/?{html.escape(q)}">&laquo; earlier bytes</a>')
    if chunk.end < chunk.total:
        q = log_query(owner, log_type, chunk.end, span)
        links.append(f'<a href="/logPage/?{html.escape(q)}">later bytes &raquo;</a>')
    q = log_query(owner, log_type)
    links.append(f'<a href="/logPage/?{html.escape(q)}">end of the log</a>')
    raw = log_query(owner, log_type, chunk.start, max(chunk.end - chunk.start, 1))
    links.append(f'<a href="/log?{html.escape(raw)}">raw text</a>')
    links.append('<a href="/">back to the worker</a>')
    body = [
        f'<p class="loginfo">Bytes {chunk.start:,}&ndash;{chunk.end:,} of {chunk.total:,} '
        f"({html.escape(_size(chunk.total))} in all)</p>",
        '<p class="lognav">' + " &middot; ".join(links) + "</p>",
        '<pre class="log">' + html.escape(chunk.data.decode("utf-8", "replace")) + "</pre>",
    ]
    return 200, "text/html; charset=utf-8", render(what, body).encode("utf-8")
