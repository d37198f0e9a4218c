"""Headless Chromium for the UI tests: load a page, let its scripts run, and read back the
DOM they built (``--dump-dom``) or a picture of it (``--screenshot``).

Chromium may only reach loopback: no proxy, and every host name but 127.0.0.1 resolves to
nothing. Each run gets its own profile directory and its own process group (a new
session), and the whole group is killed when the run ends, so no renderer, GPU or zygote
process outlives it.

The pages record what went wrong on their <html> element (``sparkctl/ui/static/errors.js``
and ``main.js``): ``data-js-errors`` and ``data-fetch-errors`` (JSON lists), and
``data-ui-state`` ("ready" once the page has drawn its data). :class:`PageDump` reads them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Iterator

from tests.clusters import proc_stats

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


def find_chromium() -> str | None:
    """The Chromium binary on PATH (Debian's package is ``chromium``), or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


# ---------------------------------------------------------------------------- the DOM, parsed
@dataclass
class Node:
    """An element of the dumped DOM: enough of a tree to find elements and read text."""
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)
    parent: Node | None = None

    def iter(self) -> Iterator[Node]:
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.iter()

    def find_all(self, tag: str | None = None, **attrs: str | bool) -> list[Node]:
        """Descendants (and self) with this tag and these attributes; an attribute given
        as True only has to be present. Attribute names use '_' for '-'
        (``data_task_id=True``); ``class_`` matches one class among several."""
        want = {k.rstrip("_").replace("_", "-"): v for k, v in attrs.items()}
        out = []
        for n in self.iter():
            if tag is not None and n.tag != tag:
                continue
            ok = True
            for k, v in want.items():
                if k not in n.attrs:
                    ok = False
                elif v is True:
                    continue
                elif k == "class":
                    ok = ok and str(v) in n.attrs[k].split()
                else:
                    ok = ok and n.attrs[k] == str(v)
            if ok:
                out.append(n)
        return out

    def find(self, tag: str | None = None, **attrs: str | bool) -> Node:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs} in the page"
        return found[0]

    def text(self) -> str:
        parts: list[str] = []
        for c in self.children:
            parts.append(c if isinstance(c, str) else c.text())
        return "".join(parts)

    def cell(self, col: str) -> Node:
        """The <td data-col=col> of a table row."""
        return self.find("td", data_col=col)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.cur = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, parent=self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, parent=self.cur))

    def handle_endtag(self, tag: str) -> None:
        n: Node | None = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse_html(html: str) -> Node:
    b = _TreeBuilder()
    b.feed(html)
    b.close()
    return b.root


@dataclass
class PageDump:
    url: str
    html: str
    stderr: str

    def __post_init__(self) -> None:
        self.doc = parse_html(self.html)
        found = self.doc.find_all("html")
        self.root_attrs: dict[str, str] = found[0].attrs if found else {}

    def _list(self, attr: str) -> list[str]:
        raw = self.root_attrs.get(attr)
        return list(json.loads(raw)) if raw else []

    @property
    def js_errors(self) -> list[str]:
        return self._list("data-js-errors")

    @property
    def fetch_errors(self) -> list[str]:
        return self._list("data-fetch-errors")

    @property
    def state(self) -> str:
        return self.root_attrs.get("data-ui-state", "")

    def assert_clean(self) -> None:
        """The page drew its data, with no JavaScript error and no failed request."""
        assert self.html.strip(), f"{self.url}: Chromium dumped nothing; stderr:\n{self.stderr[-3000:]}"
        assert not self.js_errors, f"{self.url}: JavaScript errors: {self.js_errors}"
        assert not self.fetch_errors, f"{self.url}: failed requests: {self.fetch_errors}"
        assert self.state == "ready", f"{self.url}: page state {self.state!r}, not 'ready'"


# ---------------------------------------------------------------------------- the browser
class Chromium:
    """One headless Chromium per call, on loopback only."""

    def __init__(self, binary: str, workdir: Path | None = None) -> None:
        self.binary = binary
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="sparkctl-chromium-"))
        self.runs = 0
        self.pgids: list[int] = []

    def _flags(self) -> list[str]:
        self.runs += 1
        profile = self.workdir / f"profile-{self.runs}"
        profile.mkdir(parents=True, exist_ok=True)
        return [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--disable-breakpad", "--metrics-recording-only",
            "--mute-audio", "--password-store=basic", "--use-mock-keychain",
            "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication",
        ]

    def _run(self, args: list[str], timeout: float) -> tuple[str, str]:
        env = dict(os.environ)
        for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            env.pop(k, None)
        env["HOME"] = str(self.workdir)  # keep Chromium's caches and crash dirs out of the real home
        proc = subprocess.Popen([self.binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self.pgids.append(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(proc.pid)
            out, err = proc.communicate()
            raise AssertionError(f"Chromium did not finish in {timeout}s: {' '.join(args[-2:])}\n"
                                 f"{err.decode(errors='replace')[-3000:]}")
        finally:
            self._kill_group(proc.pid)
        return out.decode(errors="replace"), err.decode(errors="replace")

    @staticmethod
    def _kill_group(pgid: int) -> None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def dump_dom(self, url: str, budget_ms: int = 3000, timeout: float = 60) -> PageDump:
        """Load *url*, run its scripts for *budget_ms* of virtual time (timers fire at
        once; time stands still while a request is pending), and return the DOM."""
        out, err = self._run([*self._flags(), f"--virtual-time-budget={budget_ms}", "--dump-dom", url], timeout)
        return PageDump(url, out, err)

    def screenshot(self, url: str, path: Path, width: int = 1360, height: int = 900,
                   budget_ms: int = 3000, timeout: float = 60) -> Path:
        self._run([*self._flags(), f"--virtual-time-budget={budget_ms}", f"--window-size={width},{height}",
                   "--hide-scrollbars", "--run-all-compositor-stages-before-draw",
                   f"--screenshot={path}", url], timeout)
        assert path.exists() and path.stat().st_size > 0, f"no screenshot of {url}"
        return path

    def processes_left(self) -> list[int]:
        """Processes of any group this browser started that are still alive."""
        return [pid for pid, state, _, pgid in proc_stats() if state != b"Z" and pgid in self.pgids]

    def close(self) -> None:
        for pgid in self.pgids:
            self._kill_group(pgid)
        shutil.rmtree(self.workdir, ignore_errors=True)
