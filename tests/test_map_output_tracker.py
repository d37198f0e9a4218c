"""The map output tracker: statuses leave the stage binary, executors ask the driver once
per shuffle and epoch, a fetch failure's epoch makes them ask again, and large statuses
travel as a broadcast. The state machines are driven directly; the wiring is checked on
the shared local context (one executor process, two task slots), whose answers are
compared with plain Python's."""
from __future__ import annotations

import dataclasses
import os
import pickle
import threading
from typing import Any, Iterator

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import ConfigError
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.map_output_tracker import (MIN_SIZE_FOR_BROADCAST, MapOutputTracker, MapOutputTrackerWorker,
                                                   MetadataFetchFailedError, ShuffleStatuses, decode_statuses,
                                                   encode_statuses)
from sparkctl.storage.shuffle import MapStatus
from tests.conftest import stop_shared_context

pytestmark = pytest.mark.timeout(120)


def status(i: int, reducers: int, executor: str = "e0", scale: int = 1) -> MapStatus:
    return MapStatus(executor, f"127.0.0.{2 + i % 3}", 40000 + i % 3, f"/tmp/x/shuffle_7_{i}_{i}.data",
                     f"/tmp/x/shuffle_7_{i}_{i}.index", tuple(((i * 31 + r * 17) % 5) * scale for r in range(reducers)))


# ------------------------------------------------------------------------ encoding
@pytest.mark.parametrize("scale", [1, 1000, 1 << 33], ids=["tiny", "kib", "over-4gib"])
def test_encoded_statuses_decode_to_the_same_statuses(scale: int) -> None:
    statuses: list[MapStatus | None] = [status(i, 50, f"e{i % 4}", scale) for i in range(40)]
    statuses[5] = None
    assert decode_statuses(encode_statuses(statuses)) == statuses
    compact = decode_statuses(encode_statuses(statuses), compact=True)  # sizes as array slices
    assert [s and s._replace(sizes=tuple(s.sizes)) for s in compact] == statuses
    assert decode_statuses(encode_statuses([])) == []
    assert decode_statuses(encode_statuses([None, None])) == [None, None]


def pushed(i: int, reducers: int, mergers: tuple[Any, ...], scale: int = 1) -> MapStatus:
    """A map output whose slices were pushed, but every third one (-1: not merged)."""
    base = status(i, reducers, f"e{i % 4}", scale)
    offsets = tuple(-1 if (i + r) % 3 == 0 else (i * 977 + r * 131) * scale for r in range(reducers))
    return base._replace(merged=offsets, mergers=mergers)


@pytest.mark.parametrize("maps,reducers,scale", [(40, 50, 1), (7, 3000, 1000), (300, 9, 1 << 33), (1, 1, 1)],
                         ids=["small", "many-groups", "over-4gib", "one"])
