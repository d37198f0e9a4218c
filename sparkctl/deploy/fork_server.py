"""Executors in milliseconds: a warm process that has imported the executor forks each one.

A new interpreter that imports sparkctl costs about 0.2 s of CPU; a fork of one that already
did costs about a millisecond. The worker starts one fork server (its "zygote") when it
starts, and asks it for every executor:

```
 worker ── ForkServer.launch() ── {"op": "launch", settings, env, cwd, stdout, stderr} ──▶ fork server
   ▲       (ForkedProcess: pid, wait, poll, send_signal, as a Popen)                        │ os.fork()
   │                                                                                         ▼
   └──── {"op": "started", pid} ── {"op": "exited", pid, code} ◀──── reaps ──── executor (its own session,
                                                                                cwd, stdout, stderr, env)
```

The fork server is ``python -P -m sparkctl.deploy.fork_server FD``: FD is its end of a
unix socket pair, every message on it a 4-byte length and a JSON object. It is single
threaded (a fork copies only the calling thread, so nothing can hold a lock the child
needs), imports what an executor and its first task need before its first fork, and
learns of its children's exits from SIGCHLD through a wakeup pipe. It is the executors'
parent: it reaps them and reports each exit code (negative: the signal), as ``Popen``
would. When the worker goes, its end of the socket closes and the fork server exits; the
executors see their parent gone and stop, as they do when a worker that started them
with ``Popen`` dies. If the fork server dies while the worker lives, the worker kills the
executors it can no longer watch (SIGKILL to their process groups, reported as killed by
SIGKILL) and starts a new fork server for the next launch.

A child resets what it must not share with its siblings: it starts a session of its own
(so the worker can kill it and its task slots as a group), restores the default signal
dispositions, closes the fork server's descriptors, reseeds ``random``, and takes its
own environment, working directory, stdin (/dev/null), stdout and stderr (files opened
for append) before it runs the executor's ``main``.
"""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
from typing import Any

log = logging.getLogger("sparkctl.worker")

_HEADER = struct.Struct(">I")
_MAX_MESSAGE = 64 << 20
#: The children's environment is shown in /proc/PID/environ (ps e, tools, tests) only if it
#: fits the block the fork server was started with: this much room is added to it.
ROOM_VAR = "SPARKCTL_FORK_SERVER_ROOM"
ENV_ROOM = 16384
#: How long a launch waits for the fork server's answer (its first one waits for its imports).
LAUNCH_TIMEOUT = 60.0


class ForkServerError(Exception):
    """The fork server is gone or refused a launch; the caller may start the process otherwise."""


# ---------------------------------------------------------------- framing


def send_message(sock: socket.socket, msg: dict[str, Any]) -> None:
    data = json.dumps(msg).encode()
    sock.sendall(_HEADER.pack(len(data)) + data)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("fork server connection closed")
        buf += chunk
    return bytes(buf)


def recv_message(sock: socket.socket) -> dict[str, Any]:
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    if size > _MAX_MESSAGE:
        raise EOFError(f"fork server message of {size} bytes is too large")
    msg = json.loads(_recv_exact(sock, size))
    if not isinstance(msg, dict):
        raise EOFError("fork server message is not an object")
    return msg


def exit_code(status: int) -> int:
    """A wait status as ``Popen.returncode`` gives it: the exit code, or minus the signal."""
    return os.waitstatus_to_exitcode(status)


# ---------------------------------------------------------------- the worker's side


