"""SparkContext: the driver's entry point, PySpark's API.

Creating one starts the driver runtime (a server its executors connect to), picks the
scheduler backend from the master URL and waits for the executors to register. Every
action on an RDD ends in :meth:`SparkContext.run_job`.
"""
from __future__ import annotations

import atexit
import getpass
import itertools
import logging
import os
import posixpath
import secrets
import sys
import threading
import time
import traceback
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

from sparkctl import serializers
from sparkctl.accumulators import Accumulator, AccumulatorParam, default_param
from sparkctl.broadcast import Broadcast
from sparkctl.conf import LOCAL_N, MASTER_URL_FORMS, MasterURL, SparkConf, conf_dir, invalid, master_url_ok
from sparkctl.errors import ConfigError, ContextOnlyOnDriverError, ProfilerNotEnabledError, SparkctlError
from sparkctl.files import AddedFiles, SparkFiles, add_configured, driver_import_path, use_as_root
from sparkctl.rdd.rdd import RDD
from sparkctl.scheduler import messages as m
from sparkctl.scheduler.backend import LocalBackend, SchedulerBackend
from sparkctl.rpc import load_secret
from sparkctl.scheduler.runtime import DriverRuntime
from sparkctl.storage.merged_shuffle import PushConfig
from sparkctl.status import JOB_TAGS, JOB_TAGS_SEP, StatusTracker, job_tags
from sparkctl.taskcontext import TaskContext
from sparkctl.ui.spark_ui import start_app_ui
from sparkctl.util import shutdown
from sparkctl.util.fsutil import private_makedirs

log = logging.getLogger("sparkctl.driver")

def parse_local_master(master: str) -> tuple[int, int | None] | None:
    """(cores, maxFailures) for local masters; None for other masters."""
    if master == "local":
        return 1, None
    mt = LOCAL_N.match(master)
    if not mt:
        return None
    cores = (os.cpu_count() or 1) if mt.group(1) == "*" else int(mt.group(1))
    failures = int(mt.group(2)) if mt.group(2) else None
    if cores < 1 or (failures is not None and failures < 1):
        raise ConfigError(f"invalid master URL {master!r}: local[N] and local[N,F] need N and F of at least 1")
    return cores, failures


def validate_master(master: str, source: str | None = None) -> None:
    """Refuse a master URL sparkctl cannot run with (the grammar is :func:`sparkctl.conf.master_url_ok`);
    with *source*, the message names where the URL came from, as every bad setting's does."""
    if master_url_ok(master):
        return
    if source is not None:
        raise invalid("spark.master", master, source, MasterURL.expected)
    raise ConfigError(f"invalid master URL {master!r}: use {MASTER_URL_FORMS}", key="spark.master", value=master)


class _ActiveSparkContext:
    """``SparkContext._active_spark_context``: PySpark's name for the running context, read
    by programs and libraries; sparkctl keeps it in ``SparkContext._active``."""

    def __get__(self, obj: object, owner: type) -> "SparkContext | None":
        return owner._active  # type: ignore[attr-defined, no-any-return]


