# mypy: disable-error-code="arg-type"
"""Fuzzing every daemon's port with real processes on loopback.

```
 this test (hypothesis) ──bytes / frames / messages──▶ master    (rpc port)
                                                      worker    (rpc port)
                                                      executor  (block server port)
                        ──as its fake driver─────────▶ executor  (driver connection)
                                                      driver    (a SparkContext's port)
```

Before the handshake: random bytes, truncated frames, huge length headers. After a
correct handshake: frames that are not pickles, pickles of unknown classes, messages
with fields of the wrong type, pickles that are no message at all. After each batch,
each daemon is still up and serves a legitimate client: a status request to the master,
a driver log request to the worker (which also stays registered), a shuffle block fetch
from the executor (whose driver link stays up), a job on the driver's context.

Also: a peer that never finishes the handshake is dropped after the handshake timeout
while others are served; 300 idle sockets do not starve a legitimate client; and a
pickle sent before the handshake is never unpickled (it would create a file).

The tests at the end pin inputs that once took a daemon down (found by this fuzzing),
one per bug, as regression tests.
"""
from __future__ import annotations

import builtins
import collections
import dataclasses
import datetime
import fractions
import os
import pickle
import queue
import select
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sparkctl.deploy.client import spawn_ready
from tests.clusters import child_env, wait_for, write_conf_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparkctl.deploy import messages as dm
from sparkctl.errors import SparkctlError
from sparkctl.executor.messages import BlockData, FetchCachedBlock, FetchShuffleBlock, FetchShuffleBlocks
from sparkctl.rpc import Connection, Server, client_handshake, connect, send_frame
from sparkctl.rpc.auth import MAX_AUTH_FRAME
from sparkctl.rpc.framing import HEADER
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.backend import spawn_executor, stop_process

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
SECRET = b"fuzz-secret-9f1c0a7e5b3d"
pytestmark = pytest.mark.timeout(120)

FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


# ================================================================ the daemons
def make_conf(base: Path) -> Path:
    return write_conf_dir(base, SECRET)


