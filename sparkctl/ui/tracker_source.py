"""``sc.statusTracker()`` over the same status the UI shows (the AppStatusListener).

The listener is fed asynchronously by the listener bus; each query first waits for the
events already posted to be delivered, so a job that just returned is seen as finished,
as a caller of PySpark's status API expects. The tracker's answers are PySpark's
(``SparkJobInfo``, ``SparkStageInfo``), built from the listener's jobs and stage attempts.
"""
from __future__ import annotations

from sparkctl.scheduler.listener import LiveListenerBus
from sparkctl.status import SparkJobInfo, SparkStageInfo
from sparkctl.ui.status_listener import AppStatusListener, StageEntry


class ListenerStatusSource:
    """What ``sparkctl.status.StatusTracker`` asks, answered from an AppStatusListener."""

    def __init__(self, listener: AppStatusListener, bus: LiveListenerBus) -> None:
        self.listener = listener
        self.bus = bus

    def _sync(self) -> None:
        self.bus.flush()

    def job_ids(self, *, group: str | None = None, any_group: bool = False, tag: str | None = None) -> list[int]:
        self._sync()
        with self.listener.lock:
            return [j.job_id for j in self.listener.jobs.values()
                    if (any_group or j.group == group) and (tag is None or tag in j.tags)]

    def running_job_ids(self, tag: str | None = None) -> list[int]:
        self._sync()
        with self.listener.lock:
            return [j.job_id for j in self.listener.jobs.values()
                    if j.status == "RUNNING" and (tag is None or tag in j.tags)]

    def active_stage_ids(self) -> list[int]:
        self._sync()
        with self.listener.lock:
            return sorted({s.stage_id for s in self.listener.stages.values() if s.status == "ACTIVE"})

    def job_info(self, job_id: int) -> SparkJobInfo | None:
        self._sync()
        with self.listener.lock:
            j = self.listener.jobs.get(job_id)
            return None if j is None else SparkJobInfo(j.job_id, list(j.stage_ids), j.status)

    def stage_info(self, stage_id: int) -> SparkStageInfo | None:
        self._sync()
        with self.listener.lock:
            found = self.listener.latest_attempt(stage_id)
            if found is None:
                return None
            s: StageEntry = found
            # an ended attempt's last tasks are being killed: none of them counts as active any more
            active = s.active if s.status == "ACTIVE" else 0
            return SparkStageInfo(s.stage_id, s.attempt, s.name, s.num_tasks, active, s.complete, s.failed)
