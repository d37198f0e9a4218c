"""The master's recovery journal: files on disk, torn writes, compaction, and a daemon
restarted on the same directory getting back what a restore of its last snapshot gives."""
from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from sparkctl.deploy import messages as m
from sparkctl.deploy.master import MasterDaemon
from sparkctl.deploy.master_state import MasterStateMachine, Reply
from sparkctl.deploy.recovery import LEGACY_SNAPSHOT_FILE, SNAPSHOT_FILE, Journal

T0 = 1_700_000_000.0
SECRET = b"journal-test-secret"


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def _busy_machine() -> tuple[MasterStateMachine, list[list[dict[str, Any]]]]:
    """A machine taken through a few events, and the records each event produced."""
    sm = MasterStateMachine(retained_applications=2)
    sm.track_changes = True
    batches = []

    def feed(actions: Any) -> None:
        batches.append(sm.take_changes())

    for i in range(3):
        feed(sm.register_worker(m.RegisterWorker(f"w{i}", f"h{i}", 7078, 2, 2048), T0 + i))
    ids = []
    for j in range(4):
        actions = sm.register_application(m.RegisterApplication(
            m.ApplicationDescription(f"a{j}", "127.0.0.1", 40000, 2, 1, 512)), T0 + 10 + j)
        feed(actions)
        ids.append(next(a.msg.app_id for a in actions if isinstance(a, Reply)))
    feed(sm.executor_state_changed("w0", m.ExecutorStateChanged(ids[0], "0", m.EXEC_RUNNING), T0 + 20))
    feed(sm.unregister_application(ids[0], m.FINISHED, T0 + 21))
    feed(sm.worker_disconnected("w1", T0 + 22))
    return sm, [b for b in batches if b]


@pytest.mark.timeout(10)
def test_fresh_journal_is_one_private_file_and_replays_to_the_snapshot(tmp_path: Path) -> None:
    directory = tmp_path / "recovery"
    journal = Journal(str(directory))
    journal.start(MasterStateMachine().snapshot())
    assert [(p.name, _mode(p)) for p in directory.iterdir()] == [("journal-00000001.log", 0o600)]
    assert _mode(directory) == 0o700
    sm, batches = _busy_machine()
    for batch in batches:
        journal.append(batch)
    journal.close()
    assert Journal(str(directory)).load() == _plain(sm.snapshot())
    lines = (directory / "journal-00000001.log").read_bytes().split(b"\n")
    assert len(lines) == len(batches) + 1 and lines[-1] == b""  # one line per event


@pytest.mark.timeout(10)
def test_torn_last_record_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    journal = Journal(str(tmp_path))
    journal.start(MasterStateMachine().snapshot())
    sm, batches = _busy_machine()
    for batch in batches[:-1]:
        journal.append(batch)
    before_last = Journal(str(tmp_path)).load()
    journal.append(batches[-1])
    journal.close()
    segment = tmp_path / "journal-00000001.log"
    whole = segment.read_bytes()
    last_line = whole[:-1].rsplit(b"\n", 1)[1]
    for cut in (len(last_line) // 2, len(last_line)):  # torn inside the record, and before its newline
        segment.write_bytes(whole[:len(whole) - 1 - len(last_line) + cut])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sparkctl.master"):
            assert Journal(str(tmp_path)).load() == before_last
        assert "Ignoring a torn last record" in caplog.text
    segment.write_bytes(whole)
    assert Journal(str(tmp_path)).load() == _plain(sm.snapshot())
    # damage anywhere but at the end is not a torn write: refused, not silently skipped
    lines = whole.split(b"\n")
    lines[0] = lines[0][:5]
    segment.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match="record 1 is not valid JSON"):
        Journal(str(tmp_path)).load()


@pytest.mark.timeout(10)
def test_compaction_folds_closed_segments_into_the_snapshot(tmp_path: Path) -> None:
    journal = Journal(str(tmp_path))
    journal.start(MasterStateMachine().snapshot())
    sm, batches = _busy_machine()
    half = len(batches) // 2
    for batch in batches[:half]:
        journal.append(batch)
    through = journal.rotate()
    for batch in batches[half:]:
        journal.append(batch)
    journal.compact(through)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["journal-00000002.log", SNAPSHOT_FILE]
    assert all(_mode(p) == 0o600 for p in tmp_path.iterdir())
    header = json.loads((tmp_path / SNAPSHOT_FILE).read_text().split("\n")[0])
    assert header == {"through": 1, "version": 1}
    assert Journal(str(tmp_path)).load() == _plain(sm.snapshot())
    # a crash after the snapshot was written but before the folded segments went: they are skipped
    (tmp_path / "journal-00000001.log").write_bytes(b'[{"t":"-worker","id":"w0"}]\n')
    assert Journal(str(tmp_path)).load() == _plain(sm.snapshot())
    journal.close()


@pytest.mark.timeout(10)
def test_whole_state_file_of_older_masters_is_read_then_replaced(tmp_path: Path) -> None:
    sm, _ = _busy_machine()
    (tmp_path / LEGACY_SNAPSHOT_FILE).write_text(json.dumps(sm.snapshot()))
    journal = Journal(str(tmp_path))
    data = journal.load()
    assert data == _plain(sm.snapshot())
    journal.start(data)
    journal.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal-00000001.log", SNAPSHOT_FILE]
    assert Journal(str(tmp_path)).load() == _plain(sm.snapshot())