def start_ready(cmd: list[str], env: dict[str, str], log_file: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start a daemon with ``--ready-fd``; return it and its READY line."""
    return spawn_ready(cmd, env, str(log_file))


def ask_master(port: int) -> dict[str, Any]:
    with connect(HOST, port, SECRET, timeout=10) as conn:
        conn.send(dm.RequestMasterState())
        reply = conn.recv(timeout=10)
    assert isinstance(reply, dm.MasterState), reply
    return reply.json


class FakeDriver:
    """The driver side of executors we start ourselves: registers them, answers heartbeats,
    and lets a test send anything on their driver connection."""

    def __init__(self) -> None:
        self._registered: queue.Queue[tuple[Connection, m.RegisterExecutor]] = queue.Queue()
        self.heartbeats: dict[str, int] = collections.Counter()
        self.server = Server(HOST, 0, SECRET, self._on_connection, name="fake-driver").start()

    def _on_connection(self, conn: Connection) -> None:
        reg = conn.recv(timeout=30)
        assert isinstance(reg, m.RegisterExecutor)
        conn.send(m.RegisteredExecutor("app-fuzz", {}))
        self._registered.put((conn, reg))
        while True:
            try:
                msg = conn.recv()
            except SparkctlError:
                return
            if isinstance(msg, m.ExecutorHeartbeat):
                self.heartbeats[reg.executor_id] += 1
                try:
                    conn.send(m.HeartbeatResponse())
                except SparkctlError:
                    return


@dataclass
class Executor:
    proc: subprocess.Popen[bytes]
    conn: Connection  # its driver connection, on the fake driver's side
    reg: m.RegisterExecutor
    local_dir: Path
    stderr: Path

    @property
    def port(self) -> int:
        return self.reg.port


def start_executor(fake: FakeDriver, base: Path, name: str, in_process_slot: bool = True) -> Executor:
    local_dir = base / f"executor-{name}"
    stderr = base / f"executor-{name}.stderr"
    settings_ = dict(executor_id=name, driver_host=HOST, driver_port=fake.server.address[1], cores=1, host=HOST,
                     local_dir=str(local_dir), memory=256 << 20, heartbeat_interval=0.2, network_timeout=600.0,
                     app_id="app-fuzz", in_process_slot=in_process_slot)
    with open(stderr, "wb") as err:
        proc = spawn_executor(settings_, SECRET, "INFO", stderr=err, cwd=str(base))
    conn, reg = fake._registered.get(timeout=30)
    assert reg.executor_id == name
    # A map output to serve: shuffle 7, map 0, two reduce slices b"alpha" and b"beta".
    (local_dir / "shuffle_7_0_0.data").write_bytes(b"alphabeta")
    (local_dir / "shuffle_7_0_0.index").write_bytes(struct.pack("<3Q", 0, 5, 9))
    return Executor(proc, conn, reg, local_dir, stderr)


def fetch_block(port: int) -> BlockData:
    with connect(HOST, port, SECRET, timeout=10) as conn:
        conn.send(FetchShuffleBlock("shuffle_7_0_0.data", 1))
        reply = conn.recv(timeout=10)
    assert isinstance(reply, BlockData), reply
    return reply


DRIVER_APP = """
    import sys
    from sparkctl import SparkConf, SparkContext
    conf = SparkConf().setMaster("local[2]").setAppName("fuzzed-driver").set("spark.ui.showConsoleProgress", "false")
    sc = SparkContext(conf=conf)
    print("ADDRESS", *sc._runtime.address, flush=True)
    for line in sys.stdin:
        if line.strip() == "job":
            print("SUM", sc.parallelize(range(100), 4).sum(), flush=True)
        elif line.strip() == "executors":
            print("EXECUTORS", ",".join(sorted(sc._runtime.executors)), flush=True)
    sc.stop()
"""


@dataclass
class Driver:
    """A SparkContext in a process of its own, running a job whenever asked."""

    proc: subprocess.Popen[str]
    port: int
    stderr: Path
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, command: str, timeout: float = 20.0) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
            if not select.select([self.proc.stdout], [], [], timeout)[0]:
                return "TIMEOUT"
            return self.proc.stdout.readline().strip()

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.close()  # the app's loop ends and it stops its context
                self.proc.wait(grace)
            except (OSError, subprocess.TimeoutExpired):
                stop_process(self.proc, 0.0)  # type: ignore[arg-type]
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_driver(base: Path, conf: Path, name: str) -> Driver:
    stderr = base / f"driver-{name}.stderr"
    with open(stderr, "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(DRIVER_APP)], env=child_env(conf),
                                cwd=str(base), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                start_new_session=True)
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 60)[0]:
        stop_process(proc, 0.0)  # type: ignore[arg-type]
        raise AssertionError(f"the driver did not start:\n{stderr.read_text()}")
    line = proc.stdout.readline().split()
    assert line[:1] == ["ADDRESS"], f"{line}\n{stderr.read_text()}"
    return Driver(proc, int(line[2]), stderr)


@dataclass
class Daemons:
    base: Path
    conf: Path
    master: subprocess.Popen[bytes]
    master_port: int
    master_log: Path
    worker: subprocess.Popen[bytes]
    worker_id: str
    worker_port: int
    fake_driver: FakeDriver
    executor: Executor
    driver: Driver

    def port(self, target: str) -> int:
        return {"master": self.master_port, "worker": self.worker_port, "executor": self.executor.port,
                "driver": self.driver.port}[target]

    def check(self, target: str) -> None:
        """*target* is up and serves a legitimate client (and, for the worker, is still registered)."""
        if target == "master":
            assert self.master.poll() is None, "the master died"
            state = ask_master(self.master_port)
            assert state["status"] == "ALIVE"
        elif target == "worker":
            assert self.worker.poll() is None, "the worker died"
            with connect(HOST, self.worker_port, SECRET, timeout=10) as conn:
                conn.send(dm.RequestDriverLog("driver-none"))
                reply = conn.recv(timeout=10)
            assert isinstance(reply, dm.DriverLogResponse) and reply.error, reply
            workers = {w["id"]: w["state"] for w in ask_master(self.master_port)["workers"]}
            assert workers.get(self.worker_id) == "ALIVE", workers
        elif target == "executor":
            ex = self.executor
            assert ex.proc.poll() is None, f"the executor died:\n{ex.stderr.read_text(errors='replace')[-3000:]}"
            assert fetch_block(ex.port) == BlockData(b"beta")
            beats = self.fake_driver.heartbeats[ex.reg.executor_id]
            wait_for(lambda: self.fake_driver.heartbeats[ex.reg.executor_id] > beats, 10, "an executor heartbeat")
        elif target == "driver":
            drv = self.driver
            assert drv.proc.poll() is None, f"the driver died:\n{drv.stderr.read_text()[-3000:]}"
            assert drv.ask("job") == "SUM 4950", drv.stderr.read_text()[-3000:]
            wait_for(lambda: drv.ask("executors") == "EXECUTORS 0", 10, "only the real executor left")
        else:
            raise AssertionError(target)


@pytest.fixture(scope="module")
def daemons(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemons]:
    base = tmp_path_factory.mktemp("fuzz")
    conf = make_conf(base)
    env = child_env(conf)
    py = sys.executable
    master_log = base / "master.log"
    master, line = start_ready([py, "-m", "sparkctl.deploy.master", "--host", HOST, "--port", "0",
                                "--webui-port", "0"], env, master_log)
    stack: list[Callable[[], None]] = [lambda: _terminate(master)]
    try:
        url = line.split()[1]
        driver = start_driver(base, conf, "main")
        stack.append(driver.stop)
        worker, wline = start_ready([py, "-m", "sparkctl.deploy.worker", "--master", url, "--host", HOST,
                                     "--port", "0", "--webui-port", "0", "--cores", "1", "--memory", "512m",
                                     "--work-dir", str(base / "work")], env, base / "worker.log")
        stack.append(lambda: _terminate(worker))
        worker_id = wline.split()[1]
        fake = FakeDriver()
        stack.append(fake.server.stop)
        executor = start_executor(fake, base, "main")
        stack.append(lambda: stop_process(executor.proc, 0.0))
        yield Daemons(base, conf, master, int(url.rsplit(":", 1)[1]), master_log, worker, worker_id,
                      int(worker_id.rsplit("-", 1)[1]), fake, executor, driver)
    finally:
        for undo in reversed(stack):
            undo()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            stop_process(proc, 0.0)


TARGETS = ["master", "worker", "executor", "driver"]


# ================================================================ inputs
def raw_connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=10)


def authed_raw_socket(port: int) -> socket.socket:
    """A socket that passed the handshake: arbitrary bytes from here on reach the message layer."""
    sock = raw_connect(port)
    client_handshake(sock, SECRET, 10.0)
    return sock


def send_and_hang_up(sock: socket.socket, data: bytes) -> None:
    """Send *data*, end our side, and read until the daemon closes the connection."""
    with sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # it may have hung up already
            return
        sock.settimeout(15)
        try:
            while sock.recv(65536):
                pass
        except (ConnectionResetError, BrokenPipeError):
            pass


_huge = st.integers(MAX_AUTH_FRAME + 1, 2**64 - 1)


def frames_cut_short() -> st.SearchStrategy[bytes]:
    """A header announcing n bytes followed by fewer."""
    return st.integers(1, 5000).flatmap(
        lambda n: st.binary(max_size=n - 1).map(lambda body: HEADER.pack(n) + body))


def before_handshake() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=3000),
        frames_cut_short(),
        st.tuples(_huge, st.binary(max_size=64)).map(lambda t: HEADER.pack(t[0]) + t[1]),
        st.binary(max_size=MAX_AUTH_FRAME).map(lambda b: HEADER.pack(len(b)) + b),  # a whole frame of junk
    )


#: A pickle naming a class of a module nobody has.
UNKNOWN_CLASS_PICKLE = b"cno_such_sparkctl_module\nNoSuchMessage\n)\x81."


def after_handshake() -> st.SearchStrategy[bytes]:
    def framed(payload: bytes) -> bytes:
        return HEADER.pack(len(payload)) + payload

    return st.one_of(
        st.binary(max_size=3000),
        frames_cut_short(),
        st.tuples(st.integers(2**40, 2**64 - 1), st.binary(max_size=64)).map(lambda t: HEADER.pack(t[0]) + t[1]),
        st.binary(min_size=1, max_size=2000).map(framed),  # not a pickle
        st.just(framed(UNKNOWN_CLASS_PICKLE)),
        st.binary(max_size=200).map(lambda b: pickle.dumps(b"x", protocol=5)[:-1] + b)
        .filter(_no_memo_bomb).map(framed),  # pickle gone bad
    )


def _no_memo_bomb(payload: bytes) -> bool:
    """False for a pickle that puts an object in the memo at a huge index (LONG_BINPUT
    with a 4-byte index): the C unpickler grows its memo to twice the index, gigabytes for
    a random one. That is a peer that proved it knows the secret sending a malicious
    pickle, which can as well run code by design (everything after the handshake is
    trusted, as in Spark); what this fuzzing checks is that malformed frames are refused."""
    import pickletools
    try:
        for opcode, arg, _ in pickletools.genops(payload):
            if opcode.name == "LONG_BINPUT" and isinstance(arg, int) and arg > 1 << 16:
                return False
    except Exception:  # malformed further on: the unpickler stops there too
        pass
    return True


garbage = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
    st.binary(max_size=12), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=4), st.integers(),
                                                                                  max_size=2),
    st.tuples(st.integers(), st.text(max_size=4)), st.just(object),
)
not_an_int = st.one_of(st.none(), st.text(max_size=8), st.binary(max_size=8), st.lists(st.integers(), max_size=2),
                       st.floats(allow_nan=True), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))
#: Ids a worker must refuse to turn into paths (or start processes for).
unsafe_id = st.one_of(not_an_int, st.text(max_size=8).map(lambda s: "../" + s), st.just(""))


def fuzzed(cls: type, **fixed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Instances of the message dataclass *cls* with every field (but *fixed* ones) garbage."""
    fields = {f.name: fixed.get(f.name, garbage) for f in dataclasses.fields(cls)}
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))