def test_a_reducer_reads_its_column_as_the_statuses_say(maps: int, reducers: int, scale: int) -> None:
    mergers = (("e1", "127.0.0.3", 40001), None)
    statuses: list[MapStatus | None] = [pushed(i, reducers, mergers, scale) if i % 2 or i == maps - 1
                                        else status(i, reducers, "e0", scale)
                                        for i in range(maps)]
    if maps > 5:
        statuses[5] = None
    encoded = ShuffleStatuses(encode_statuses(statuses, mergers))
    assert len(encoded) == maps and encoded.complete == (None not in statuses)
    assert decode_statuses(encoded.data) == statuses
    for r in sorted({0, reducers // 2, reducers - 1}):
        column = encoded.column(r)
        assert list(column.sizes) == [s.sizes[r] if s else 0 for s in statuses]
        assert column.merged is not None
        assert list(column.merged) == [s.merged[r] if s and s.merged else -1 for s in statuses]
        assert column.mergers == mergers and column.reducers == reducers
        assert [loc and tuple(loc) for loc in column.locations] == [s and tuple(s[:5]) for s in statuses]
    with pytest.raises(IndexError):
        encoded.column(reducers)


def test_a_reducer_inflates_only_the_group_of_columns_it_reads() -> None:
    statuses: list[MapStatus | None] = [status(i, 2000) for i in range(100)]
    encoded = ShuffleStatuses(encode_statuses(statuses))
    assert encoded.groups > 10
    assert encoded.column(1234).merged is None  # nothing was pushed
    assert encoded.groups_inflated == 1
    encoded.column(1235)
    assert encoded.groups_inflated <= 2
    assert list(encoded.column(1999).sizes) == [s.sizes[1999] for s in statuses if s]


def test_encoded_statuses_are_smaller_than_the_pickled_ones() -> None:
    statuses = [status(i, 1000) for i in range(200)]
    assert len(encode_statuses(statuses)) * 10 < len(pickle.dumps(statuses, 5))


# ------------------------------------------------------------------------ driver side
def test_the_epoch_rises_when_an_output_is_lost_not_when_one_is_registered() -> None:
    t = MapOutputTracker()
    t.register_shuffle(7, 3)
    for i in range(3):
        t.register_map_output(7, i, status(i, 4, f"e{i}"))
    assert t.epoch == 0 and t.is_available(7)
    t.unregister_map_output(7, 1)
    assert t.epoch == 1 and t.missing_partitions(7) == [1]
    t.unregister_map_output(7, 1)  # nothing left there to lose
    assert t.epoch == 1
    t.remove_outputs_on_executor("e2")
    assert t.epoch == 2 and t.missing_partitions(7) == [1, 2]
    t.remove_outputs_on_executor("e9")
    assert t.epoch == 2


def test_statuses_are_encoded_once_per_change_of_their_shuffle() -> None:
    t = MapOutputTracker()
    t.register_shuffle(7, 2)
    t.register_map_output(7, 0, status(0, 8))
    first = t.serve(7, lambda bid: False)
    assert not first.complete and decode_statuses(first.data) == [status(0, 8), None]
    t.register_map_output(7, 1, status(1, 8))
    served = [t.serve(7, lambda bid: False) for _ in range(5)]
    assert all(s.data is served[0].data for s in served)  # the same bytes, encoded once
    assert served[0].complete and decode_statuses(served[0].data) == [status(0, 8), status(1, 8)]
    assert t.requests_served == 6
    assert t.bytes_served == len(first.data) + 5 * len(served[0].data)
    assert served[0].broadcast_id is None


def test_large_statuses_are_a_broadcast_sent_once_and_retired_when_they_change() -> None:
    t = MapOutputTracker(min_size_for_broadcast=1)
    t.register_shuffle(7, 3)
    for i in range(3):
        t.register_map_output(7, i, status(i, 100, f"e{i}"))
    held: set[int] = set()
    one = t.serve(7, held.__contains__)
    assert one.broadcast_id is not None and one.broadcast_id < 0  # apart from the context's ids
    held.add(one.broadcast_id)
    again = t.serve(7, held.__contains__)
    assert again.broadcast_id == one.broadcast_id
    assert t.bytes_served == len(one.data)  # the executor that holds it is sent nothing more
    assert t.retired_broadcasts() == []
    t.unregister_map_output(7, 0)
    assert t.retired_broadcasts() == [one.broadcast_id]
    assert t.serve(7, held.__contains__).broadcast_id not in (None, one.broadcast_id)


# ------------------------------------------------------------------------ executor side
def test_an_executor_asks_once_however_many_slots_wait() -> None:
    asked: list[int] = []
    gate = threading.Event()
    worker: MapOutputTrackerWorker
    driver_epoch = [0]

    def answer(shuffle_id: int) -> None:
        gate.wait(10)
        worker.deliver(shuffle_id, driver_epoch[0], b"S" + bytes([shuffle_id]))

    def request(shuffle_id: int) -> None:
        asked.append(shuffle_id)
        threading.Thread(target=answer, args=(shuffle_id,)).start()

    worker = MapOutputTrackerWorker(request, timeout=10)
    got: list[bytes] = []
    waiters = [threading.Thread(target=lambda: got.append(worker.get(3, 0))) for _ in range(8)]
    for w in waiters:
        w.start()
    gate.set()
    for w in waiters:
        w.join(10)
    assert got == [b"S\x03"] * 8 and asked == [3]
    assert worker.get(3, 0) == b"S\x03" and asked == [3]  # cached
    driver_epoch[0] = 1
    worker.update_epoch(1)  # a stage submitted after outputs were lost
    assert worker.get(3, 1) == b"S\x03" and asked == [3, 3]
    assert worker.get(3, 0) == b"S\x03" and asked == [3, 3]  # an older stage's epoch drops nothing


def test_an_executor_does_not_keep_statuses_missing_an_output() -> None:
    asked: list[int] = []
    worker: MapOutputTrackerWorker

    def request(shuffle_id: int) -> None:
        asked.append(shuffle_id)
        worker.deliver(shuffle_id, 0, b"partial", complete=len(asked) > 1)

    worker = MapOutputTrackerWorker(request, timeout=10)
    assert worker.get(1, 0) == b"partial" and worker.get(1, 0) == b"partial" and worker.get(1, 0) == b"partial"
    assert asked == [1, 1]


def test_a_driver_that_does_not_answer_is_a_metadata_fetch_failure() -> None:
    worker = MapOutputTrackerWorker(lambda shuffle_id: None, timeout=0.2)
    with pytest.raises(MetadataFetchFailedError, match="shuffle 4"):
        worker.get(4, 0)


# ------------------------------------------------------------------------ real processes
def test_the_stage_binary_carries_no_statuses() -> None:
    fields = {f.name for f in dataclasses.fields(m.StageBinary)}
    assert "shuffle_statuses" not in fields and {"shuffle_ids", "map_output_epoch"} <= fields


@pytest.fixture
def sent(sc: Any) -> Iterator[list[Any]]:
    """Every message the driver sends to an executor while the test runs."""
    rt = sc._runtime
    seen: list[Any] = []
    original = rt._send

    def record(h: Any, msg: Any) -> None:
        seen.append(msg)
        original(h, msg)

    rt._send = record
    try:
        yield seen
    finally:
        del rt._send


def _words(n: int) -> list[tuple[str, int]]:
    return [(f"w{i % 97}", i) for i in range(n)]


def test_a_reduce_stage_asks_for_its_statuses_once_per_executor(sc: Any, sent: list[Any]) -> None:
    tracker = sc._runtime.map_outputs
    requests = tracker.requests_served
    got = dict(sc.parallelize(_words(5000), 30).reduceByKey(lambda a, b: a + b, 40).collect())
    assert got == sums(_words(5000))
    stages = [msg for msg in sent if isinstance(msg, m.StageBinary)]
    reduce_stage = next(s for s in stages if s.shuffle_ids)
    # none of the 30 map outputs' files is named in what the reduce stage's tasks are sent
    [shuffle_id] = reduce_stage.shuffle_ids
    outputs = sc._runtime.map_outputs.outputs[shuffle_id]
    stage_bytes = pickle.dumps(reduce_stage)
    assert len(outputs) == 30
    assert not any(os.path.basename(s.data_path).encode() in stage_bytes for s in outputs)
    answers = [msg for msg in sent if isinstance(msg, m.MapOutputStatuses)]
    executors = len(sc._runtime.executors)
    assert tracker.requests_served - requests == executors == len(answers)  # 40 tasks, 2 slots
    assert answers[0].data is not None and decode_statuses(answers[0].data) == outputs
    assert answers[0].shuffle_id == shuffle_id


def test_after_a_fetch_failure_the_new_epoch_makes_executors_ask_again(sc: Any, sent: list[Any]) -> None:
    rt = sc._runtime
    tracker = rt.map_outputs
    pairs = sc.parallelize(_words(3000), 6).reduceByKey(lambda a, b: a + b, 5)
    expected = sorted(sums(_words(3000)).items())
    assert sorted(pairs.collect()) == expected
    requests, epoch = tracker.requests_served, tracker.epoch
    [shuffle_id] = next(msg.shuffle_ids for msg in sent if isinstance(msg, m.StageBinary) and msg.shuffle_ids)
    assert sorted(pairs.collect()) == expected  # the map stage is skipped; the statuses are cached
    assert tracker.requests_served == requests
    lost = tracker.outputs[shuffle_id][2]
    assert lost is not None
    os.unlink(lost.data_path)  # the reducers' next read of it fails
    assert sorted(pairs.collect()) == expected
    assert tracker.epoch > epoch
    assert tracker.requests_served > requests  # asked again at the new epoch
    stages = [msg for msg in sent if isinstance(msg, m.StageBinary) and msg.shuffle_ids == (shuffle_id,)]
    assert stages[-1].map_output_epoch == tracker.epoch > stages[0].map_output_epoch


def sums(pairs: list[tuple[Any, int]]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for k, v in pairs:
        out[k] = out.get(k, 0) + v
    return out


def test_large_statuses_travel_as_a_broadcast(sc: Any, sent: list[Any]) -> None:
    rt = sc._runtime
    tracker = rt.map_outputs
    saved = tracker.min_size_for_broadcast
    tracker.min_size_for_broadcast = 1
    try:
        data = [(i % 50, 1) for i in range(2000)]
        pairs = sc.parallelize(data, 8).reduceByKey(lambda a, b: a + b, 6)
        assert sorted(pairs.collect()) == sorted(sums(data).items())
        answers = [msg for msg in sent if isinstance(msg, m.MapOutputStatuses)]
        puts = [msg for msg in sent if isinstance(msg, m.PutBroadcast) and msg.bid < 0]
        assert answers and all(a.data is None and a.broadcast_id is not None for a in answers)
        assert {p.bid for p in puts} == {a.broadcast_id for a in answers}
        assert len(decode_statuses(puts[0].data)) == 8
        bid = puts[0].bid
        assert all(bid in h.broadcasts for h in rt.executors.values())
        # lose an output: the rerun changes the statuses, so executors drop the old broadcast
        shuffle_id = answers[0].shuffle_id
        os.unlink(tracker.outputs[shuffle_id][3].data_path)
        assert sorted(pairs.collect()) == sorted(sums(data).items())
        assert any(isinstance(msg, m.RemoveBroadcast) and msg.bid == bid for msg in sent)
        assert not any(bid in h.broadcasts for h in rt.executors.values())
    finally:
        tracker.min_size_for_broadcast = saved


# ------------------------------------------------------------------------ the threshold from the conf
def test_the_threshold_defaults_to_sparks_512k() -> None:
    conf = SparkConf(loadDefaults=False)
    assert conf.get_size("spark.shuffle.mapOutput.minSizeForBroadcast") == MIN_SIZE_FOR_BROADCAST == 512 * 1024
    assert conf.set("spark.shuffle.mapOutput.minSizeForBroadcast", "300").get_size(
        "spark.shuffle.mapOutput.minSizeForBroadcast") == 300  # a bare number is bytes, as in Spark


def test_a_bad_threshold_stops_the_context_naming_key_value_and_source() -> None:
    stop_shared_context()
    conf = SparkConf().set("spark.shuffle.mapOutput.minSizeForBroadcast", "lots")
    with pytest.raises(ConfigError, match=r"^SparkConf.set: spark.shuffle.mapOutput.minSizeForBroadcast must be a "
                                          r"size .*, not 'lots'$"):
        SparkContext("local[1]", "bad-threshold", conf=conf)
    assert SparkContext._active is None


def test_the_conf_threshold_decides_which_statuses_go_as_a_broadcast_on_a_cluster() -> None:
    """On a real local cluster (a master, two workers, an executor each), with the
    threshold at 512 bytes: a small shuffle's statuses come inline, a larger one's as a
    broadcast, exactly as their encoded sizes compare with it; results equal plain Python."""
    stop_shared_context()
    conf = (SparkConf().set("spark.shuffle.mapOutput.minSizeForBroadcast", "512")
            .set("spark.ui.showConsoleProgress", "false"))
    with SparkContext("local-cluster[2,1,512]", "map-output-threshold", conf=conf) as sc:
        rt = sc._runtime
        assert rt is not None and rt.map_outputs.min_size_for_broadcast == 512
        seen: list[Any] = []
        original = rt._send

        def record(h: Any, msg: Any) -> None:
            seen.append(msg)
            original(h, msg)

        rt._send = record  # type: ignore[method-assign]
        small = [(i % 7, 1) for i in range(100)]
        large = [(i % 997, i) for i in range(20000)]
        assert sorted(sc.parallelize(small, 2).reduceByKey(lambda a, b: a + b, 2).collect()) == \
            sorted(sums(small).items())
        assert sorted(sc.parallelize(large, 40).reduceByKey(lambda a, b: a + b, 200).collect()) == \
            sorted(sums(large).items())
        answers = [msg for msg in seen if isinstance(msg, m.MapOutputStatuses)]
        puts = {msg.bid: msg.data for msg in seen if isinstance(msg, m.PutBroadcast) and msg.bid < 0}
        tracker = rt.map_outputs
        assert sorted({a.shuffle_id for a in answers}) == sorted(tracker.outputs) and len(tracker.outputs) == 2
        as_broadcast = set()
        for a in answers:
            encoded = encode_statuses(tracker.outputs[a.shuffle_id])
            if len(encoded) >= 512:
                assert a.data is None and a.broadcast_id is not None
                assert decode_statuses(puts[a.broadcast_id]) == tracker.outputs[a.shuffle_id]
                as_broadcast.add(a.shuffle_id)
            else:
                assert a.broadcast_id is None and a.data is not None
                assert decode_statuses(a.data) == tracker.outputs[a.shuffle_id]
        assert len(as_broadcast) == 1  # the large shuffle only
        del rt._send