class SparkContext:
    _active: ClassVar["SparkContext | None"] = None
    _active_spark_context = _ActiveSparkContext()
    _lock = threading.RLock()

    def __init__(self, master: str | None = None, appName: str | None = None, sparkHome: str | None = None,
                 pyFiles: list[str] | None = None, environment: dict[str, Any] | None = None, batchSize: int = 0,
                 serializer: Any = None, conf: SparkConf | None = None, gateway: Any = None, jsc: Any = None,
                 profiler_cls: Any = None) -> None:
        if TaskContext.get() is not None and (
                conf is None or str(conf.get("spark.executor.allowSparkContext", "false")).lower() != "true"):
            raise ContextOnlyOnDriverError()
        with SparkContext._lock:
            if SparkContext._active is not None:
                act = SparkContext._active
                raise ValueError(f"Cannot run multiple SparkContexts at once; existing "
                                 f"SparkContext(app={act.appName}, master={act.master}) is still running")
            SparkContext._active = self
        self._profiler_cls = profiler_cls
        try:
            self._setup(master, appName, pyFiles, conf)
        except BaseException:
            with SparkContext._lock:
                SparkContext._active = None
            self._teardown()
            raise

    def _setup(self, master: str | None, appName: str | None, pyFiles: list[str] | None,
               conf: SparkConf | None) -> None:
        self._conf = conf.copy() if conf is not None else SparkConf()
        if master:
            self._conf._put("spark.master", master, "SparkContext(master=...)")
        if appName:
            self._conf._put("spark.app.name", appName, "SparkContext(appName=...)")
        self.master: str = self._conf.get("spark.master") or "local[*]"
        self.appName: str = self._conf.get("spark.app.name") or "sparkctl-app"
        self._conf.validate()  # every setting now, in one line naming its source, not mid-job
        self._stopped = False
        self._runtime: DriverRuntime | None = None
        self._backend: SchedulerBackend | None = None
        self._rdd_ids = itertools.count()
        self._shuffle_ids = itertools.count()
        self._broadcast_ids = itertools.count()
        self._accum_ids = itertools.count()
        self._broadcast_data: dict[int, bytes] = {}
        self._accumulators: dict[int, Accumulator[Any]] = {}
        self._persistent_rdds: dict[int, RDD] = {}
        self._checkpoint_dir: str | None = self._conf.get("spark.checkpoint.dir")
        self._local = threading.local()
        self._job_lock = threading.Lock()
        self.startTime = int(time.time() * 1000)
        self._app_id = f"app-{time.strftime('%Y%m%d%H%M%S')}-{os.getpid():05d}"
        self.pythonExec = sys.executable
        self.pythonVer = "%d.%d" % sys.version_info[:2]
        level = (self._conf.get("spark.log.level") or "WARN").upper()
        configure_logging(level)
        self._py_files = [p for p in (self._conf.get("spark.submit.pyFiles") or "").split(",") if p]
        self._py_files += list(pyFiles or [])
        extra_paths = self._executor_paths()

        # the cluster's secret (executors on workers hold it too); a private one for local mode
        secret = load_secret(conf_dir()) or secrets.token_hex(32).encode()
        max_failures = self._conf.get_int("spark.task.maxFailures", 4)
        local = parse_local_master(self.master)
        if local is not None and local[1] is not None:
            max_failures = local[1]
        self._runtime = DriverRuntime(
            self._conf.get("spark.driver.host") or "127.0.0.1", self._conf.get_int("spark.driver.port", 0), secret,
            max_failures=max_failures,
            max_result_size=self._conf.get_size("spark.driver.maxResultSize"),
            broadcast_source=self._broadcast_data.__getitem__,
            apply_accumulators=self._apply_accumulators,
            max_frame=self._conf.get_size("spark.rpc.message.maxSize", "m"),
            network_timeout=self._conf.get_duration("spark.network.timeout") or 120.0,
            map_output_broadcast_size=self._conf.get_size("spark.shuffle.mapOutput.minSizeForBroadcast"),
            push=PushConfig(self._conf.get_bool("spark.shuffle.push.enabled", True),
                            self._conf.get_size("spark.shuffle.push.maxBlockSizeToPush"),
                            self._conf.get_size("spark.shuffle.push.maxBlockBatchSize"),
                            self._conf.get_int("spark.shuffle.push.mergersMinStaticThreshold", 5),
                            self._conf.get_float("spark.shuffle.push.mergersMinThresholdRatio", 0.05)),
        )
        self._runtime.app_id = self._app_id
        self._apply_task_resources(local)
        # the SparkFiles root on the driver, on its import path as PySpark's (addPyFile's .py files land there)
        self._files = AddedFiles(self._app_id, self._conf.get_dir("spark.local.dir"), self._conf)
        use_as_root(self._files.root, on_worker=False)
        sys.path.insert(1, self._files.root)
        add_configured(self, self._py_files)
        host, port = self._runtime.start()
        if self._conf.get_bool("spark.speculation", False):
            self._runtime.enable_speculation(self._conf.get_duration("spark.speculation.interval") or 0.1,
                                             self._conf.get_float("spark.speculation.quantile", 0.75),
                                             self._conf.get_float("spark.speculation.multiplier", 1.5))
        log.info("Driver for %s listening on %s:%d", self.appName, host, port)
        # the live UI and the event log hear every executor, so they start before the backend
        self._ui = start_app_ui(self._conf, self._runtime, self.appName, self._app_id, self.startTime)
        if local is not None:
            self._backend = LocalBackend(local[0], self._conf, self._app_id, extra_paths)
        else:
            from sparkctl.deploy.client import make_cluster_backend  # standalone and local-cluster
            self._backend = make_cluster_backend(self.master, self._conf, self.appName, self._app_id, extra_paths)
        self._backend.ui_url = self.uiWebUrl or ""  # the master links the application to it
        self._backend.start(self._runtime, secret)
        # as in Spark, a standalone application is known by the id its master gave it
        self._app_id = self._backend.registered_app_id() or self._app_id
        self._runtime.app_id = self._app_id
        self._ui.application_started(self.appName, self._app_id, self.startTime, self.sparkUser())
        self._backend.wait_ready(self._runtime, self._conf.get_duration("spark.executor.registrationTimeout") or 60.0)
        # barrier stages: the slots the cluster started with bound them (a lost executor's come back)
        self._runtime.tasks.expected_cores = self._runtime.total_cores()
        self._runtime.barrier_sync_timeout = self._conf.get_duration("spark.barrier.sync.timeout")
        self._runtime.dag.max_stage_attempts = self._conf.get_int("spark.stage.maxConsecutiveAttempts", 4)
        self._progress = None
        if self._conf.get_bool("spark.ui.showConsoleProgress", True) and sys.stderr.isatty():
            from sparkctl.ui.progress import ConsoleProgressBar
            self._progress = ConsoleProgressBar(self._runtime)
        atexit.register(self._stop_at_exit)
        # `python app.py`: SIGTERM and SIGHUP stop us as Ctrl-C does, rather than leaving
        # executors and shuffle files behind (only where no handler was installed)
        self._signals_taken = shutdown.install_default_handlers()

    def _executor_paths(self) -> list[str]:
        """The driver's import path, so functions from the app's own modules unpickle on
        executors of this host (remote hosts get --py-files pushed by the driver)."""
        paths = []
        main = sys.modules.get("__main__")
        main_file = getattr(main, "__file__", None)
        if main_file:
            paths.append(os.path.dirname(os.path.abspath(main_file)))
        from sparkctl.fs import is_local
        for f in filter(is_local, self._py_files):  # a URL's file reaches them as addPyFile sends it
            paths.append(os.path.abspath(f) if f.endswith((".zip", ".egg")) else os.path.dirname(os.path.abspath(f)))
        paths += [os.path.abspath(p or ".") for p in sys.path if os.path.isdir(p or ".") and "site-packages" not in p
                  and not p.startswith(sys.base_prefix)]
        return list(dict.fromkeys(paths))

    # ------------------------------------------------------------------ properties
    @property
    def version(self) -> str:
        from sparkctl import __version__
        return __version__

    @property
    def applicationId(self) -> str:
        return self._app_id

    @property
    def defaultParallelism(self) -> int:
        if self._conf.contains("spark.default.parallelism"):
            return self._conf.get_int("spark.default.parallelism")
        if self._backend is not None:
            return max(self._backend.default_parallelism(), 2 if parse_local_master(self.master) is None else 1)
        return 2

    @property
    def defaultMinPartitions(self) -> int:
        return min(self.defaultParallelism, 2)

    @property
    def resources(self) -> dict[str, Any]:
        """Custom resources (GPUs...) of the driver: sparkctl schedules none, so empty, as
        PySpark's is without resource discovery."""
        return {}

    @property
    def uiWebUrl(self) -> str | None:
        """The live UI's address (``spark.ui.enabled``), or None when it is off."""
        ui = getattr(self, "_ui", None)
        return ui.web_url if ui is not None else None

    def sparkUser(self) -> str:
        return getpass.getuser()

    def getConf(self) -> SparkConf:
        return self._conf.copy()

    @classmethod
    def getOrCreate(cls, conf: SparkConf | None = None) -> "SparkContext":
        with cls._lock:
            if cls._active is None:
                return cls(conf=conf or SparkConf())
            return cls._active

    def __enter__(self) -> "SparkContext":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SparkContext master={self.master} appName={self.appName}>"

    # ------------------------------------------------------------------ ids
    def _new_rdd_id(self) -> int:
        return next(self._rdd_ids)

    def _new_shuffle_id(self) -> int:
        return next(self._shuffle_ids)

    # ------------------------------------------------------------------ creating RDDs
    def parallelize(self, c: Iterable[Any], numSlices: int | None = None) -> RDD:
        from sparkctl.rdd.sources import ParallelCollectionRDD
        n = numSlices if numSlices is not None else self.defaultParallelism
        if n < 1:
            raise ValueError(f"numSlices must be positive, got {n}")
        data: Sequence[Any] = c if isinstance(c, (list, tuple, range)) else list(c)
        return ParallelCollectionRDD(self, data, n)

    def range(self, start: int, end: int | None = None, step: int = 1, numSlices: int | None = None) -> RDD:
        if end is None:
            start, end = 0, start
        return self.parallelize(range(start, end, step), numSlices)

    def textFile(self, name: str, minPartitions: int | None = None, use_unicode: bool = True) -> RDD:
        from sparkctl.rdd.sources import TextFileRDD
        return TextFileRDD(self, name, minPartitions or self.defaultMinPartitions, use_unicode)

    def wholeTextFiles(self, path: str, minPartitions: int | None = None, use_unicode: bool = True) -> RDD:
        from sparkctl.rdd.sources import WholeTextFilesRDD
        return WholeTextFilesRDD(self, path, minPartitions or self.defaultMinPartitions, use_unicode)

    def binaryFiles(self, path: str, minPartitions: int | None = None) -> RDD:
        """(``file:`` path, content as bytes) per file of *path* (a file, directory or glob)."""
        from sparkctl.rdd.binary import BinaryFilesRDD
        return BinaryFilesRDD(self, path, minPartitions or self.defaultMinPartitions)

    def binaryRecords(self, path: str, recordLength: int) -> RDD:
        """The records of *recordLength* bytes each that flat binary files hold."""
        from sparkctl.rdd.binary import BinaryRecordsRDD
        return BinaryRecordsRDD(self, path, recordLength, self.defaultMinPartitions)

    def pickleFile(self, name: str, minPartitions: int | None = None) -> RDD:
        from sparkctl.rdd.sources import PickleFileRDD
        return PickleFileRDD(self, name, minPartitions or self.defaultMinPartitions)

    def union(self, rdds: list[RDD]) -> RDD:
        from sparkctl.rdd.narrow import PartitionerAwareUnionRDD, UnionRDD
        if not rdds:
            raise ValueError("union() needs at least one RDD")
        first = rdds[0]
        if first.partitioner is not None and all(
                r.partitioner == first.partitioner and r.getNumPartitions() == first.getNumPartitions() for r in rdds):
            return PartitionerAwareUnionRDD(self, list(rdds))
        return UnionRDD(self, list(rdds))

    def emptyRDD(self) -> RDD:
        from sparkctl.rdd.narrow import EmptyRDD
        return EmptyRDD(self)

    # ------------------------------------------------------------------ shared variables
    def broadcast(self, value: Any) -> Broadcast[Any]:
        return Broadcast(self, value)

    def _register_broadcast(self, b: Broadcast[Any], data: bytes) -> int:
        bid = next(self._broadcast_ids)
        self._broadcast_data[bid] = data
        return bid

    def _unpersist_broadcast(self, bid: int, destroy: bool) -> None:
        if self._runtime is not None:
            self._runtime.broadcast_to_executors(m.RemoveBroadcast(bid))
        if destroy:
            self._broadcast_data.pop(bid, None)

    def accumulator(self, value: Any, accum_param: AccumulatorParam[Any] | None = None) -> Accumulator[Any]:
        param = accum_param if accum_param is not None else default_param(value)
        acc = Accumulator(next(self._accum_ids), value, param)
        self._accumulators[acc.aid] = acc
        return acc

    def _apply_accumulators(self, updates: dict[int, Any]) -> None:
        for aid, value in updates.items():
            acc = self._accumulators.get(aid)
            if acc is not None:
                acc._value = acc.accum_param.addInPlace(acc._value, value)

    # ------------------------------------------------------------------ settings
    def setLogLevel(self, logLevel: str) -> None:
        level = logLevel.upper()
        if level not in ("ALL", "DEBUG", "ERROR", "FATAL", "INFO", "OFF", "TRACE", "WARN"):
            raise ValueError(f"invalid log level {logLevel!r}: use one of ALL, DEBUG, ERROR, FATAL, INFO, OFF, TRACE, WARN")
        configure_logging(level)

    def setCheckpointDir(self, dirName: str) -> None:
        """Checkpoints go to a directory named after the application under *dirName*, a
        local path or a URL (``s3a://bucket/checkpoints``...)."""
        from sparkctl.fs import LOCAL, filesystem_for
        fs = filesystem_for(dirName, self._conf)
        if fs is LOCAL:
            self._checkpoint_dir = private_makedirs(os.path.join(os.path.abspath(fs.strip(dirName)), self._app_id))
        else:
            path = posixpath.join(fs.strip(dirName), self._app_id)
            fs.makedirs(path)
            self._checkpoint_dir = fs.url(path)

    def getCheckpointDir(self) -> str | None:
        return self._checkpoint_dir

    def _properties(self) -> dict[str, str]:
        props = getattr(self._local, "props", None)
        if props is None:
            props = self._local.props = {}
        return props

    def setLocalProperty(self, key: str, value: str | None) -> None:
        if value is None:
            self._properties().pop(key, None)
        else:
            self._properties()[key] = value

    def getLocalProperty(self, key: str) -> str | None:
        return self._properties().get(key)

    def setJobGroup(self, groupId: str, description: str, interruptOnCancel: bool = False) -> None:
        self.setLocalProperty("spark.jobGroup.id", groupId)
        self.setLocalProperty("spark.job.description", description)
        self.setLocalProperty("spark.job.interruptOnCancel", str(interruptOnCancel).lower())

    def setJobDescription(self, value: str) -> None:
        self.setLocalProperty("spark.job.description", value)

    def cancelJobGroup(self, groupId: str) -> None:
        if self._runtime is not None:
            self._runtime.cancel_group(groupId)

    def cancelAllJobs(self) -> None:
        if self._runtime is not None:
            self._runtime.cancel_all()

    # ------------------------------------------------------------------ job tags, status
    def addJobTag(self, tag: str) -> None:
        """Tag every job this thread starts from now on (until removeJobTag/clearJobTags);
        ``cancelJobsWithTag`` and ``statusTracker().getJobIdsForTag`` find them by it. Tags
        belong to the thread, as job groups do (``InheritableThread`` passes them on)."""
        _check_job_tag(tag)
        self.setLocalProperty(JOB_TAGS, JOB_TAGS_SEP.join(sorted(self.getJobTags() | {tag})))

    def removeJobTag(self, tag: str) -> None:
        """Stop tagging this thread's new jobs with ``tag`` (no error if it was not set)."""
        _check_job_tag(tag)
        tags = self.getJobTags() - {tag}
        self.setLocalProperty(JOB_TAGS, JOB_TAGS_SEP.join(sorted(tags)) if tags else None)

    def getJobTags(self) -> set[str]:
        """The tags this thread's new jobs get."""
        return set(job_tags(self._properties()))

    def clearJobTags(self) -> None:
        self.setLocalProperty(JOB_TAGS, None)

    def cancelJobsWithTag(self, tag: str) -> None:
        """Cancel every running job that has ``tag``, whichever thread started it; their
        actions raise JobCancelledError."""
        _check_job_tag(tag)
        if self._runtime is not None:
            self._runtime.cancel_tagged(tag)

    def setInterruptOnCancel(self, interruptOnCancel: bool) -> None:
        """Record whether this thread's jobs' tasks are interrupted when cancelled (the
        ``spark.job.interruptOnCancel`` local property). Python tasks are stopped on
        cancellation either way, as PySpark's Python workers are."""
        self.setLocalProperty("spark.job.interruptOnCancel", str(bool(interruptOnCancel)).lower())

    def statusTracker(self) -> StatusTracker:
        """PySpark's low-level status API over the status the UI shows (see sparkctl.status)."""
        if self._runtime is None:
            raise SparkctlError("Cannot call methods on a stopped SparkContext")
        ui = getattr(self, "_ui", None)
        if ui is not None and ui.status is not None:
            from sparkctl.ui.tracker_source import ListenerStatusSource
            return StatusTracker(ListenerStatusSource(ui.status, ui.bus))
        return StatusTracker(self._runtime.status)

    # ------------------------------------------------------------------ profiles
    def show_profiles(self) -> None:
        """Print the cProfile stats of every profiled RDD not shown yet (spark.python.profile)."""
        self._profiler_collector().show_profiles()

    def dump_profiles(self, path: str) -> None:
        """Write each profiled RDD's stats to ``path/rdd_<id>.pstats`` (spark.python.profile)."""
        self._profiler_collector().dump_profiles(path)

    def _profiler_collector(self) -> Any:
        collector = getattr(self, "profiler_collector", None)
        if collector is None:
            raise ProfilerNotEnabledError(
                "'spark.python.profile' configuration must be set to 'true' to enable Python profile")
        return collector

    def _apply_task_resources(self, local: tuple[int, int | None] | None) -> None:
        """spark.task.cpus (refused when an executor could not hold one task), how much
        history statusTracker() keeps, and the Python profiler."""
        assert self._runtime is not None
        cpus = self._conf.get_int("spark.task.cpus", 1)
        cores, where = _executor_cores(self.master, self._conf, local)
        if cores is not None and cpus > cores:
            raise ConfigError(f"spark.task.cpus={cpus} is more than the {cores} cores of each executor ({where}): "
                              f"no task could run; lower spark.task.cpus or give executors more cores",
                              key="spark.task.cpus", value=str(cpus), source=self._conf.source("spark.task.cpus"))
        self._runtime.tasks.cpus_per_task = cpus
        self._runtime.status.retained_jobs = self._conf.get_int("spark.ui.retainedJobs", 1000)
        self._runtime.status.retained_stages = self._conf.get_int("spark.ui.retainedStages", 1000)
        self.profiler_collector: Any = None
        if self._conf.get_bool("spark.python.profile", False):
            from sparkctl.profiler import BasicProfiler, ProfilerCollector
            self.profiler_collector = ProfilerCollector(self, self._profiler_cls or BasicProfiler,
                                                        self._conf.get("spark.python.profile.dump"))
            self._runtime.profile_accumulator = self.profiler_collector.accumulator_for

    # ------------------------------------------------------------------ files for tasks
    def _added_files(self) -> AddedFiles:
        files = getattr(self, "_files", None)
        if self._stopped or files is None or self._runtime is None:
            raise SparkctlError("Cannot call methods on a stopped SparkContext")
        return files

    def addFile(self, path: str, recursive: bool = False) -> None:
        """Ship a file (a directory with ``recursive=True``) to every executor, running or
        started later, before any task launched after this returns; ``SparkFiles.get(name)``
        finds it in tasks and on the driver. Adding the same path again does nothing."""
        entry = self._added_files().add_file(path, recursive)
        if entry is not None:
            assert self._runtime is not None
            self._runtime.add_file(entry)

    def addArchive(self, path: str) -> None:
        """Ship a .zip, .jar, .tar, .tar.gz or .tgz archive, unpacked into a directory named
        after it (or after ``#alias`` at the end of the path), on every executor and here."""
        entry = self._added_files().add_archive(path)
        if entry is not None:
            assert self._runtime is not None
            self._runtime.add_file(entry)

    def addPyFile(self, path: str) -> None:
        """A .py, .zip or .egg dependency of every later task: shipped as addFile does, put
        on the import path of every executor's task slots (running ones too) and of this driver."""
        files = self._added_files()
        entry = files.add_file(path, python=True)
        if entry is not None:
            assert self._runtime is not None
            self._runtime.add_file(entry)
        driver_import_path(files.root, path)

    @property
    def listFiles(self) -> list[str]:
        """The files added so far (addFile, addPyFile, spark.files), as file: URIs."""
        return list(self._added_files().files)

    @property
    def listArchives(self) -> list[str]:
        """The archives added so far (addArchive, spark.archives), as file: URIs."""
        return list(self._added_files().archives)

    # ------------------------------------------------------------------ jobs
    def runJob(self, rdd: RDD, partitionFunc: Callable[[Iterable[Any]], Iterable[Any]],
               partitions: Sequence[int] | None = None, allowLocal: bool = False) -> list[Any]:
        """PySpark's runJob: run ``partitionFunc`` on the partitions, concatenate the outputs."""
        results = self.run_job(rdd, _ListOf(partitionFunc), list(partitions) if partitions is not None else None)
        return list(itertools.chain.from_iterable(results))

    def run_job(self, rdd: RDD, func: Callable[[Iterator[Any]], Any], partitions: list[int] | None = None) -> list[Any]:
        """Run ``func`` over each partition's iterator; one result per partition, in order."""
        if self._stopped or self._runtime is None:
            raise SparkctlError("Cannot call methods on a stopped SparkContext")
        if partitions is None:
            partitions = list(range(rdd.getNumPartitions()))
        n = rdd.getNumPartitions()
        for p in partitions:
            if not 0 <= p < n:
                raise ValueError(f"partition {p} is out of range for {rdd!r} with {n} partitions")
        results = self._runtime.run_job(rdd, func, partitions, dict(self._properties()))
        self._do_checkpoint(rdd)
        return results

    def _do_checkpoint(self, rdd: RDD) -> None:
        if getattr(self._local, "checkpointing", False):
            return
        todo = [r for r in _lineage(rdd) if r._checkpoint_requested and not r.isCheckpointed()]
        if not todo:
            return
        self._local.checkpointing = True
        try:
            for r in todo:
                if r._checkpoint_requested == "local":
                    r._local_done = True
                    continue
                from sparkctl.fs import LOCAL, filesystem_for
                from sparkctl.rdd.sources import CheckpointRDD
                assert self._checkpoint_dir is not None
                directory = posixpath.join(self._checkpoint_dir, f"rdd-{r._id}")
                fs = filesystem_for(directory, self._conf)
                if fs is LOCAL:
                    private_makedirs(directory)
                self.run_job(r, _WriteCheckpoint(fs, fs.strip(directory)))
                r._checkpoint_rdd = CheckpointRDD(self, directory, r.getNumPartitions(), r.partitioner)
        finally:
            self._local.checkpointing = False

    def _remove_rdd_blocks(self, rdd_id: int) -> None:
        if self._runtime is not None:
            self._runtime.broadcast_to_executors(m.RemoveRdd(rdd_id))
            with self._runtime.lock:
                for key in [k for k in self._runtime.dag.cache_locs if k[0] == rdd_id]:
                    del self._runtime.dag.cache_locs[key]
                self._runtime.events.rdd_unpersisted(rdd_id)  # off the storage page, as in Spark

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        with SparkContext._lock:
            if self._stopped:
                return
            self._stopped = True
            if SparkContext._active is self:
                SparkContext._active = None
        with shutdown.deferred():  # a signal now would leave executors running: it waits until they are gone
            self._teardown()
            log.info("SparkContext stopped")
        shutdown.restore_default_handlers(getattr(self, "_signals_taken", []))

    def _teardown(self) -> None:
        progress = getattr(self, "_progress", None)
        if progress is not None:
            progress.stop()
        runtime = getattr(self, "_runtime", None)
        if runtime is not None:
            runtime.stop()
        backend = getattr(self, "_backend", None)
        if backend is not None:
            backend.stop()
        ui = getattr(self, "_ui", None)
        if ui is not None:  # after the executors are gone, so the log records their removal
            ui.stop()
        files = getattr(self, "_files", None)
        if files is not None:
            files.close()
            # the root and the packages addPyFile put on the import path went with it
            sys.path[:] = [p for p in sys.path if p != files.root and not p.startswith(files.root + os.sep)]
            if SparkFiles._root_directory == files.root:
                use_as_root(None, on_worker=False)

    def _stop_at_exit(self) -> None:
        try:
            self.stop()
        except (KeyboardInterrupt, SystemExit):
            pass  # a signal during the stop: the process is exiting anyway
        except Exception:
            traceback.print_exc()