not_a_message = st.one_of(
    st.recursive(st.none() | st.integers() | st.text(max_size=10) | st.binary(max_size=10) | st.floats(),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                 max_leaves=8),
    st.sampled_from([ValueError("not a message"), fractions.Fraction(1, 3), datetime.date(2020, 2, 29),
                     collections.OrderedDict(a=1), complex(1, 2), frozenset({1, 2}), range(5), Ellipsis]),
    # real messages, of another daemon's protocol
    st.sampled_from([BlockData(b"x"), m.HeartbeatResponse(), dm.MasterState({}), dm.ApplicationRemoved("x"),
                     dm.RegisteredWorker("spark://x:1", "http://x:2", 1.0), FetchCachedBlock("rdd_0_0")]),
)

MASTER_OPENERS = st.one_of(
    fuzzed(dm.RegisterWorker),
    fuzzed(dm.RegisterApplication),
    # a description whose memory is no number can never become a real application
    fuzzed(dm.RegisterApplication, app=fuzzed(dm.ApplicationDescription, executor_memory=not_an_int)),
    fuzzed(dm.RequestKillApplication),
    fuzzed(dm.RequestSubmitDriver),
    fuzzed(dm.RequestSubmitDriver, desc=fuzzed(dm.DriverDescription, cores=not_an_int)),
    fuzzed(dm.RequestKillDriver),
    fuzzed(dm.RequestDriverStatus),
    not_a_message,
)
#: What a registered worker, a driver or a client may send next (all of it garbage).
MASTER_FOLLOWUPS = st.lists(st.one_of(
    fuzzed(dm.WorkerHeartbeat), fuzzed(dm.ExecutorStateChanged), fuzzed(dm.DriverStateChanged),
    fuzzed(dm.UnregisterApplication), fuzzed(dm.RequestMasterState), fuzzed(dm.RequestDriverStatus),
    fuzzed(dm.RequestKillDriver), not_a_message,
), max_size=4)

