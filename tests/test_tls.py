"""TLS under every rpc connection (``spark.ssl.*``), end to end on loopback.

A CA and certificates are made with the ``openssl`` command into a temporary directory.
A real ``local-cluster`` application runs with a conf dir that turns TLS on; a real master
refuses a plaintext client (and a TLS client refuses a plaintext master) with an error
that names the cause, and keeps serving; a relay between a client and a TLS master
shows that nothing readable crosses the wire.
"""
from __future__ import annotations

import os
import pickle
import select
import shutil
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clusters import child_env, wait_for as _wait_for, write_conf_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkctl.deploy import messages as dm
from sparkctl.errors import AuthenticationError, ConfigError
from sparkctl.rpc import Connection, Server, TLSConfig, TLSConnection, connect, send_frame, serve_forever_reader
from sparkctl.rpc import tls as tls_mod
from sparkctl.rpc.auth import MAGIC

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SECRET = b"tls-test-secret-0123456789"
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make certificates"),
]


# ---------------------------------------------------------------- certificates
@dataclass(frozen=True)
class Certs:
    dir: Path
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA nobody trusts...
    other_cert: Path  # ...and a certificate it signed
    other_key: Path

    def config(self) -> TLSConfig:
        return TLSConfig(str(self.cert), str(self.key), str(self.ca))


def _openssl(*args: str, cwd: Path) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"openssl {' '.join(args)} failed:\n{r.stderr}"


def make_ca(d: Path, name: str) -> tuple[Path, Path]:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


def make_cert(d: Path, name: str, ca: str) -> tuple[Path, Path]:
    """A certificate for every process of the test cluster (loopback), signed by *ca*."""
    (d / f"{name}.ext").write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                                   "extendedKeyUsage=serverAuth,clientAuth\n"
                                   "subjectAltName=IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost\n")
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ca, _ = make_ca(d, "ca")
    cert, key = make_cert(d, "node", "ca")
    other_ca, _ = make_ca(d, "otherca")
    other_cert, other_key = make_cert(d, "stranger", "otherca")
    return Certs(d, ca, cert, key, other_ca, other_cert, other_key)


def tls_conf_dir(base: Path, certs: Certs, extra: str = "") -> Path:
    """A conf dir turning TLS on, with the certificates inside it (named relatively) and a secret."""
    conf = write_conf_dir(base, SECRET, "spark.ssl.enabled true\nspark.ssl.certFile node.pem\n"
                          f"spark.ssl.keyFile node.key\nspark.ssl.caFile ca.pem\n{extra}")
    for src, name in ((certs.ca, "ca.pem"), (certs.cert, "node.pem"), (certs.key, "node.key")):
        shutil.copy(src, conf / name)
    os.chmod(conf / "node.key", 0o600)
    return conf


def plain_conf_dir(base: Path) -> Path:
    return write_conf_dir(base, SECRET)


# ---------------------------------------------------------------- a master process
@dataclass
class Master:
    proc: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


