"""Task results larger than one frame (spark.rpc.message.maxSize) go through the executor's
block manager and reach the driver in chunks; spark.driver.maxResultSize is checked on the
reported size before anything is fetched. No executor dies either way.

Small limits keep these fast: frames of 8 MiB and results of 20 MB stand for 512 MiB and
640 MiB."""
from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import SparkctlError
from sparkctl.executor.messages import BlockData, FetchBlockChunk
from sparkctl.rpc import connect
from tests.clusters import wait_for

pytestmark = pytest.mark.timeout(90)

RESULT = 20 * 1000 * 1000


def _conf(max_result: str) -> SparkConf:
    return (SparkConf().set("spark.log.level", "ERROR").set("spark.ui.showConsoleProgress", "false")
            .set("spark.rpc.message.maxSize", "8m").set("spark.driver.maxResultSize", max_result))


def _big(i: int) -> tuple[str, bytes]:
    data = os.urandom(RESULT)
    return hashlib.sha256(data).hexdigest(), data


def _block_gone(sc: SparkContext, block_id: str) -> bool:
    """Whether no executor's block server has ``block_id`` any more."""
    runtime = sc._runtime
    for h in list(runtime.executors.values()):
        conn = connect(h.host, h.port, runtime.secret, timeout=10)
        try:
            conn.send(FetchBlockChunk(block_id, 0, 16))
            reply = conn.recv(timeout=10)
        finally:
            conn.close()
        assert isinstance(reply, BlockData)
        if reply.data is not None:
            return False
    return True


def _check_large_result_arrives_intact(sc: SparkContext) -> None:
    runtime = sc._runtime
    before = {e: h.pid for e, h in runtime.executors.items()}
    got = sc.parallelize(range(2), 2).map(_big).collect()
    assert len(got) == 2
    for digest, data in got:
        assert len(data) == RESULT and hashlib.sha256(data).hexdigest() == digest
    assert not runtime.lost_executors
    assert {e: h.pid for e, h in runtime.executors.items()} == before
    last_task = runtime.tasks.next_task_id - 1
    # the driver dropped the blocks it fetched
    wait_for(lambda: _block_gone(sc, f"taskresult_{last_task}"), 10, "the result block to be removed")


def _check_oversized_result_fails_clearly(sc: SparkContext) -> None:
    runtime = sc._runtime
    before = {e: h.pid for e, h in runtime.executors.items()}
    with pytest.raises(SparkctlError, match=r"spark\.driver\.maxResultSize") as info:
        sc.parallelize(range(1), 1).map(_big).collect()
    assert "bigger than spark.driver.maxResultSize" in str(info.value)
    assert not runtime.lost_executors
    assert {e: h.pid for e, h in runtime.executors.items()} == before
    last_task = runtime.tasks.next_task_id - 1
    wait_for(lambda: _block_gone(sc, f"taskresult_{last_task}"), 10, "the refused block to be removed")
    assert runtime.tasks.running_tasks() == 0  # its slot was freed
    assert sc.parallelize(range(100), 4).sum() == 4950


def test_local_result_over_a_frame_arrives_intact(assert_no_child_processes: Any) -> None:
    with SparkContext("local[2]", "large-results", conf=_conf("100m")) as sc:
        _check_large_result_arrives_intact(sc)
    assert_no_child_processes(allow_shared=False)


def test_local_result_over_max_result_size_fails_the_job_only(assert_no_child_processes: Any) -> None:
    with SparkContext("local[2]", "oversized-result", conf=_conf("10m")) as sc:
        _check_oversized_result_fails_clearly(sc)
        # the sum of results is bounded too, checked before the fetch that would pass it
        with pytest.raises(SparkctlError, match=r"spark\.driver\.maxResultSize"):
            sc.parallelize(range(4), 4).map(lambda i: os.urandom(4 << 20)).collect()
        assert sc.parallelize(range(10), 2).count() == 10
        assert not sc._runtime.lost_executors
    assert_no_child_processes(allow_shared=False)


@pytest.mark.timeout(120)
def test_local_cluster_large_and_oversized_results(assert_no_child_processes: Any) -> None:
    with SparkContext("local-cluster[2,1,512]", "cluster-large-results", conf=_conf("50m")) as sc:
        _check_large_result_arrives_intact(sc)
        with pytest.raises(SparkctlError, match=r"spark\.driver\.maxResultSize"):
            sc.parallelize(range(3), 3).map(_big).collect()
        assert not sc._runtime.lost_executors
        assert sc.parallelize(range(100), 4).sum() == 4950
    assert_no_child_processes(allow_shared=False)