class _ListOf:
    def __init__(self, f: Callable[[Iterable[Any]], Iterable[Any]]) -> None:
        self.f = f

    def __call__(self, it: Iterable[Any]) -> list[Any]:
        return list(self.f(it))


class _WriteCheckpoint:
    """Writes one partition of a checkpoint: renamed into place locally; on an object store
    written at its name (it appears whole, and a second attempt writes the same records)."""

    def __init__(self, fs: Any, directory: str) -> None:
        self.fs = fs
        self.directory = directory

    def __call__(self, it: Iterable[Any]) -> None:
        from sparkctl.fs import LOCAL
        from sparkctl.taskcontext import TaskContext
        tc = TaskContext.get()
        assert tc is not None
        path = posixpath.join(self.directory, f"part-{tc.partitionId():05d}")
        if self.fs is not LOCAL:
            with self.fs.open(path, "wb") as out:
                serializers.write_batches(out, it)
            return
        tmp = f"{path}.tmp-{tc.taskAttemptId()}"
        with open(tmp, "wb") as f:
            serializers.write_batches(f, it)
        os.replace(tmp, path)


def _check_job_tag(tag: str) -> None:
    if not isinstance(tag, str):
        raise TypeError(f"a job tag must be a str, got {type(tag).__name__}")
    if not tag:
        raise ValueError("a job tag cannot be an empty string")
    if JOB_TAGS_SEP in tag:
        raise ValueError(f"a job tag cannot contain {JOB_TAGS_SEP!r}: {tag!r}")