WORKER_COMMANDS = st.lists(st.one_of(
    fuzzed(dm.LaunchExecutor, app_id=unsafe_id),
    fuzzed(dm.LaunchExecutor, executor_id=unsafe_id),
    fuzzed(dm.KillExecutor), fuzzed(dm.ApplicationFinished), fuzzed(dm.RegisteredWorker),
    fuzzed(dm.LaunchDriver, driver_id=unsafe_id),
    fuzzed(dm.KillDriver), fuzzed(dm.RequestDriverLog), not_a_message,
), min_size=1, max_size=4)

shuffle_names = st.sampled_from(["shuffle_7_0_0.data", "../shuffle_7_0_0.data", "/etc/passwd", "shuffle_7_0_0.index",
                                 ""])
#: FetchShuffleBlocks' ranges: (file name, offset, length), the name mostly a served one,
#: so that the checks past the name's are reached
block_ranges = st.lists(st.tuples(st.just("shuffle_7_0_0.data") | shuffle_names, st.integers(-2, 10) | garbage,
                                  st.integers(-2, 10) | st.integers(2**26, 2**70) | garbage), min_size=1, max_size=3)
BLOCK_REQUESTS = st.lists(st.one_of(
    fuzzed(FetchShuffleBlock), fuzzed(FetchCachedBlock),
    fuzzed(FetchShuffleBlock, file_name=shuffle_names),
    fuzzed(FetchShuffleBlocks),
    not_a_message,
), min_size=1, max_size=5) | st.lists(  # half the batches: a reducer's requests with their fields gone wrong
    fuzzed(FetchShuffleBlocks, reduce_index=st.integers(-1, 2), ranges=block_ranges), min_size=1, max_size=5)