@pytest.fixture
def start_master(tmp_path: Path) -> Iterator[Any]:
    started: list[Master] = []

    def start(conf: Path) -> Master:
        log_file = tmp_path / f"master-{len(started)}.log"
        r, w = os.pipe()
        proc = subprocess.Popen([sys.executable, "-m", "sparkctl.deploy.master", "--host", HOST, "--port", "0",
                                 "--webui-port", "0", "--ready-fd", str(w), "--log-file", str(log_file)],
                                pass_fds=[w], env=child_env(conf), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        os.close(w)
        try:
            line = _read_line(r, 30)
        finally:
            os.close(r)
        assert line.startswith("READY spark://"), f"master did not start: {line!r}\n{log_file.read_text()}"
        master = Master(proc, int(line.split()[1].rsplit(":", 1)[1]), log_file)
        started.append(master)
        return master

    yield start
    for m in started:
        if m.proc.poll() is None:
            m.proc.terminate()
        m.proc.wait(10)


def _read_line(fd: int, timeout: float) -> str:
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")


def master_state(port: int, tls: TLSConfig | None) -> dict[str, Any]:
    with connect(HOST, port, SECRET, timeout=10, tls=tls) as conn:
        conn.send(dm.RequestMasterState())
        reply = conn.recv(timeout=10)
    assert isinstance(reply, dm.MasterState)
    return reply.json


def wait_for(cond: Any, timeout: float = 10.0, what: str = "condition") -> Any:
    return _wait_for(cond, timeout, what, interval=0.02)


# ---------------------------------------------------------------- end to end
TLS_APP = """
    import operator, socket, sys
    from sparkctl import SparkContext
    from sparkctl.rpc import TLSConnection
    sc = SparkContext.getOrCreate()
    words = sc.parallelize([f"w{i % 50}" for i in range(5000)], 8)
    counts = dict(words.map(lambda w: (w, 1)).reduceByKey(operator.add, 4).collect())
    assert counts == {f"w{k}": 100 for k in range(50)}, counts
    cached = sc.parallelize(range(1000), 4).map(lambda x: x * 2).cache()
    assert cached.sum() == 999000 and cached.count() == 1000
    runtime = sc._runtime

    def speaks_first(host, port):
        # A plaintext sparkctl server sends its challenge at once; a TLS one waits for a ClientHello.
        with socket.create_connection((host, port), timeout=5) as s:
            s.settimeout(0.5)
            try:
                return bool(s.recv(64))
            except TimeoutError:
                return False

    handles = list(runtime.executors.values())
    print("EXECUTORS", len(handles))
    print("TLS_CONNECTIONS", all(isinstance(h.conn, TLSConnection) for h in handles))
    print("HOSTS", ",".join(sorted(h.host for h in handles)))
    print("PLAINTEXT_SPEAKERS", sum(speaks_first(h.host, h.port) for h in handles) + speaks_first(*runtime.address))
    sc.stop()
"""


def test_local_cluster_application_runs_over_tls(tmp_path: Path, certs: Certs) -> None:
    conf = tls_conf_dir(tmp_path, certs)
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(TLS_APP))
    r = subprocess.run([sys.executable, str(ROOT / "bin" / "sparkctl"), "submit", "--master",
                        "local-cluster[2,1,512]", str(app)], env=child_env(conf), cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    # The driver reached its private master and both workers' executors reached the driver
    # and each other (the shuffle crossed 127.0.0.2 <-> 127.0.0.3) through TLS.
    assert out["EXECUTORS"] == "2"
    assert out["HOSTS"] == "127.0.0.2,127.0.0.3"
    assert out["TLS_CONNECTIONS"] == "True"
    assert out["PLAINTEXT_SPEAKERS"] == "0"  # no block server and not the driver speaks in clear


def test_plaintext_client_is_refused_by_a_tls_master_which_keeps_serving(
        tmp_path: Path, certs: Certs, start_master: Any) -> None:
    master = start_master(tls_conf_dir(tmp_path, certs))
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match=r"spark\.ssl\.enabled"):
        connect(HOST, master.port, SECRET, timeout=1.5, tls=None)
    assert time.monotonic() - started < 5
    # A plaintext frame gets no frame back: the master answers TLS (an alert) or hangs up.
    with socket.create_connection((HOST, master.port), timeout=10) as raw:
        send_frame(raw, pickle.dumps(dm.RequestMasterState(), protocol=5))
        answer = _read_until_closed(raw, 10)
    assert MAGIC not in answer and b"MasterState" not in answer
    assert answer[:1] in (b"", b"\x15")  # nothing, or a TLS alert record
    wait_for(lambda: "failed the TLS handshake" in master.log(), what="the master's log line")
    assert master.proc.poll() is None
    state = master_state(master.port, certs.config())
    assert state["status"] == "ALIVE"


def _read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def test_tls_master_presents_its_certificate(tmp_path: Path, certs: Certs, start_master: Any) -> None:
    master = start_master(tls_conf_dir(tmp_path, certs))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=str(certs.ca))
    with socket.create_connection((HOST, master.port), timeout=10) as raw:
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
            version = s.version()
    assert der == ssl.PEM_cert_to_DER_cert(certs.cert.read_text())
    assert version in ("TLSv1.2", "TLSv1.3")


def test_tls_client_is_refused_by_a_plaintext_master(tmp_path: Path, certs: Certs, start_master: Any) -> None:
    master = start_master(plain_conf_dir(tmp_path))
    started = time.monotonic()
    with pytest.raises(AuthenticationError, match="does not speak TLS"):
        connect(HOST, master.port, SECRET, timeout=10, tls=certs.config())
    assert time.monotonic() - started < 5  # no waiting for a timeout
    assert master_state(master.port, None)["status"] == "ALIVE"


