"""What sparkctl writes on disk cannot be steered by another local user: private (0700)
directories, pid files written to fresh O_EXCL|O_NOFOLLOW names, log files that are never
followed through a symlink, pid files believed only for our own daemons, and a start lock
that times out naming its holder. Daemons are real processes on loopback."""
from __future__ import annotations

import contextlib
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sparkctl.deploy import commands, daemon
from sparkctl.deploy.daemon import PrivateRotatingFileHandler
from sparkctl.util import fsutil
from tests.clusters import assert_none_left

ROOT = Path(__file__).resolve().parent.parent
SECRET = "private-files-test-secret"
PLANTED = "the victim's file, unchanged\n"
MASTER_ARGS = ["--host", "127.0.0.1", "--port", "0", "--webui-port", "0"]


@dataclass
class Dirs:
    root: Path
    pids: Path
    logs: Path


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Dirs]:
    d = Dirs(tmp_path, tmp_path / "pids", tmp_path / "logs")
    (tmp_path / "conf").mkdir()
    monkeypatch.setenv("SPARKCTL_PID_DIR", str(d.pids))
    monkeypatch.setenv("SPARKCTL_LOG_DIR", str(d.logs))
    monkeypatch.setenv("SPARKCTL_WORK_DIR", str(tmp_path / "work"))
    monkeypatch.setenv("SPARKCTL_CONF_DIR", str(tmp_path / "conf"))
    monkeypatch.setenv("SPARKCTL_SECRET", SECRET)
    yield d
    with contextlib.suppress(daemon.DaemonError):  # a test may have left the PID dir unsafe on purpose
        daemon.stop_daemons("master", grace=5)
    assert_none_left(tmp_path)


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim.txt"
    victim.write_text(PLANTED)
    return victim


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _pid_files(d: Dirs) -> list[str]:
    return sorted(p.name for p in d.pids.glob("*.pid"))


# ---------------------------------------------------------------- directories


@pytest.mark.timeout(30)
def test_created_directories_are_0700_parents_included(tmp_path: Path) -> None:
    made = fsutil.private_makedirs(str(tmp_path / "a" / "b" / "c"))
    assert made == str(tmp_path / "a" / "b" / "c")
    for p in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert _mode(p) == 0o700, p
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    fsutil.private_makedirs(str(shared))  # an existing directory is left as it is
    assert _mode(shared) == 0o755


@pytest.mark.timeout(30)
def test_the_local_dir_base_is_created_0700(tmp_path: Path) -> None:
    from sparkctl.conf import SparkConf
    from sparkctl.scheduler.backend import LocalBackend

    base = tmp_path / "scratch" / "spark"
    backend = LocalBackend(1, SparkConf(loadDefaults=False).set("spark.local.dir", str(base)), "app-0700", [])
    assert _mode(tmp_path / "scratch") == 0o700 and _mode(base) == 0o700
    assert Path(backend.local_dir).parent == base and _mode(Path(backend.local_dir)) == 0o700


@pytest.mark.timeout(30)
def test_master_recovery_dir_is_created_0700(tmp_path: Path) -> None:
    from sparkctl.deploy.master import MasterDaemon

    recovery = tmp_path / "state" / "master"
    m = MasterDaemon("127.0.0.1", 0, 0, SECRET.encode(), recovery_dir=str(recovery)).start()
    try:
        m._persist()
    finally:
        m.stop()
    assert _mode(tmp_path / "state") == 0o700 and _mode(recovery) == 0o700
    assert [_mode(p) for p in recovery.iterdir()] == [0o600]


@pytest.mark.timeout(60)
def test_daemon_dirs_are_0700(dirs: Dirs) -> None:
    started = daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    assert _mode(dirs.pids) == 0o700 and _mode(dirs.logs) == 0o700
    for name in (started.pid_file, started.log_file, started.out_file, daemon.lock_file_path()):
        assert _mode(Path(name)) == 0o600, name


# ---------------------------------------------------------------- the PID dir


@pytest.mark.timeout(30)
def test_default_pid_dir_is_per_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARKCTL_PID_DIR", raising=False)
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert daemon.pid_dir() == str(runtime / "sparkctl")
    runtime.chmod(0o777)  # not private: not used
    assert daemon.pid_dir() == f"/tmp/sparkctl-{os.geteuid()}"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert daemon.pid_dir() == f"/tmp/sparkctl-{os.geteuid()}"


