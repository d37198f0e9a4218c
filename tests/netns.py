"""Real hosts for cluster tests: Linux network namespaces on a private bridge.

:class:`NamespaceNetwork` makes N "hosts", each a network namespace with one address on a
bridge this module creates in the root namespace; :class:`NamespaceCluster` runs an sshd
in every namespace (:mod:`tests.sshd_fixture`, on port 22 there: each namespace has its
own ports) and brings a sparkctl cluster up across them with ``sparkctl cluster start``::

    root namespace (this process)                 namespace sparkctl-TAG-h1 ... hN
      master, drivers, sparkctl cluster start       sshd :22 ── sparkctl worker :7078
      10.250.X.1/24 on bridge spkbrTAG                 │            └─ executors
            │                                        eth0 10.250.X.2 ... X.N+1
            └── spkTAGv1 ... spkTAGvN ───── veth pairs ────┘

Traffic stays on that bridge: a private /24 that no interface of this machine uses, no
default route in the namespaces (so nothing there can reach past the bridge, whatever the
root namespace forwards), no NAT, IP forwarding never touched, and never an
outside address. ``ip link set spkTAGvK down`` (:meth:`NamespaceHost.cut`) really
partitions host K from everything else: the master, the driver and the other workers.

The master and the drivers run in the root namespace, as ``sparkctl cluster start`` runs
the master "here" and a client-mode driver runs where it is submitted; cutting a worker's
link then separates it from both, as a failed switch port would.

Everything made here (namespaces, veth pairs, the bridge, every process inside a
namespace) is removed by :meth:`NamespaceNetwork.destroy`, which the fixtures call in
their finalizers whatever happened; :meth:`NamespaceNetwork.leftovers` lists what of it
is still there, for the tests to insist on nothing.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.sshd_fixture import (SSHServer, make_key, processes_mentioning, sparkctl_env,
                                sshd_missing_reason)

ROOT = Path(__file__).resolve().parent.parent
IP = "ip"
SUBNET_PREFIX = "10.250"  # 10.250.X.0/24, X the first one no interface here uses
WORKER_PORT = 7078  # the same on every host: each namespace has its own ports


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=check)


def netns_missing_reason() -> str | None:
    """Why namespace hosts cannot be made here, or None if they can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    if shutil.which(IP) is None:
        return "the ip command (iproute2) is not installed; .ci/run installs iproute2"
    probe = f"spkprobe{os.getpid() % 100000}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip() or made.returncode}"
    try:
        # What the cluster does in each: run a command there, with a tmpfs mounted over a dir.
        ran = subprocess.run([IP, "netns", "exec", probe, "sh", "-c", _MOUNT_PROBE], capture_output=True, text=True,
                             timeout=30)
    finally:
        _ip("netns", "del", probe, check=False)
    if ran.returncode != 0:
        return f"cannot run a command with a private mount in a network namespace: {ran.stderr.strip()}"
    return sshd_missing_reason()


_MOUNT_PROBE = 'd=$(mktemp -d) && mount -t tmpfs -o size=64k probe "$d" && umount "$d" && rmdir "$d"'


def _used_subnets() -> set[str]:
    out = _ip("-o", "-4", "addr", "show").stdout
    return set(re.findall(rf"\binet ({re.escape(SUBNET_PREFIX)}\.\d+)\.\d+/", out))


@dataclass
class NamespaceHost:
    """One "machine": a network namespace with one address."""

    netns: str
    address: str
    veth: str  # the root namespace's end of its link, on the bridge

    def command(self, *argv: str) -> list[str]:
        """*argv* run inside this host's namespace."""
        return [IP, "netns", "exec", self.netns, *argv]

    def cut(self) -> None:
        """Partition this host: its link to the bridge goes down."""
        _ip("link", "set", self.veth, "down")

    def heal(self) -> None:
        _ip("link", "set", self.veth, "up")

    def pids(self) -> list[int]:
        """Every process in this host's namespace."""
        r = _ip("netns", "pids", self.netns, check=False)
        return [int(p) for p in r.stdout.split()] if r.returncode == 0 else []