#: Sent to an executor by its (fake) driver: well-formed frames it must survive. (Wrong
#: field types in the other messages still end it: see the known bugs at the end.)
DRIVER_TO_EXECUTOR = st.lists(st.one_of(
    fuzzed(m.KillTask, task_id=st.integers(-(2**63), 2**63 - 1)), fuzzed(m.RemoveRdd), fuzzed(m.HeartbeatResponse),
    fuzzed(m.RemoveShuffle, shuffle_id=st.integers(100, 10**6)), not_a_message,
), min_size=1, max_size=5)

#: Sent to a driver by a (fake) executor after a valid registration.
EXECUTOR_TO_DRIVER = st.lists(st.one_of(
    fuzzed(m.StatusUpdate),
    fuzzed(m.StatusUpdate, outcome=st.binary(max_size=300)),  # garbage outcome bytes
    fuzzed(m.StatusUpdate, state=st.sampled_from([m.FINISHED, m.FAILED, m.KILLED, m.FETCH_FAILED]),
           outcome=st.binary(max_size=300)),
    fuzzed(m.ExecutorHeartbeat), fuzzed(m.RegisterExecutor), not_a_message,
), min_size=1, max_size=5)


def send_messages(port: int, messages: list[Any], read_for: float = 0.05) -> None:
    """Send *messages* on an authenticated connection, glance at replies, hang up."""
    try:
        conn = connect(HOST, port, SECRET, timeout=10)
    except SparkctlError as e:
        raise AssertionError(f"cannot connect any more: {e}") from e
    with conn:
        for msg in messages:
            try:
                conn.send(msg)
            except SparkctlError:  # the daemon hung up on an earlier message
                return
            except Exception:  # e.g. garbage no pickle can hold: our side refuses, nothing is sent
                continue
        try:
            while True:
                conn.recv(timeout=read_for)
        except SparkctlError:
            pass


# ================================================================ fuzzing
@pytest.mark.parametrize("target", TARGETS)
def test_garbage_before_the_handshake(daemons: Daemons, target: str) -> None:
    port = daemons.port(target)

    @FUZZ
    @given(data=before_handshake())
    def run(data: bytes) -> None:
        send_and_hang_up(raw_connect(port), data)

    run()
    daemons.check(target)


@pytest.mark.parametrize("target", TARGETS)
def test_garbage_after_the_handshake(daemons: Daemons, target: str) -> None:
    port = daemons.port(target)

    @FUZZ
    @given(data=after_handshake())
    def run(data: bytes) -> None:
        send_and_hang_up(authed_raw_socket(port), data)

    run()
    daemons.check(target)


def test_wrong_messages_to_the_master(daemons: Daemons) -> None:
    real_worker = f"fuzz-worker-{uuid.uuid4().hex[:8]}"

    @FUZZ
    @given(opener=st.one_of(MASTER_OPENERS, st.just("register-worker")), followups=MASTER_FOLLOWUPS)
    def run(opener: Any, followups: list[Any]) -> None:
        if opener == "register-worker":  # a real registration first, then garbage as that worker
            opener = dm.RegisterWorker(f"{real_worker}-{uuid.uuid4().hex[:6]}", HOST, 1, 1, 64)
        send_messages(daemons.master_port, [opener, *followups])

    run()
    daemons.check("master")
    daemons.check("worker")


def test_wrong_messages_to_the_worker(daemons: Daemons) -> None:
    @FUZZ
    @given(commands=WORKER_COMMANDS)
    def run(commands: list[Any]) -> None:
        send_messages(daemons.worker_port, commands)

    run()
    daemons.check("worker")