def test_untrusted_certificates_are_refused(tmp_path: Path, certs: Certs, start_master: Any) -> None:
    master = start_master(tls_conf_dir(tmp_path, certs))
    # Our certificate is signed by a CA the master does not trust.
    stranger = TLSConfig(str(certs.other_cert), str(certs.other_key), str(certs.ca))
    with pytest.raises(AuthenticationError, match="does not trust our certificate"):
        connect(HOST, master.port, SECRET, timeout=10, tls=stranger)
    # We present no certificate at all.
    with pytest.raises(AuthenticationError, match="requires a certificate"):
        connect(HOST, master.port, SECRET, timeout=10, tls=TLSConfig(None, None, str(certs.ca)))
    # We trust another CA than the one that signed the master's certificate.
    suspicious = TLSConfig(str(certs.cert), str(certs.key), str(certs.other_ca))
    with pytest.raises(AuthenticationError, match="certificate is not trusted"):
        connect(HOST, master.port, SECRET, timeout=10, tls=suspicious)
    # The right certificates and the wrong secret: TLS is not authorization.
    with pytest.raises(AuthenticationError, match="secret"):
        connect(HOST, master.port, b"not-the-secret", timeout=10, tls=certs.config())
    assert master_state(master.port, certs.config())["status"] == "ALIVE"


