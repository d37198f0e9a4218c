"""The DAG scheduler: jobs in, stages and task sets out. A state machine with no I/O.

A job's final RDD is walked back through its dependencies; every shuffle dependency
starts a new (shuffle map) stage. Stages whose parents' map outputs all exist are
submitted as task sets, one task per missing partition; the rest wait for their parents.
Events come in through ``handle_*`` methods and the actions to carry out come back as a
list; the driver runtime feeds the events from the network and carries out the actions.

```
 submit_job ──▶ [ShuffleMapStage 0] ──▶ [ShuffleMapStage 1] ──▶ [ResultStage 2] ──▶ JobSucceeded
                    task_ended(success) registers map outputs; a later job reading the
                    same shuffle gets a new stage, skipped while its outputs all exist
                    task_ended(fetch_failed) unregisters the lost output and resubmits the
                    parent stage for its missing partitions only
```
A barrier stage (``rdd.barrier()`` in its narrow lineage) always runs all its partitions
together; when one of its tasks fails, the task scheduler ends the attempt and
``barrier_stage_failed`` reruns the whole stage, up to ``spark.stage.maxConsecutiveAttempts``
failed attempts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sparkctl.errors import BarrierStageError, FetchFailedError
from sparkctl.rdd.barrier import barrier_lineage_problem, is_barrier
from sparkctl.rdd.dependencies import NarrowDependency, ShuffleDependency, narrow_lineage
from sparkctl.rdd.rdd import RDD
from sparkctl.scheduler.map_output_tracker import MapOutputTracker
from sparkctl.scheduler.task_scheduler import HOST


class Stage:
    def __init__(self, stage_id: int, rdd: RDD, parents: list["Stage"], first_job_id: int) -> None:
        self.id = stage_id
        self.rdd = rdd
        self.num_partitions = rdd.getNumPartitions()
        self.parents = parents
        self.first_job_id = first_job_id
        self.job_ids: set[int] = set()
        self.attempt = -1  # latest attempt number; the first submission is attempt 0
        self.pending: set[int] = set()  # partitions the current attempt still has to finish
        self.is_barrier = is_barrier(rdd)
        self.failed_attempts: set[int] = set()  # failed barrier attempts, against maxConsecutiveAttempts
        self.call_site: str | None = None  # a result stage: its job's action and line (the stage's name)

    def is_shuffle_map(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id})"


class ShuffleMapStage(Stage):
    def __init__(self, stage_id: int, rdd: RDD, parents: list[Stage], first_job_id: int,
                 dep: ShuffleDependency) -> None:
        super().__init__(stage_id, rdd, parents, first_job_id)
        self.dep = dep
        self.push_mergers = 0  # mergers its tasks push to (push-based shuffle), once submitted

    def is_shuffle_map(self) -> bool:
        return True


class ResultStage(Stage):
    def __init__(self, stage_id: int, rdd: RDD, parents: list[Stage], first_job_id: int,
                 func: Callable[..., Any], partitions: list[int]) -> None:
        super().__init__(stage_id, rdd, parents, first_job_id)
        self.func = func
        self.partitions = partitions  # output index -> rdd partition
        self.job: ActiveJob | None = None


@dataclass
class ActiveJob:
    job_id: int
    final_stage: ResultStage
    partitions: list[int]
    properties: dict[str, str]
    finished: list[bool] = field(default_factory=list)
    num_finished: int = 0
    output_index: dict[int, int] = field(default_factory=dict)  # rdd partition -> position in results

    def __post_init__(self) -> None:
        self.output_index = {p: i for i, p in enumerate(self.partitions)}


# ----------------------------------------------------------------- actions out
@dataclass
class SubmitTaskSet:
    stage: Stage
    attempt: int
    partitions: list[int]  # rdd partition indices to run
    preferred: dict[int, set[str]]  # partition -> executor ids holding its cached input
    job_id: int
    properties: dict[str, str]
    barrier: bool = False


@dataclass
class CancelTaskSet:
    stage_id: int
    attempt: int
    reason: str


@dataclass
class DeliverResult:
    job_id: int
    output_index: int
    value: Any


@dataclass
class JobSucceeded:
    job_id: int


@dataclass
class JobFailed:
    job_id: int
    error: BaseException


@dataclass
class ApplyAccumulators:
    updates: dict[int, Any]


Action = Any


class DAGScheduler:
    def __init__(self, tracker: MapOutputTracker | None = None, max_stage_attempts: int = 4) -> None:
        self.tracker = tracker or MapOutputTracker()
        self.max_stage_attempts = max_stage_attempts  # spark.stage.maxConsecutiveAttempts (barrier stages)
        self.next_stage_id = 0
        self.stages: dict[int, Stage] = {}
        self.shuffle_stages: dict[int, ShuffleMapStage] = {}  # shuffle id -> its stage, while a job needs it
        self.jobs: dict[int, ActiveJob] = {}
        self.waiting: set[Stage] = set()
        self.running: set[Stage] = set()
        self.cache_locs: dict[tuple[int, int], set[str]] = {}
        self._accumulated: set[tuple[str, int, int]] = set()  # (kind, stage or shuffle id, partition)

    # ------------------------------------------------------------- stage graph
    def _new_stage_id(self) -> int:
        sid = self.next_stage_id
        self.next_stage_id += 1
        return sid

    def _parent_shuffle_deps(self, rdd: RDD) -> list[ShuffleDependency]:
        """The shuffle dependencies reachable from ``rdd`` through narrow ones only."""
        found: list[ShuffleDependency] = []
        for r in narrow_lineage(rdd):
            for dep in r.dependencies:
                if isinstance(dep, ShuffleDependency) and all(d.shuffle_id != dep.shuffle_id for d in found):
                    found.append(dep)
        return found

    def _parent_stages(self, rdd: RDD, job_id: int) -> list[Stage]:
        return [self._shuffle_map_stage(dep, job_id) for dep in self._parent_shuffle_deps(rdd)]

    def _shuffle_map_stage(self, dep: ShuffleDependency, job_id: int) -> ShuffleMapStage:
        stage = self.shuffle_stages.get(dep.shuffle_id)
        if stage is None:
            parents = self._parent_stages(dep.rdd, job_id)
            stage = ShuffleMapStage(self._new_stage_id(), dep.rdd, parents, job_id, dep)
            self.stages[stage.id] = stage
            self.shuffle_stages[dep.shuffle_id] = stage
            self.tracker.register_shuffle(dep.shuffle_id, stage.num_partitions)
        return stage

    def _missing_parents(self, stage: Stage) -> list[Stage]:
        return [p for p in stage.parents
                if isinstance(p, ShuffleMapStage) and not self.tracker.is_available(p.dep.shuffle_id)]

    # ------------------------------------------------------------- events in
    def submit_job(self, job_id: int, rdd: RDD, func: Callable[..., Any], partitions: list[int],
                   properties: dict[str, str] | None = None) -> list[Action]:
        if not partitions:
            return [JobSucceeded(job_id)]
        parents = self._parent_stages(rdd, job_id)
        final = ResultStage(self._new_stage_id(), rdd, parents, job_id, func, partitions)
        problem = barrier_lineage_problem(rdd, partitions) if final.is_barrier else ""
        if problem:
            return [JobFailed(job_id, BarrierStageError(problem))]
        self.stages[final.id] = final
        job = ActiveJob(job_id, final, partitions, properties or {}, [False] * len(partitions))
        final.job = job
        self.jobs[job_id] = job
        self._mark_job(final, job_id)
        return self._submit_stage(final, job)

    def _mark_job(self, stage: Stage, job_id: int) -> None:
        stage.job_ids.add(job_id)
        for p in stage.parents:
            self._mark_job(p, job_id)

    def _submit_stage(self, stage: Stage, job: ActiveJob) -> list[Action]:
        if stage in self.running or stage in self.waiting:
            return []
        missing = self._missing_parents(stage)
        if missing:
            actions: list[Action] = []
            for parent in sorted(missing, key=lambda s: s.id):
                actions += self._submit_stage(parent, job)
            self.waiting.add(stage)
            return actions
        return self._submit_tasks(stage, job)

    def _submit_tasks(self, stage: Stage, job: ActiveJob) -> list[Action]:
        if stage.is_barrier and stage.attempt >= 0:
            self._reset_barrier_stage(stage)
        if isinstance(stage, ShuffleMapStage):
            parts = self.tracker.missing_partitions(stage.dep.shuffle_id)
        else:
            assert isinstance(stage, ResultStage) and stage.job is not None
            parts = [stage.partitions[i] for i, done in enumerate(stage.job.finished) if not done]
        if not parts:
            return self._stage_finished(stage)
        stage.attempt += 1
        stage.pending = set(parts)
        self.running.add(stage)
        preferred = {p: self._preferred_locations(stage.rdd, p) for p in parts}
        return [SubmitTaskSet(stage, stage.attempt, parts, {p: l for p, l in preferred.items() if l},
                              job.job_id, job.properties, stage.is_barrier)]

    def _reset_barrier_stage(self, stage: Stage) -> None:
        """A barrier stage runs again as a whole: its tasks work together, so the outputs
        of an earlier attempt's tasks cannot be mixed with a new attempt's."""
        if isinstance(stage, ShuffleMapStage):
            for p in range(stage.num_partitions):
                self.tracker.unregister_map_output(stage.dep.shuffle_id, p)
        elif isinstance(stage, ResultStage) and stage.job is not None:
            stage.job.finished = [False] * len(stage.job.partitions)
            stage.job.num_finished = 0

    def barrier_stage_failed(self, stage_id: int, stage_attempt: int, error: BaseException,
                             reason: str) -> list[Action]:
        """A task of a barrier stage attempt failed (the task scheduler is killing the
        others): run the whole stage again, unless it failed too often in a row."""
        stage = self.stages.get(stage_id)
        if stage is None or stage_attempt != stage.attempt or stage not in self.running:
            return []
        stage.failed_attempts.add(stage_attempt)
        self.running.discard(stage)
        if len(stage.failed_attempts) >= self.max_stage_attempts:
            note = (f"barrier stage {stage_id} failed {len(stage.failed_attempts)} attempts in a row "
                    f"(spark.stage.maxConsecutiveAttempts={self.max_stage_attempts}); the last: {reason}")
            if hasattr(error, "add_note"):
                error.add_note(note)
            else:  # pragma: no cover - Python < 3.11
                error = BarrierStageError(note)
            return self.task_set_failed(stage_id, error)
        job = self._any_job(stage)
        return self._submit_tasks(stage, job) if job is not None else []

    def _preferred_locations(self, rdd: RDD, partition: int, depth: int = 0) -> set[str]:
        locs = self.cache_locs.get((rdd._id, partition))
        if locs:
            return set(locs)
        hosts = getattr(rdd, "preferred_hosts", None)  # input whose filesystem knows where its bytes are
        if hosts is not None and hosts(partition):
            return {HOST + h for h in hosts(partition)}
        if depth > 32:
            return set()
        for dep in rdd.dependencies:
            if isinstance(dep, NarrowDependency):
                for parent in dep.get_parents(partition):
                    found = self._preferred_locations(dep.rdd, parent, depth + 1)
                    if found:
                        return found
        return set()

    def task_ended(self, stage_id: int, stage_attempt: int, partition: int, *, success: bool,
                   value: Any = None, error: BaseException | None = None,
                   accum_updates: dict[int, Any] | None = None, blocks_added: list[str] | None = None,
                   executor_id: str | None = None) -> list[Action]:
        stage = self.stages.get(stage_id)
        if stage is None:
            return []
        actions: list[Action] = []
        if isinstance(error, FetchFailedError):
            return self._fetch_failed(stage, stage_attempt, error)
        if not success:
            return []  # the task scheduler retries, or fails the task set
        if stage.is_barrier and stage_attempt != stage.attempt:
            return []  # a task of an abandoned barrier attempt: its output may not mix with the new one's
        if executor_id is not None:
            for block in blocks_added or ():
                _, rdd_id, split = block.split("_")
                self.cache_locs.setdefault((int(rdd_id), int(split)), set()).add(executor_id)
        if isinstance(stage, ResultStage):
            job = stage.job
            if job is None or job.job_id not in self.jobs:
                return []
            idx = job.output_index[partition]
            if job.finished[idx]:
                return []  # a duplicate (speculative) attempt: results and updates count once
            actions.append(self._accumulate(("result", stage.id, partition), accum_updates))
            job.finished[idx] = True
            job.num_finished += 1
            stage.pending.discard(partition)
            actions.append(DeliverResult(job.job_id, idx, value))
            if job.num_finished == len(job.partitions):
                self.running.discard(stage)
                actions.append(JobSucceeded(job.job_id))
                actions += self._cleanup_job(job)
            return [a for a in actions if a is not None]
        assert isinstance(stage, ShuffleMapStage)
        actions.append(self._accumulate(("shuffle", stage.dep.shuffle_id, partition), accum_updates))
        self.tracker.register_map_output(stage.dep.shuffle_id, partition, value)
        if stage_attempt == stage.attempt:
            stage.pending.discard(partition)
        if stage in self.running and not stage.pending:
            actions += self._stage_finished(stage)
        return [a for a in actions if a is not None]

    def _accumulate(self, key: tuple[str, int, int], updates: dict[int, Any] | None) -> Action:
        if not updates or key in self._accumulated:
            return None
        self._accumulated.add(key)
        return ApplyAccumulators(updates)

    def _stage_finished(self, stage: Stage) -> list[Action]:
        self.running.discard(stage)
        actions: list[Action] = []
        if isinstance(stage, ShuffleMapStage) and not self.tracker.is_available(stage.dep.shuffle_id):
            # outputs were lost while the stage ran (an executor died): run the missing ones
            job = self._any_job(stage)
            return self._submit_tasks(stage, job) if job else []
        for waiting in sorted(self.waiting, key=lambda s: s.id):
            if not self._missing_parents(waiting):
                self.waiting.discard(waiting)
                job = self._any_job(waiting)
                if job is not None:
                    actions += self._submit_tasks(waiting, job)
        return actions

    def _any_job(self, stage: Stage) -> ActiveJob | None:
        for jid in sorted(stage.job_ids):
            if jid in self.jobs:
                return self.jobs[jid]
        return None

    def _fetch_failed(self, stage: Stage, attempt: int, err: FetchFailedError) -> list[Action]:
        actions: list[Action] = []
        self.tracker.unregister_map_output(err.shuffle_id, err.map_index)
        if stage in self.running and attempt == stage.attempt:
            # this attempt cannot finish; stop launching its tasks and wait for the parent
            self.running.discard(stage)
            actions.append(CancelTaskSet(stage.id, attempt, f"fetch failed: {err.message}"))
            self.waiting.add(stage)
        parent = self.shuffle_stages.get(err.shuffle_id)
        if parent is not None and parent not in self.running:
            job = self._any_job(stage)
            if job is not None:
                self.waiting.discard(parent)
                actions += self._submit_stage(parent, job)
        return actions

    def executor_lost(self, executor_id: str) -> list[Action]:
        """Forget its shuffle outputs and cached blocks. A running map stage notices the
        lost outputs when its attempt ends and reruns just those; a reduce stage that
        needs them gets fetch failures, which resubmit the parent."""
        self.tracker.remove_outputs_on_executor(executor_id)
        for locs in self.cache_locs.values():
            locs.discard(executor_id)
        return []

    def task_set_failed(self, stage_id: int, error: BaseException) -> list[Action]:
        """The task scheduler gave up on a task (too many failures) or could not serialize."""
        stage = self.stages.get(stage_id)
        if stage is None:
            return []
        actions: list[Action] = []
        for jid in sorted(stage.job_ids):
            job = self.jobs.get(jid)
            if job is not None:
                actions += self._fail_job(job, error)
        return actions

    def cancel_job(self, job_id: int, error: BaseException) -> list[Action]:
        job = self.jobs.get(job_id)
        return self._fail_job(job, error) if job else []

    def _fail_job(self, job: ActiveJob, error: BaseException) -> list[Action]:
        actions: list[Action] = [JobFailed(job.job_id, error)]
        actions += self._cleanup_job(job, cancel_running=True)
        return actions

    def _cleanup_job(self, job: ActiveJob, cancel_running: bool = False) -> list[Action]:
        self.jobs.pop(job.job_id, None)
        actions: list[Action] = []
        for stage in list(self.stages.values()):
            if job.job_id not in stage.job_ids:
                continue
            stage.job_ids.discard(job.job_id)
            if stage.job_ids:
                continue
            if stage in self.running:
                self.running.discard(stage)
                if cancel_running:
                    actions.append(CancelTaskSet(stage.id, stage.attempt, "job ended"))
            self.waiting.discard(stage)
            # As Spark: a stage lives as long as a job needs it. A later job reading the same
            # shuffle gets a new stage, which it skips while the map outputs are all there.
            del self.stages[stage.id]
            if isinstance(stage, ShuffleMapStage) and self.shuffle_stages.get(stage.dep.shuffle_id) is stage:
                del self.shuffle_stages[stage.dep.shuffle_id]
        return actions

    def remove_shuffle(self, shuffle_id: int) -> None:
        stage = self.shuffle_stages.pop(shuffle_id, None)
        if stage is not None and not stage.job_ids:
            self.stages.pop(stage.id, None)
        self.tracker.unregister_shuffle(shuffle_id)