def test_launch_executor_with_wrong_field_types_fails_that_executor_only(daemons: Daemons) -> None:
    # Plain ids pass the worker's checks, so it starts a process, which cannot run with these settings.
    app_id = f"app-fuzz-{uuid.uuid4().hex[:6]}"
    send_messages(daemons.worker_port, [dm.LaunchExecutor(app_id, "0", "two", [], 5, "port", None, {"cores": "x"})])
    workdir = daemons.base / "work" / app_id / "0"
    wait_for(lambda: (workdir / "stderr").exists(), 20, "the executor's directory")
    wait_for(lambda: not _processes_in(workdir), 30, "the executor to exit")
    assert "Traceback" in (workdir / "stderr").read_text(errors="replace")
    daemons.check("worker")


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is *directory*."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/cwd") == str(directory):
                    found.append(int(pid))
            except OSError:
                pass
    return found


def test_wrong_requests_to_the_block_server(daemons: Daemons) -> None:
    @FUZZ
    @given(requests=BLOCK_REQUESTS)
    def run(requests: list[Any]) -> None:
        send_messages(daemons.executor.port, requests)

    run()
    daemons.check("executor")


def test_wrong_messages_from_its_driver_to_an_executor(daemons: Daemons) -> None:
    conn = daemons.executor.conn

    @FUZZ
    @given(messages=DRIVER_TO_EXECUTOR)
    def run(messages: list[Any]) -> None:
        for msg in messages:
            try:
                conn.send(msg)
            except SparkctlError:
                raise AssertionError("the executor closed its driver connection") from None
            except Exception:
                continue  # unpicklable garbage: nothing was sent

    run()
    daemons.check("executor")


def test_wrong_messages_from_executors_to_the_driver(daemons: Daemons) -> None:
    @FUZZ
    @given(messages=EXECUTOR_TO_DRIVER, opener=st.one_of(st.just("register"), not_a_message,
                                                          fuzzed(m.StatusUpdate), fuzzed(m.ExecutorHeartbeat)))
    def run(opener: Any, messages: list[Any]) -> None:
        if opener == "register":  # a valid registration as a new executor, then garbage
            opener = m.RegisterExecutor(f"fuzz-{uuid.uuid4().hex[:8]}", HOST, 1, 1, 1)
        send_messages(daemons.driver.port, [opener, *messages])

    run()
    daemons.check("driver")


@pytest.mark.parametrize("in_process_slot", [True, False], ids=["inline-slot", "slot-process"])
def test_a_corrupt_stream_from_its_driver_ends_an_executor_cleanly(daemons: Daemons, in_process_slot: bool) -> None:
    # Bytes that are not a frame, or a frame that is not a pickle, from its own driver: the
    # executor cannot tell what its driver meant any more, so it stops as it does when its
    # driver is gone, and takes its task slots with it.
    ex = start_executor(daemons.fake_driver, daemons.base, f"corrupt-{uuid.uuid4().hex[:6]}", in_process_slot)
    try:
        if in_process_slot:  # its one slot runs in its own main thread (slots fork before it registers)
            slots = []
            assert _children(ex.proc.pid) == []
        else:
            slots = wait_for(lambda: _children(ex.proc.pid), 10, "the executor's task slot")
        ex.conn.send_bytes(b"\x00not a pickle")
        assert ex.proc.wait(20) == 0
        wait_for(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in slots), 10, "its slots to exit")
    finally:
        stop_process(ex.proc, 0.0)
    daemons.check("executor")


# ================================================================ many peers, slow peers
@pytest.mark.parametrize("target", TARGETS)
def test_300_idle_connections_do_not_starve_a_legitimate_client(daemons: Daemons, target: str) -> None:
    idle = [raw_connect(daemons.port(target)) for _ in range(300)]
    try:
        for s in idle:  # each is in the handshake now: the daemon sent it its challenge
            assert s.recv(MAX_AUTH_FRAME), "the daemon turned an idle connection away"
        started = time.monotonic()
        daemons.check(target)
        assert time.monotonic() - started < 15
    finally:
        for s in idle:
            s.close()