@pytest.mark.timeout(30)
def test_an_unsafe_pid_dir_is_refused_in_one_line(dirs: Dirs, tmp_path: Path) -> None:
    dirs.pids.mkdir(mode=0o700)
    dirs.pids.chmod(0o777)
    group = CliRunner().invoke(commands.master, ["stop"])
    assert group.exit_code == 1
    line = group.output.strip()
    assert "\n" not in line and f"PID dir ($SPARKCTL_PID_DIR) {dirs.pids} is writable by group or others" in line
    with pytest.raises(daemon.DaemonError, match="writable by group or others"):
        daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    result = CliRunner().invoke(commands.master, ["start", *MASTER_ARGS[2:]])
    assert result.exit_code == 1 and "writable by group or others" in result.output.strip()

    dirs.pids.rmdir()
    real = tmp_path / "elsewhere"
    real.mkdir(mode=0o700)
    dirs.pids.symlink_to(real)
    with pytest.raises(daemon.DaemonError, match="is a symlink"):
        daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    assert list(real.iterdir()) == []


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_pid_dir_of_another_user_is_refused(dirs: Dirs) -> None:
    dirs.pids.mkdir(mode=0o700)
    os.chown(dirs.pids, 65534, 65534)
    with pytest.raises(daemon.DaemonError, match="belongs to uid 65534, not to us"):
        daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    with pytest.raises(daemon.DaemonError, match="belongs to uid 65534"):
        daemon.running_pid("master", "127.0.0.1", 0)


# ---------------------------------------------------------------- pid and log files