class NamespaceNetwork:
    """N namespace hosts on one bridge; :meth:`create`, then :meth:`destroy` (always)."""

    def __init__(self, n: int) -> None:
        self.tag = f"{os.getpid() % 100000:x}"
        self.bridge = f"spkbr{self.tag}"
        self.hosts: list[NamespaceHost] = []
        self.bridge_address = ""
        self._n = n
        self._made_bridge = False

    def create(self) -> NamespaceNetwork:
        used = _used_subnets()
        free = next((f"{SUBNET_PREFIX}.{x}" for x in range(256) if f"{SUBNET_PREFIX}.{x}" not in used), None)
        if free is None:
            raise RuntimeError(f"no free {SUBNET_PREFIX}.X.0/24 subnet on this machine")
        self.bridge_address = f"{free}.1"
        _ip("link", "add", self.bridge, "type", "bridge")
        self._made_bridge = True
        _ip("addr", "add", f"{self.bridge_address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i in range(1, self._n + 1):
            host = NamespaceHost(f"sparkctl-{self.tag}-h{i}", f"{free}.{i + 1}", f"spk{self.tag}v{i}")
            self.hosts.append(host)  # before it exists: destroy() removes what got made
            _ip("netns", "add", host.netns)
            _ip("link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            _ip("link", "set", host.veth, "master", self.bridge)
            _ip("link", "set", host.veth, "up")
            _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _ip("-n", host.netns, "link", "set", "eth0", "up")
            _ip("-n", host.netns, "link", "set", "lo", "up")
        return self

    def destroy(self, grace: float = 5.0) -> None:
        """End every process in the namespaces (by pid), then remove namespaces, links, bridge."""
        pids = {p for h in self.hosts for p in h.pids()}
        _signal(pids, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while pids and time.monotonic() < deadline:
            pids = {p for h in self.hosts for p in h.pids()}
            time.sleep(0.05)  # processes on their way out: poll, within the grace period
        _signal(pids, signal.SIGKILL)
        for h in self.hosts:
            _ip("netns", "del", h.netns, check=False)
            if _link_exists(h.veth):  # gone with its peer, normally
                _ip("link", "del", h.veth, check=False)
        if self._made_bridge:
            _ip("link", "del", self.bridge, check=False)
        deadline = time.monotonic() + 10
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)  # the kernel frees a deleted namespace's links asynchronously


    def leftovers(self) -> list[str]:
        """What of this network still exists (namespaces, links), for a test to insist on none."""
        namespaces = _ip("netns", "list", check=False).stdout
        listed = {line.split()[0] for line in namespaces.splitlines() if line.strip()}
        left = [f"netns {h.netns}" for h in self.hosts if h.netns in listed]
        links = [self.bridge, *(h.veth for h in self.hosts)]
        return left + [f"link {name}" for name in links if _link_exists(name)]


def _link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def _signal(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# sh -c SCRIPT hide DIR... -- COMMAND...: an empty tmpfs over each DIR, then COMMAND.
_HIDE_THEN_EXEC = ('while [ "$1" != -- ]; do mount -t tmpfs -o size=64k,mode=0700 sparkctl-hidden "$1" || exit 1; '
                   'shift; done; shift; exec "$@"')


class NamespaceCluster:
    """An sshd on every namespace host, this machine's conf dirs, and ``sparkctl`` to run
    against them: :meth:`start` brings the cluster up with ``sparkctl cluster start``.

    Each host gets its own conf, pid, log and work dirs, as separate machines would have,
    and sees neither the others' nor :attr:`driver_dir`, the driver's own disk. The rest
    of the filesystem (Python, sparkctl, the test's other files) stands for software
    installed on every host and for shared storage.
    """

    def __init__(self, base: Path, network: NamespaceNetwork, settings: dict[str, str] | None = None) -> None:
        self.base = base
        self.network = network
        self.hosts = network.hosts
        self.conf = base / "conf"
        self.conf.mkdir(parents=True)
        self.client_key = base / "id_ed25519"
        client_public = make_key(self.client_key)
        self.driver_dir = base / "driver"
        self.driver_dir.mkdir()
        for h in self.hosts:
            self.host_dir(h).mkdir(parents=True)
        self.sshd: list[SSHServer] = []
        for h in self.hosts:
            # What this machine keeps to itself (the driver's dir, the other hosts' dirs) is
            # hidden from the host's sshd and everything it starts: `ip netns exec` gives
            # it a mount namespace of its own, and an empty tmpfs goes over each of them.
            hidden = [self.driver_dir, *(self.host_dir(o) for o in self.hosts if o is not h)]
            launcher = h.command("sh", "-c", _HIDE_THEN_EXEC, "hide", *map(str, hidden), "--")
            server = SSHServer(base / "ssh" / h.address, (h.address,), port=22, launcher=tuple(launcher))
            server.authorized_keys.write_text(client_public + "\n")  # one key logs in everywhere
            self.sshd.append(server)
        self.known_hosts = base / "known_hosts"
        self.known_hosts.write_text("".join(s.known_hosts() for s in self.sshd))
        self.master_port = _free_port(network.bridge_address)
        self.url = f"spark://{network.bridge_address}:{self.master_port}"
        defaults = {"spark.master": self.url, "spark.driver.host": network.bridge_address, **(settings or {})}
        (self.conf / "sparkctl-defaults.conf").write_text("".join(f"{k} {v}\n" for k, v in defaults.items()))
        self.env = sparkctl_env(base, self.conf)
        self.ssh_args = ["--identity", str(self.client_key), "--known-hosts", str(self.known_hosts)]

    def host_dir(self, h: NamespaceHost) -> Path:
        return self.base / "hosts" / h.address

    def workers_file(self, cores: int = 1, memory: str = "1g") -> str:
        lines = []
        for h in self.hosts:
            d = self.host_dir(h)
            lines.append(f"{h.address} cores={cores} memory={memory} python={sys.executable} pythonpath={ROOT} "
                         f"port={WORKER_PORT} webui_port=0 conf_dir={d / 'conf'} pid_dir={d / 'pids'} "
                         f"log_dir={d / 'logs'} work_dir={d / 'work'}\n")
        return "".join(lines)

    def start_sshd(self) -> None:
        for s in self.sshd:
            s.start()

    def sparkctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
        """``python -m sparkctl.cli ARGS`` here, in the root namespace, with this cluster's dirs."""
        env = {k: v for k, v in os.environ.items() if k not in ("SPARKCTL_SECRET", "SPARKCTL_MASTER", "SSH_AUTH_SOCK")}
        env.update(self.env)
        return subprocess.run([sys.executable, "-m", "sparkctl.cli", *args], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=str(self.base), stdin=subprocess.DEVNULL)

    def start(self, cores: int = 1, memory: str = "1g") -> subprocess.CompletedProcess[str]:
        (self.conf / "workers").write_text(self.workers_file(cores, memory))
        return self.sparkctl("cluster", "start", "--webui-port", "0", *self.ssh_args)

    def stop(self) -> subprocess.CompletedProcess[str]:
        return self.sparkctl("cluster", "stop", *self.ssh_args)

    def log_text(self) -> str:
        """Every daemon log of the cluster (master and workers) and every executor's stderr,
        for a failing assertion."""
        parts = []
        paths = sorted(self.base.glob("logs/*")) + sorted(self.base.glob("hosts/*/logs/*"))
        paths += sorted(self.base.glob("hosts/*/work/*/*/stderr"))  # the executors' own logs
        for path in paths:
            try:
                parts.append(f"==> {path} <==\n{path.read_text(errors='replace')[-4000:]}")
            except OSError:
                pass
        return "\n".join(parts)

    def shutdown(self) -> list[tuple[int, str]]:
        """Stop what runs (master, workers, executors, sshd), whatever state it is in;
        returns this cluster's processes still alive afterwards (none, normally)."""
        from sparkctl.deploy import daemon

        for h in self.hosts:  # a cut link would make `cluster stop` wait for SSH in vain
            if _link_exists(h.veth):
                h.heal()
        try:
            self.stop()
        except subprocess.TimeoutExpired:
            pass
        saved = os.environ.get("SPARKCTL_PID_DIR")
        try:
            os.environ["SPARKCTL_PID_DIR"] = self.env["SPARKCTL_PID_DIR"]
            daemon.stop_daemons("master", grace=5)
        finally:
            if saved is None:
                os.environ.pop("SPARKCTL_PID_DIR", None)
            else:
                os.environ["SPARKCTL_PID_DIR"] = saved
        for s in self.sshd:
            s.stop()
        deadline = time.monotonic() + 10
        while processes_mentioning(str(self.base)) and time.monotonic() < deadline:
            time.sleep(0.05)  # daemons on their way out: poll, within a deadline
        return processes_mentioning(str(self.base))


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port