class Relay:
    """A TCP relay on loopback recording every byte in both directions."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = bytearray()  # client -> server
        self.downstream = bytearray()  # server -> client
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        client, _ = self.listener.accept()
        server = socket.create_connection(self.target, timeout=10)
        for src, dst, buf in ((client, server, self.upstream), (server, client, self.downstream)):
            t = threading.Thread(target=self._pump, args=(src, dst, buf), daemon=True)
            t.start()
            self.threads.append(t)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, buf: bytearray) -> None:
        try:
            while data := src.recv(65536):
                buf += data
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        for t in self.threads:
            t.join(10)


@pytest.mark.parametrize("use_tls", [True, False], ids=["tls", "plaintext-control"])
def test_nothing_readable_crosses_the_wire(tmp_path: Path, certs: Certs, start_master: Any, use_tls: bool) -> None:
    conf = tls_conf_dir(tmp_path, certs) if use_tls else plain_conf_dir(tmp_path)
    master = start_master(conf)
    relay = Relay((HOST, master.port))
    tls = certs.config() if use_tls else None
    with connect(HOST, relay.port, SECRET, timeout=10, tls=tls) as conn:
        conn.send(dm.RequestMasterState())
        reply = conn.recv(timeout=10)
        conn.send(dm.RequestMasterState())  # a second round trip over the established stream
        conn.recv(timeout=10)
    relay.close()
    assert isinstance(reply, dm.MasterState)
    url = reply.json["url"].encode()
    wire = bytes(relay.upstream) + bytes(relay.downstream)
    readable = [s for s in (MAGIC, b"RequestMasterState", b"MasterState", url, b"ALIVE") if s in wire]
    if use_tls:
        assert relay.upstream[:1] == b"\x16" and relay.downstream[:1] == b"\x16"  # TLS handshake records
        assert readable == []
    else:  # the relay does see what a plaintext connection carries
        assert readable == [MAGIC, b"RequestMasterState", b"MasterState", url, b"ALIVE"]


def test_misconfigured_tls_stops_the_master_with_one_clear_line(tmp_path: Path) -> None:
    conf = plain_conf_dir(tmp_path)
    for text, needle in (("spark.ssl.enabled true\n", "spark.ssl.certFile"),
                         ("spark.ssl.enabled maybe\n", "spark.ssl.enabled must be true or false"),
                         ("spark.ssl.enabled true\nspark.ssl.certFile nope.pem\nspark.ssl.keyFile nope.key\n",
                          "does not exist")):
        (conf / "sparkctl-defaults.conf").write_text(text)
        r = subprocess.run([sys.executable, "-m", "sparkctl.deploy.master", "--host", HOST, "--port", "0",
                            "--webui-port", "0"], env=child_env(conf), capture_output=True, text=True, timeout=30)
        assert r.returncode == 1, r.stderr
        assert needle in r.stderr and "Traceback" not in r.stderr, r.stderr


# ---------------------------------------------------------------- settings
@pytest.fixture
def tls_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """An empty SPARKCTL_SSL_* environment (empty counts as unset) restored afterwards,
    including whatever configured() exports."""
    for var in tls_mod.ENV_VARS.values():
        monkeypatch.setenv(var, "")
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(tmp_path))
    return monkeypatch


def test_settings_come_from_the_conf_file_and_the_environment(tls_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert tls_mod.configured() is None  # off by default
    conf = tmp_path / "on"
    conf.mkdir()
    (conf / "sparkctl-defaults.conf").write_text(
        "spark.ssl.enabled true\nspark.ssl.certFile certs/node.pem\nspark.ssl.keyFile /abs/node.key\n")
    tls_env.setenv("SPARKCTL_CONF_DIR", str(conf))
    # relative paths are relative to the conf dir
    assert tls_mod.configured() == TLSConfig(str(conf / "certs" / "node.pem"), "/abs/node.key", None)
    # exported for the processes this one starts (a local-cluster's daemons have their own conf dir)
    assert os.environ["SPARKCTL_SSL_ENABLED"] == "true"
    assert os.environ["SPARKCTL_SSL_CERT_FILE"] == str(conf / "certs" / "node.pem")
    # the environment wins over the file, key by key
    tls_env.setenv("SPARKCTL_SSL_ENABLED", "false")
    assert tls_mod.configured() is None
    tls_env.setenv("SPARKCTL_SSL_ENABLED", "yes")
    tls_env.setenv("SPARKCTL_SSL_CA_FILE", "ca.pem")
    assert tls_mod.configured() == TLSConfig(str(conf / "certs" / "node.pem"), "/abs/node.key",
                                             os.path.abspath("ca.pem"))
    tls_env.setenv("SPARKCTL_SSL_ENABLED", "sometimes")
    with pytest.raises(ConfigError, match="spark.ssl.enabled"):
        tls_mod.configured()


def test_a_server_needs_a_certificate(certs: Certs) -> None:
    with pytest.raises(ConfigError, match="spark.ssl.certFile"):
        Server(HOST, 0, SECRET, lambda c: None, tls=TLSConfig(None, None, str(certs.ca))).start()
    with pytest.raises(ConfigError, match="does not exist"):
        Server(HOST, 0, SECRET, lambda c: None, tls=TLSConfig(str(certs.dir / "missing.pem"), str(certs.key))).start()


# ---------------------------------------------------------------- the connection over TLS
@pytest.fixture
def tls_echo(certs: Certs) -> Iterator[Server]:
    server = Server(HOST, 0, SECRET, lambda c: serve_forever_reader(c, c.send), name="tls-echo",
                    tls=certs.config()).start()
    yield server
    server.stop()


def _frame_of_size(total: int, tag: int) -> bytes:
    """One frame of exactly *total* bytes (header included) holding ``(tag, b"x" * k)``."""
    for k in range(total):
        payload = pickle.dumps((tag, b"x" * k), protocol=5)
        if len(payload) + 8 == total:
            return len(payload).to_bytes(8, "big") + payload
    raise ValueError(total)


def test_bytes_held_inside_openssl_are_received_within_the_timeout(certs: Certs) -> None:
    # OpenSSL decrypts whole records. When the reader's buffer has room for only part of
    # one, the rest stays inside OpenSSL, where poll() on the descriptor cannot see it.
    # Laid out so that the last 100 bytes (frame 4) end up exactly there: written as 100
    # bytes, then 8 full 16 KiB records; the reader's 128 KiB buffer takes 100 + 7 records
    # plus all but 100 bytes of the 8th.
    burst = (_frame_of_size(50_000, 1) + _frame_of_size(50_000, 2) + _frame_of_size(31_072, 3)
             + _frame_of_size(100, 4))

    def on_connection(conn: Connection) -> None:
        raw = conn._sock  # type: ignore[attr-defined]
        raw.sendall(burst[:100])
        raw.sendall(burst[100:])
        serve_forever_reader(conn, lambda msg: None)

    server = Server(HOST, 0, SECRET, on_connection, name="tls-burst", tls=certs.config()).start()
    try:
        with connect(*server.address, SECRET, tls=certs.config()) as conn:
            assert isinstance(conn, TLSConnection)
            got: list[Any] = [conn.recv(timeout=3) for _ in range(4)]
    finally:
        server.stop()
    assert [message[0] for message in got] == [1, 2, 3, 4]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.one_of(st.integers(0, 300), st.integers(16_000, 200_000)), min_size=1, max_size=10))
def test_tls_messages_of_any_size_round_trip(tls_echo: Server, certs: Certs, sizes: list[int]) -> None:
    with connect(*tls_echo.address, SECRET, tls=certs.config()) as conn:
        for i, n in enumerate(sizes):
            conn.send((i, b"x" * n))
        for i, n in enumerate(sizes):
            assert conn.recv(timeout=5) == (i, b"x" * n)


def test_tls_connection_sends_and_receives_from_many_threads(tls_echo: Server, certs: Certs) -> None:
    conn: Connection = connect(*tls_echo.address, SECRET, tls=certs.config())
    got: list[Any] = []
    total = 8 * 300

    def reader() -> None:
        while len(got) < total:
            got.append(conn.recv(timeout=20))

    def sender(k: int) -> None:
        for i in range(300):
            conn.send((k, i, b"p" * (i * 97 % 5000)))

    with conn:
        threads = [threading.Thread(target=reader)] + [threading.Thread(target=sender, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert sorted((k, i) for k, i, _ in got) == [(k, i) for k in range(8) for i in range(300)]
    assert all(p == b"p" * (i * 97 % 5000) for _, i, p in got)