@pytest.mark.timeout(60)
def test_a_symlink_at_the_pid_files_temporary_name_is_not_written_through(
        dirs: Dirs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    victim = _victim(tmp_path)
    dirs.pids.mkdir(mode=0o700)
    pid_path = daemon.pid_file_path("master", "127.0.0.1", 0)
    # The old scheme's name, and the next name this process will try: both planted.
    planted = [f"{pid_path}.{os.getpid()}.tmp", f"{pid_path}.planted.tmp"]
    for name in planted:
        os.symlink(victim, name)
    names = iter([planted[1]])
    real_temp_name = fsutil._temp_name
    monkeypatch.setattr(fsutil, "_temp_name", lambda path: next(names, None) or real_temp_name(path))

    started = daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    assert victim.read_text() == PLANTED
    assert Path(pid_path).read_text() == f"{started.pid}\n" and not Path(pid_path).is_symlink()
    assert all(os.path.islink(name) for name in planted)  # left alone, never opened


@pytest.mark.timeout(60)
def test_a_symlink_at_the_log_file_is_refused(dirs: Dirs, tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    dirs.logs.mkdir(mode=0o700)
    log_path = Path(daemon.log_file_path("master", "127.0.0.1", 0))
    log_path.symlink_to(victim)
    with pytest.raises(daemon.DaemonError) as exc:
        daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    assert "is a symlink" in str(exc.value) and "\n" not in str(exc.value)
    assert victim.read_text() == PLANTED
    assert _pid_files(dirs) == []

    # The daemon itself, given the log file directly, refuses it too.
    code = "import sys; from sparkctl.deploy.daemon import setup_daemon_logging; setup_daemon_logging(sys.argv[1])"
    r = subprocess.run([sys.executable, "-c", code, str(log_path)], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode != 0 and "is a symlink" in r.stderr
    assert victim.read_text() == PLANTED

    # And so does the .out file next to it.
    log_path.unlink()
    out_path = log_path.with_suffix(".out")
    out_path.symlink_to(victim)
    started = daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)  # the .out link is rotated away
    assert victim.read_text() == PLANTED
    assert out_path.is_file() and not out_path.is_symlink() and Path(f"{out_path}.1").is_symlink()
    assert started.pid > 0


@pytest.mark.timeout(30)
def test_log_rotation_does_not_follow_symlinks(tmp_path: Path) -> None:
    victims = []
    for i in range(3):
        (tmp_path / f"victim{i}.txt").write_text(PLANTED)
        victims.append(tmp_path / f"victim{i}.txt")
    log_file = tmp_path / "d.log"
    for i, victim in enumerate(victims[:2], 1):
        Path(f"{log_file}.{i}").symlink_to(victim)
    handler = PrivateRotatingFileHandler(str(log_file), maxBytes=200, backupCount=3, encoding="utf-8")
    logger = logging.getLogger("sparkctl.test.rotation")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        for i in range(40):
            logger.warning("line %d %s", i, "x" * 40)
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert all(v.read_text() == PLANTED for v in victims)
    assert _mode(log_file) == 0o600 and not log_file.is_symlink()
    assert "line 39" in log_file.read_text()

    # a symlink planted at the live name is refused, not appended to
    log_file.unlink()
    log_file.symlink_to(victims[2])
    with pytest.raises(fsutil.UnsafePathError, match="is a symlink"):
        PrivateRotatingFileHandler(str(log_file), maxBytes=200, backupCount=3)
    assert victims[2].read_text() == PLANTED


# ---------------------------------------------------------------- whose process


@pytest.mark.timeout(60)
def test_a_stale_pid_file_naming_pid_1_does_not_prevent_start(dirs: Dirs) -> None:
    dirs.pids.mkdir(mode=0o700)
    pid_path = Path(daemon.pid_file_path("master", "127.0.0.1", 0))
    pid_path.write_text("1\n")
    assert daemon.running_pid("master", "127.0.0.1", 0) is None
    started = daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    assert started.pid != 1 and pid_path.read_text() == f"{started.pid}\n"
    assert daemon.running_pid("master", "127.0.0.1", 0) == started.pid
    [stopped] = daemon.stop_daemons("master", grace=5)
    assert (stopped.pid, stopped.outcome) == (started.pid, "stopped")


def _decoy(*extra: str, **kwargs: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *extra],
                            stdin=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


@pytest.mark.timeout(60)
def test_master_stop_never_signals_a_process_found_only_by_its_command_line(dirs: Dirs) -> None:
    decoy = _decoy("sparkctl.deploy.master")
    try:
        result = CliRunner().invoke(commands.master, ["stop"])
        assert result.exit_code == 0 and result.output.strip() == "no master running"
        assert decoy.poll() is None
        # Named by a pid file, it is still not a master daemon: stale, not signalled.
        dirs.pids.mkdir(mode=0o700)
        Path(daemon.pid_file_path("master", "127.0.0.1", 7077)).write_text(f"{decoy.pid}\n")
        result = CliRunner().invoke(commands.master, ["stop"])
        assert result.exit_code == 0 and "removed its stale pid file" in result.output
        assert decoy.poll() is None
        assert _pid_files(dirs) == []
    finally:
        decoy.kill()
        decoy.wait()


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="running a process as another user needs root")
def test_a_pid_file_naming_another_users_process_is_stale(dirs: Dirs) -> None:
    # Its command line even looks like a master's; the uid is what gives it away. (A shell
    # waiting on stdin: the user "nobody" may not run this checkout's python.)
    decoy = subprocess.Popen(["/bin/sh", "-c", "read line", "-m", "sparkctl.deploy.master"], stdin=subprocess.PIPE,
                             user=65534, group=65534, cwd="/")
    try:
        dirs.pids.mkdir(mode=0o700)
        pid_path = Path(daemon.pid_file_path("master", "127.0.0.1", 0))
        pid_path.write_text(f"{decoy.pid}\n")
        assert daemon.running_pid("master", "127.0.0.1", 0) is None
        started = daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
        assert pid_path.read_text() == f"{started.pid}\n"
        results = daemon.stop_daemons("master", grace=5)
        assert [(r.pid, r.outcome) for r in results] == [(started.pid, "stopped")]
        assert decoy.poll() is None
    finally:
        decoy.kill()
        decoy.wait()


# ---------------------------------------------------------------- the start lock


@pytest.mark.timeout(60)
def test_a_held_lock_makes_start_fail_naming_the_holder(dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon, "LOCK_TIMEOUT", 1.0)
    dirs.pids.mkdir(mode=0o700)
    hold = ("import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", hold, daemon.lock_file_path()], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        with pytest.raises(daemon.DaemonError) as exc:
            daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
        message = str(exc.value)
        assert "\n" not in message and "still held after 1s" in message
        assert f"process {holder.pid} (" in message
        result = CliRunner().invoke(commands.master, ["start", *MASTER_ARGS[2:]])
        assert result.exit_code == 1 and f"process {holder.pid} (" in result.output
        assert _pid_files(dirs) == []
    finally:
        holder.kill()
        holder.wait()
    # once the holder is gone, start goes on
    started = daemon.start_daemon("master", MASTER_ARGS, "127.0.0.1", 0)
    assert started.pid > 0


# ---------------------------------------------------------------- the secret file


@pytest.mark.timeout(30)
def test_a_secret_file_others_can_write_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparkctl.errors import ConfigError
    from sparkctl.rpc import load_secret

    monkeypatch.delenv("SPARKCTL_SECRET", raising=False)
    secret = tmp_path / "secret"
    secret.write_bytes(b"chosen-by-someone-else\n")
    secret.chmod(0o622)
    with pytest.raises(ConfigError, match="writable by group or others"):
        load_secret(str(tmp_path))
    secret.chmod(0o600)
    assert load_secret(str(tmp_path)) == b"chosen-by-someone-else"
    if os.geteuid() == 0:  # only root can give a file away
        os.chown(secret, 65534, 65534)
        with pytest.raises(ConfigError, match="belongs to uid 65534"):
            load_secret(str(tmp_path))