@pytest.mark.timeout(30)
def test_restarted_daemon_gets_back_what_a_restore_of_its_last_state_gives(tmp_path: Path) -> None:
    recovery = str(tmp_path / "recovery")
    first = MasterDaemon("127.0.0.1", 0, 0, SECRET, recovery_dir=recovery).start()
    try:
        with first._lock:
            state = first._state
            for i in range(3):
                first._carry_out(state.register_worker(m.RegisterWorker(f"w{i}", "127.0.0.1", 41000 + i, 2, 2048),
                                                       T0 + i), None)
            actions = state.register_application(m.RegisterApplication(
                m.ApplicationDescription("long", "127.0.0.1", 45000, None, 1, 256)), T0 + 5)
            first._carry_out(actions, None)
            app_id = next(a.msg.app_id for a in actions if isinstance(a, Reply))
            first._carry_out(state.executor_state_changed("w2", m.ExecutorStateChanged(app_id, "2", m.EXEC_RUNNING),
                                                          T0 + 6), None)
            first._carry_out(state.worker_disconnected("w0", T0 + 7), None)
            segment = Path(recovery) / "journal-00000001.log"
            size = segment.stat().st_size
            for i in range(20):
                first._carry_out(state.worker_heartbeat("w1", T0 + 8 + i), None)
            assert segment.stat().st_size == size  # heartbeats are never written
            last = _plain(state.snapshot())
    finally:
        first.stop()
    expected = MasterStateMachine()
    expected.restore(last, T0 + 100)
    second = MasterDaemon("127.0.0.1", 0, 0, SECRET, recovery_dir=recovery, clock=lambda: T0 + 100).start()
    try:
        with second._lock:
            assert second._state.snapshot() == expected.snapshot()
            assert second._state.apps[app_id].state == m.UNKNOWN
            assert [(w.id, w.state, w.cores_used) for w in second._state.workers.values()] == \
                [("w0", m.DEAD, 0), ("w1", m.ALIVE, 2), ("w2", m.ALIVE, 2)]
    finally:
        second.stop()
    # the restart began a new history: one snapshot, one open segment
    assert sorted(p.name for p in Path(recovery).iterdir()) == ["journal-00000002.log", SNAPSHOT_FILE]


@pytest.mark.timeout(30)
def test_daemon_compacts_its_journal_off_the_lock_and_recovers_the_same(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sparkctl.deploy import recovery as recovery_module

    monkeypatch.setattr(recovery_module, "MIN_COMPACT_BYTES", 512)  # compact after a few events
    recovery = tmp_path / "recovery"
    first = MasterDaemon("127.0.0.1", 0, 0, SECRET, recovery_dir=str(recovery)).start()
    compactions = 0
    try:
        for i in range(60):
            with first._lock:
                state = first._state
                first._carry_out(state.register_worker(
                    m.RegisterWorker(f"w{i}", "127.0.0.1", 41000 + i, 2, 2048), T0 + i), None)
                if i % 3 == 0:
                    first._carry_out(state.register_application(m.RegisterApplication(
                        m.ApplicationDescription(f"a{i}", "127.0.0.1", 45000, 1, 1, 256)), T0 + i), None)
                if i % 7 == 6:
                    first._carry_out(state.worker_disconnected(f"w{i - 3}", T0 + i), None)
                running = first._compaction
            if running is not None:
                compactions += 1
                running.join(10)
        with first._lock:
            last = _plain(first._state.snapshot())
    finally:
        first.stop()
    assert compactions >= 2
    names = sorted(p.name for p in recovery.iterdir())
    assert SNAPSHOT_FILE in names and len(names) <= 3  # the snapshot, the open segment, maybe one closed one
    assert Journal(str(recovery)).load() == last
    expected = MasterStateMachine()
    expected.restore(last, T0 + 500)
    second = MasterDaemon("127.0.0.1", 0, 0, SECRET, recovery_dir=str(recovery), clock=lambda: T0 + 500).start()
    try:
        with second._lock:
            assert second._state.snapshot() == expected.snapshot()
    finally:
        second.stop()


@pytest.mark.timeout(30)
def test_a_journal_that_cannot_be_written_is_started_again_from_the_whole_state(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sparkctl.deploy.master as master_module

    recovery = tmp_path / "recovery"
    daemon = MasterDaemon("127.0.0.1", 0, 0, SECRET, recovery_dir=str(recovery)).start()
    try:
        with daemon._lock:
            state = daemon._state
            daemon._carry_out(state.register_worker(m.RegisterWorker("w0", "127.0.0.1", 41000, 2, 2048), T0), None)
            journal = daemon._journal
            assert journal is not None

            def full(records: Any) -> None:
                raise OSError(28, "No space left on device")
            monkeypatch.setattr(journal, "append", full)
            daemon._carry_out(state.register_worker(m.RegisterWorker("w1", "127.0.0.1", 41001, 2, 2048), T0), None)
            assert daemon._journal is None  # abandoned: it misses w1
            monkeypatch.setattr(master_module, "JOURNAL_RETRY_INTERVAL", 0.0)
            daemon._journal_retry_at = 0.0
            daemon._carry_out(state.worker_heartbeat("w0", T0 + 1), None)  # any event: reopened, whole state
            assert daemon._journal is not None
            daemon._carry_out(state.register_worker(m.RegisterWorker("w2", "127.0.0.1", 41002, 2, 2048), T0), None)
            last = _plain(state.snapshot())
    finally:
        daemon.stop()
    assert [w["id"] for w in last["workers"]] == ["w0", "w1", "w2"]
    assert Journal(str(recovery)).load() == last