def test_the_master_drops_peers_that_never_finish_the_handshake(daemons: Daemons) -> None:
    silent = [raw_connect(daemons.master_port) for _ in range(50)]
    opened = time.monotonic()
    try:
        challenge = silent[0].recv(MAX_AUTH_FRAME)  # the handshake started: the master spoke first
        assert challenge
        for _ in range(5):  # others are served meanwhile
            daemons.check("master")
        for s in silent:
            s.settimeout(30)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        elapsed = time.monotonic() - opened
        assert 5 <= elapsed < 25, elapsed  # dropped by the handshake timeout (10 s), not at once
    finally:
        for s in silent:
            s.close()
    wait_for(lambda: "did not complete the handshake" in daemons.master_log.read_text(errors="replace"), 10,
             "the master's log line")
    daemons.check("master")


# ================================================================ no pickle before the handshake
class _CreatesFile:
    """Unpickling this creates *path* (the pickle calls ``open(path, "w")``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (self.path, "w"))


@pytest.mark.parametrize("how", ["first-frame", "unframed", "instead-of-the-answer"])
@pytest.mark.parametrize("target", TARGETS)
def test_no_unauthenticated_pickle_is_loaded(daemons: Daemons, target: str, how: str, tmp_path: Path) -> None:
    marker = tmp_path / f"pwned-{target}-{how}"
    payload = pickle.dumps(_CreatesFile(str(marker)), protocol=5)
    sock = raw_connect(daemons.port(target))
    if how == "first-frame":
        send_and_hang_up(sock, HEADER.pack(len(payload)) + payload)
    elif how == "unframed":
        send_and_hang_up(sock, payload)
    else:
        sock.recv(MAX_AUTH_FRAME)  # the challenge
        send_frame(sock, payload)
        send_and_hang_up(sock, b"")
    daemons.check(target)
    assert not marker.exists()
    pickle.loads(payload).close()  # the payload does work where it is unpickled
    assert marker.exists()


# ================================================================ regressions: inputs that once broke a daemon
@pytest.fixture
def fresh_executor(daemons: Daemons) -> Iterator[Executor]:
    ex = start_executor(daemons.fake_driver, daemons.base, f"victim-{uuid.uuid4().hex[:6]}")
    yield ex
    stop_process(ex.proc, 0.0)


@pytest.mark.parametrize("message", [
    m.LaunchTask(m.TaskDescription(1, (99, 0), 0, 0, b"")),  # names a stage it was never sent
    m.LaunchTask("not a task description"),
    m.RemoveBroadcast([]),
    m.PutBroadcast([], None),
    m.StageBinary([], b"", {}, (), False),
    m.KillTask(None, ""),  # None equals an idle slot's task id: struct.error on the kill board
], ids=["unknown-stage", "launch-garbage", "remove-broadcast-list", "put-broadcast-list", "stage-key-list",
        "kill-task-none"])
def test_bug_executor_survives_a_bad_message_from_its_driver(fresh_executor: Executor, message: Any) -> None:
    fresh_executor.conn.send(message)
    time.sleep(1.0)  # time to process it (and, today, to die)
    assert fresh_executor.proc.poll() is None, "the executor exited"
    assert fetch_block(fresh_executor.port) == BlockData(b"beta")


@pytest.fixture
def fresh_driver(daemons: Daemons) -> Iterator[Driver]:
    drv = start_driver(daemons.base, daemons.conf, f"victim-{uuid.uuid4().hex[:6]}")
    yield drv
    drv.stop(grace=2.0)  # it may be stuck in a job that cannot finish


@pytest.mark.parametrize("registration", [
    m.RegisterExecutor("phantom", HOST, 1, "two", 1),  # cores of the wrong type
    m.RegisterExecutor("0", HOST, 1, 1, 1),  # the id of the context's real executor
], ids=["cores-str", "duplicate-id"])
def test_bug_driver_survives_a_bad_registration(fresh_driver: Driver, registration: m.RegisterExecutor) -> None:
    send_messages(fresh_driver.port, [registration], read_for=0.3)
    assert fresh_driver.ask("job", timeout=5) == "SUM 4950"


def test_bug_master_bad_first_messages_leak_no_threads(daemons: Daemons) -> None:
    def threads() -> int:
        return len(os.listdir(f"/proc/{daemons.master.pid}/task"))

    before = threads()
    for _ in range(50):
        send_messages(daemons.master_port, [dm.RequestKillApplication([])])
    time.sleep(0.5)
    assert threads() < before + 10, (before, threads())