def _executor_cores(master: str, conf: SparkConf, local: tuple[int, int | None] | None) -> tuple[int | None, str]:
    """The cores of each executor when known before they register, and where that comes from."""
    if local is not None:
        return local[0], master
    if conf.get("spark.executor.cores"):
        return conf.get_int("spark.executor.cores"), "spark.executor.cores"
    import re
    mt = re.match(r"^local-cluster\[\s*\d+\s*,\s*(\d+)\s*,", master)
    if mt:
        return int(mt.group(1)), master
    return None, ""


def _lineage(rdd: RDD) -> list[RDD]:
    seen: dict[int, RDD] = {}
    stack = [rdd]
    while stack:
        r = stack.pop()
        if r._id in seen:
            continue
        seen[r._id] = r
        stack.extend(d.rdd for d in r.dependencies)
    return list(seen.values())


_LEVELS = {"ALL": logging.DEBUG, "TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO,
           "WARN": logging.WARNING, "WARNING": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL,
           "OFF": logging.CRITICAL + 10}


def configure_logging(level: str) -> None:
    logger = logging.getLogger("sparkctl")
    logger.setLevel(_LEVELS.get(level, logging.WARNING))
    # an application that configured logging itself gets our records through its handlers
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%y/%m/%d %H:%M:%S"))
        logger.addHandler(handler)
