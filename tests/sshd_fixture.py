"""A real OpenSSH server on loopback for the SSH launcher's tests.

:class:`SSHServer` runs ``/usr/sbin/sshd -D -e -f CONFIG`` as a child of the test process,
with its own host key, an authorized_keys file holding a generated client key, and
``ListenAddress`` on several loopback addresses (127.0.0.1, .2, .3 by default), all on
one free port, so ``127.0.0.2:PORT`` and ``127.0.0.3:PORT`` in conf/workers are two
"hosts" whose SSH target is also the address their worker binds to::

    test ── paramiko ──▶ 127.0.0.2:PORT ┐
                         127.0.0.3:PORT ┴─ sshd (child of pytest) ─▶ sessions as this user

Nothing here is specific to sparkctl except the helpers that find its processes.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def sshd_missing_reason() -> str | None:
    """Why the SSH tests cannot run here, or None if they can."""
    if not os.path.exists(SSHD):
        return f"OpenSSH's server ({SSHD}) is not installed; .ci/run installs openssh-server"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is not installed"
    try:
        # sshd refuses to start without its privilege-separation directory.
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    except OSError as e:
        return f"cannot create sshd's privilege separation dir /run/sshd: {e.strerror}"
    return None


def make_key(path: Path, kind: str = "ed25519") -> str:
    """A new passphrase-less key pair at *path* (and *path*.pub); returns the public line."""
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", f"sparkctl-test-{kind}", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return path.with_name(path.name + ".pub").read_text().strip()


def known_hosts_line(address: str, port: int, public_line: str) -> str:
    """A known_hosts line for *address*:*port* (OpenSSH's ``[addr]:port`` form)."""
    kind, blob = public_line.split()[:2]
    name = address if port == 22 else f"[{address}]:{port}"
    return f"{name} {kind} {blob}\n"


def _port_free_on(port: int, addresses: Iterable[str]) -> bool:
    for address in addresses:
        with socket.socket() as s:
            try:
                s.bind((address, port))
            except OSError:
                return False
    return True


def _free_port(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port: int = s.getsockname()[1]
        if _port_free_on(port, addresses[1:]):
            return port
    raise RuntimeError(f"no port free on all of {addresses}")


class SSHServer:
    """sshd in the foreground on *addresses*; :meth:`start` and :meth:`stop` it."""

    def __init__(self, base: Path, addresses: tuple[str, ...] = ("127.0.0.1", "127.0.0.2", "127.0.0.3"),
                 port: int = 0, launcher: tuple[str, ...] = ()) -> None:
        """*port* 0 picks a free one; *launcher* prefixes sshd's command line (e.g.
        ``ip netns exec NS`` to run it in a network namespace, where *port* may be 22)."""
        self.base = base.resolve()  # sshd wants absolute paths
        self.base.mkdir(parents=True, exist_ok=True)
        self.addresses = list(addresses)
        self.fixed_port = port
        self.launcher = list(launcher)
        self.port = port
        self.host_key = self.base / "ssh_host_ed25519_key"
        self.host_public = make_key(self.host_key)
        self.client_key = self.base / "id_ed25519"
        self.client_public = make_key(self.client_key)
        self.authorized_keys = self.base / "authorized_keys"
        self.authorized_keys.write_text(self.client_public + "\n")
        self.config = self.base / "sshd_config"
        self.log = self.base / "sshd.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> None:
        listen = "".join(f"ListenAddress {a}\n" for a in self.addresses)
        self.config.write_text(
            f"Port {self.port}\n{listen}"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.base / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            # the tmp dir's modes are not sshd's business in a test
            "StrictModes no\n"
            "UsePAM no\n"
            # CI runs as root; key-only logins either way
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "X11Forwarding no\n"
            "AllowTcpForwarding no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "MaxStartups 100\n"
            "LogLevel VERBOSE\n"
        )

    def start(self, timeout: float = 15.0) -> None:
        """Start sshd and wait until every address accepts connections."""
        last_error = ""
        for _attempt in range(3):  # another process may grab the port between check and bind
            self.port = self.fixed_port or _free_port(self.addresses)
            self._write_config()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([*self.launcher, SSHD, "-D", "-e", "-f", str(self.config)],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + timeout
            pending = list(self.addresses)
            while pending and self.proc.poll() is None and time.monotonic() < deadline:
                with socket.socket() as s:
                    s.settimeout(1.0)
                    if s.connect_ex((pending[0], self.port)) == 0:
                        pending.pop(0)
                        continue
                time.sleep(0.02)  # sshd is still binding: poll again, within the deadline
            if not pending:
                return
            last_error = self.log_text()
            self.stop()
        raise RuntimeError(f"sshd did not start listening on {self.addresses}:\n{last_error}")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def workers_line(self, address: str, **settings: object) -> str:
        """A conf/workers line for a worker on *address*, reached through this sshd."""
        extra = "".join(f" {k}={v}" for k, v in settings.items())
        return f"{address}:{self.port}{extra}\n"

    def known_hosts(self, addresses: Iterable[str] | None = None, public_line: str | None = None) -> str:
        """known_hosts content for *addresses* (default: all) with this server's key (or another)."""
        return "".join(known_hosts_line(a, self.port, public_line or self.host_public)
                       for a in (self.addresses if addresses is None else addresses))


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line, working directory or environment mentions *text*
    (daemons started over SSH are no children of ours: find them by their paths)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
            if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"Z":
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            try:
                cwd = os.readlink(f"/proc/{name}/cwd")
            except OSError:
                cwd = ""
            try:
                with open(f"/proc/{name}/environ", "rb") as f:
                    env = f.read().decode(errors="replace")
            except OSError:
                env = ""
        except (OSError, ValueError):
            continue
        if text in cmd or cwd.startswith(text) or text in env:
            found.append((int(name), cmd))
    return found


def sparkctl_env(base: Path, conf: Path) -> dict[str, str]:
    """The environment a cluster's ``sparkctl`` commands run with: this checkout on the path,
    ``conf`` as the conf dir, and pid, log and work dirs under ``base``."""
    return {
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
        "SPARKCTL_CONF_DIR": str(conf),
        "SPARKCTL_PID_DIR": str(base / "pids"),
        "SPARKCTL_LOG_DIR": str(base / "logs"),
        "SPARKCTL_WORK_DIR": str(base / "work"),
    }