class ForkedProcess:
    """An executor the fork server forked, with the part of ``subprocess.Popen``'s interface
    the worker uses (``pid``, ``returncode``, ``poll``, ``wait``, ``send_signal``)."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None
        self._done = threading.Event()

    def _exited(self, code: int) -> None:
        if self.returncode is None:
            self.returncode = code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:  # once reaped, the pid may belong to another process
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def __repr__(self) -> str:
        return f"<ForkedProcess pid {self.pid} returncode {self.returncode}>"


class ForkServer:
    """The worker's handle on its fork server: ``start()`` once, ``launch()`` from any
    thread (launches overlap: each waits only for its own answer), ``stop()`` at the end."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._next_id = 0
        self._pending: dict[int, tuple[threading.Event, list[dict[str, Any]]]] = {}
        self._children: dict[int, ForkedProcess] = {}
        self._send_lock = threading.Lock()  # one message at a time on the socket
        self._stopped = False

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> ForkServer:
        """Start the fork server process (it imports in the background; launches queue up)."""
        with self._lock:
            self._start_locked()
        return self

    def _start_locked(self) -> None:
        from sparkctl.scheduler.backend import package_root

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(self._env if self._env is not None else os.environ)
        root = package_root()
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.pop("SPARKCTL_SECRET", None)
        # room in the fork server's own environment block, which its children rewrite with
        # theirs (see _publish_environment)
        env[ROOM_VAR] = "." * ENV_ROOM
        try:
            # -P: never import a `sparkctl` lying in the working directory instead of ours
            proc = subprocess.Popen([sys.executable, "-P", "-m", "sparkctl.deploy.fork_server", str(theirs.fileno())],
                                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        finally:
            theirs.close()
        self._sock, self._proc = ours, proc
        threading.Thread(target=self._read, args=(ours, proc), name="fork-server-reader", daemon=True).start()
        log.info("Started the executor fork server (pid %d)", proc.pid)

    def launch(self, settings: dict[str, Any], env: dict[str, str], cwd: str, stdout: str, stderr: str,
               timeout: float = LAUNCH_TIMEOUT) -> ForkedProcess:
        """Fork an executor: *settings* is the JSON line ``python -m sparkctl.executor`` reads,
        *env* its whole environment, *stdout*/*stderr* files it appends to."""
        done = threading.Event()
        box: list[dict[str, Any]] = []
        with self._lock:
            if self._stopped:
                raise ForkServerError("the fork server is stopped")
            if self._sock is None:
                self._start_locked()  # the last one died: a new one for this launch
            assert self._sock is not None
            request_id = self._next_id
            self._next_id += 1
            self._pending[request_id] = (done, box)
            sock = self._sock
        try:
            with self._send_lock:
                send_message(sock, {"op": "launch", "id": request_id, "settings": settings, "env": env, "cwd": cwd,
                                    "stdout": stdout, "stderr": stderr})
        except OSError as e:
            with self._lock:
                self._pending.pop(request_id, None)
            raise ForkServerError(f"cannot reach the fork server: {e}") from e
        if not done.wait(timeout):
            with self._lock:
                self._pending.pop(request_id, None)
            raise ForkServerError(f"the fork server did not answer within {timeout:g}s")
        reply = box[0]
        if reply.get("op") != "started":
            raise ForkServerError(str(reply.get("error", "the fork server is gone")))
        child: ForkedProcess = reply["process"]  # made by the reader, which may have seen it exit already
        return child

    def _read(self, sock: socket.socket, proc: subprocess.Popen[bytes]) -> None:
        try:
            while True:
                msg = recv_message(sock)
                op = msg.get("op")
                if op in ("started", "failed"):
                    with self._lock:
                        waiter = self._pending.pop(int(msg["id"]), None)
                        if op == "started":
                            # "started" always comes before that child's "exited": the fork
                            # server answers a launch before it next reaps
                            pid = int(msg["pid"])
                            msg["process"] = self._children[pid] = ForkedProcess(pid, ["sparkctl.executor"])
                    if waiter is not None:
                        waiter[1].append(msg)
                        waiter[0].set()
                    elif op == "started":  # its launch gave up waiting: nobody would watch it
                        _kill_group(int(msg["pid"]))
                elif op == "exited":
                    pid, code = int(msg["pid"]), int(msg["code"])
                    with self._lock:
                        child = self._children.pop(pid, None)
                    if child is not None:
                        child._exited(code)
        except (EOFError, OSError, ValueError, KeyError, TypeError) as e:
            reason = str(e)
        self._lost(sock, proc, reason)

    def _lost(self, sock: socket.socket, proc: subprocess.Popen[bytes], reason: str) -> None:
        """The fork server is gone: its executors cannot be watched any more, so they go too."""
        with self._lock:
            if self._sock is sock:
                self._sock, self._proc = None, None
            children, self._children = self._children, {}
            pending, self._pending = self._pending, {}
            stopped = self._stopped
        sock.close()
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if not stopped:
            log.warning("The executor fork server (pid %d) is gone (exit code %s, %s); %d executor(s) it "
                        "ran are killed", proc.pid, code, reason, len(children))
        for child in children.values():
            _kill_group(child.pid)
            child._exited(-signal.SIGKILL)
        for done, box in pending.values():
            box.append({"op": "failed", "error": f"the fork server is gone ({reason})"})
            done.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Close our end: the fork server exits (executors still running notice their parent
        gone and stop; the worker stops them first)."""
        with self._lock:
            self._stopped = True
            sock, proc = self._sock, self._proc
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- the fork server process


def serve(fd: int) -> int:
    """The fork server's loop, in ``python -m sparkctl.deploy.fork_server FD``."""
    sock = socket.socket(fileno=fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select through the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops us by closing the socket
    _warm()
    if threading.active_count() > 1:  # a fork copies only this thread: the children could deadlock
        print(f"sparkctl fork server: an import started {threading.active_count() - 1} thread(s); "
              "executors may hang", file=sys.stderr, flush=True)
    while True:
        try:
            ready, _, _ = select.select([sock.fileno(), wake_r], [], [])
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                while os.read(wake_r, 4096):
                    pass
            except BlockingIOError:
                pass
        if not _reap(sock):
            return 0
        if sock.fileno() in ready:
            try:
                msg = recv_message(sock)
            except (EOFError, OSError, ValueError):
                return 0  # the worker is gone
            if msg.get("op") != "launch":
                continue
            try:
                pid = _fork_executor(msg, (sock.fileno(), wake_r, wake_w))
            except (OSError, ValueError, KeyError, TypeError) as e:
                reply = {"op": "failed", "id": msg.get("id"), "error": f"{type(e).__name__}: {e}"}
            else:
                reply = {"op": "started", "id": msg.get("id"), "pid": pid}
            try:
                send_message(sock, reply)
            except OSError:
                return 0


def _reap(sock: socket.socket) -> bool:
    """Report every child that exited; False if the worker can no longer be told."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return True
        try:
            send_message(sock, {"op": "exited", "pid": pid, "code": exit_code(status)})
        except OSError:
            return False


def _warm() -> None:
    """What every executor imports, imported once here; frozen out of the collector, so the
    children do not copy the pages a collection would touch."""
    import gc
    import importlib

    gc.disable()
    import sparkctl.executor.executor as executor

    importlib.import_module("sparkctl.executor.__main__")  # the children's entry point
    executor._warm_imports()
    gc.freeze()
    # malloc's free chunks go back to the kernel: a child reusing one then faults in a zero
    # page instead of copying the fork server's
    from sparkctl.storage import sizing
    sizing.trim_heap()


def _fork_executor(msg: dict[str, Any], close_fds: tuple[int, ...]) -> int:
    settings = msg["settings"]
    env = {str(k): str(v) for k, v in msg["env"].items()}
    cwd, stdout, stderr = str(msg["cwd"]), str(msg["stdout"]), str(msg["stderr"])
    if not isinstance(settings, dict):
        raise ValueError("settings must be an object")
    # opened here, so a bad path fails the launch with its reason rather than a dead child
    out = os.open(stdout, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        err = os.open(stderr, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.stat(cwd)
            sys.stdout.flush()
            sys.stderr.flush()
            server = os.getpid()
            pid = os.fork()
            if pid == 0:
                _become_executor(settings, env, cwd, out, err, close_fds, server)  # never returns
        finally:
            os.close(err)
    finally:
        os.close(out)
    return pid


def _become_executor(settings: dict[str, Any], env: dict[str, str], cwd: str, out: int, err: int,
                     close_fds: tuple[int, ...], parent: int) -> None:
    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as the interpreter sets it at start-up
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for fd in close_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.closerange(3, _max_fd())
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        _publish_environment(env)
        import gc
        gc.enable()
        import random
        random.seed()
        import sparkctl.executor.__main__ as entry
        sys.argv = [entry.__file__]  # as `python -m sparkctl.executor` sets it
        from sparkctl.executor.__main__ import run
        code = run(dict(settings), parent)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    finally:
        try:
            logging.shutdown()  # an exec'd interpreter would flush its log handlers at exit
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _publish_environment(env: dict[str, str]) -> None:
    """Show the executor's own environment and command line in /proc/self/{environ,cmdline}.

    The kernel shows the blocks exec() set up, the fork server's; nothing refers to them
    any more once ``os.environ`` was replaced, so they are overwritten in place, padded with
    NULs (the technique of setproctitle). The command line becomes ``python -P -m
    sparkctl.executor (forked)``, so ps tells executors from their fork server (and finds
    them as it finds executors started otherwise). Without room, nothing changes."""
    import ctypes

    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rindex(b")") + 2:].split()  # fields[0] is field 3 of proc(5)
        arg_start, arg_end, env_start, env_end = (int(fields[n - 3]) for n in (48, 49, 50, 51))
    except (OSError, ValueError, IndexError):
        return
    block = b"".join(f"{k}={v}".encode() + b"\0" for k, v in env.items())
    if 0 < env_end - env_start and len(block) <= env_end - env_start:
        ctypes.memmove(env_start, block.ljust(env_end - env_start, b"\0"), env_end - env_start)
    with open("/proc/self/cmdline", "rb") as f:
        args = f.read()
    ours = args.find(b"\0sparkctl.deploy.fork_server\0")
    if ours >= 0 and len(args) == arg_end - arg_start:
        title = args[:ours + 1] + b"sparkctl.executor\0(forked)"
        ctypes.memmove(arg_start, title.ljust(len(args), b"\0"), len(args))


def _max_fd() -> int:
    try:
        return os.sysconf("SC_OPEN_MAX")
    except (ValueError, OSError):
        return 1 << 16



def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m sparkctl.deploy.fork_server FD  (started by a worker)", file=sys.stderr)
        return 2
    return serve(int(args[0]))


if __name__ == "__main__":
    sys.exit(main())
