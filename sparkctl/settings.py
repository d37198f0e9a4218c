"""The settings table: every setting sparkctl knows, its type, default and one line on
what it does.

``conf/sparkctl-defaults.conf`` is the commented template of this table
(:func:`render_template`; a test keeps the two equal). Each setting's type
(:class:`Int`, :class:`Size`, :class:`Duration`, :class:`Bool`...) checks a value's text
and says, in the words that complete "KEY must be ...", what it expects; where values come
from and how they are checked as they are read is :mod:`sparkctl.conf`'s business.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sparkctl.errors import ConfigError


# ---------------------------------------------------------------- value types
# Each type checks a setting's text where it is read and says, in the words that complete
# "KEY must be ...", what it expects, so every bad value gives the same kind of line.

_NUMBER = r"(\d+(?:\.\d+)?|\.\d+)"


class ValueType:
    """How one setting's text is checked and converted."""

    #: completes "KEY must be ...": what a valid value looks like
    expected = "text"

    def parse(self, text: str) -> Any:
        """The typed value of *text*; ``ValueError`` if it is not one."""
        return text


class Text(ValueType):
    """Free text (a name, a host, a list of files)."""


class PathValue(ValueType):
    """A file or directory path; a directory is created where it is used (:meth:`SparkConf.get_dir`)."""

    expected = "a path"


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" above {low:g} and at most {high:g}" if low_open else f" from {low:g} to {high:g}"
    if low is not None:
        return f" above {low:g}" if low_open else f" of at least {low:g}"
    if high is not None:
        return f" of at most {high:g}"
    return ""


def _check_bounds(value: float, low: float | None, high: float | None, low_open: bool = False) -> None:
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(value)
    if high is not None and value > high:
        raise ValueError(value)


@dataclass(frozen=True)
class Int(ValueType):
    low: int | None = None
    high: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a whole number" + _bounds(self.low, self.high)

    def parse(self, text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
            raise ValueError(text)
        value = int(text)
        _check_bounds(value, self.low, self.high)
        return value


@dataclass(frozen=True)
class Float(ValueType):
    low: float | None = None
    high: float | None = None
    low_open: bool = False

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "a number" + _bounds(self.low, self.high, self.low_open)

    def parse(self, text: str) -> float:
        if not re.fullmatch(r"\s*[+-]?" + _NUMBER + r"\s*", text):
            raise ValueError(text)  # also refuses nan and inf, which float() would take
        value = float(text)
        _check_bounds(value, self.low, self.high, self.low_open)
        return value


class Bool(ValueType):
    expected = "true or false"

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off"):
            return False
        raise ValueError(text)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}
_UNIT_WORDS = {"b": "bytes", "k": "KiB", "m": "MiB", "g": "GiB", "t": "TiB", "ms": "milliseconds", "s": "seconds"}


def _size_bytes(text: str, default_unit: str) -> int | None:
    m = re.fullmatch(r"\s*" + _NUMBER + r"\s*([a-zA-Z]*)\s*", text)
    unit = (m.group(2).lower() if m else "") or default_unit
    if not m or unit not in _SIZE_UNITS:
        return None
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


@dataclass(frozen=True)
class Size(ValueType):
    """Bytes, written as Spark's byte strings: ``512m``, ``4g``, ``1024`` (in *unit* when bare)."""

    unit: str = "b"
    low: int = 0

    @property
    def expected(self) -> str:  # type: ignore[override]
        least = f" of at least {_format_size(self.low)}" if self.low else ""
        return (f"a size{least} such as 512m or 4g (a number and a unit b, k, m, g or t; "
                f"a bare number is in {_UNIT_WORDS[self.unit]})")

    def parse(self, text: str) -> int:
        value = _size_bytes(text, self.unit)
        if value is None or value < self.low:
            raise ValueError(text)
        return value


def _format_size(n: int) -> str:
    for unit, factor in (("t", 1 << 40), ("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}b"


_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def _seconds(text: str, default_unit: str) -> float | None:
    m = re.fullmatch(r"\s*" + _NUMBER + r"\s*([a-zA-Z]*)\s*", text)
    unit = (m.group(2).lower() if m else "") or default_unit
    if not m or unit not in _TIME_UNITS:
        return None
    return float(m.group(1)) * _TIME_UNITS[unit]


@dataclass(frozen=True)
class Duration(ValueType):
    """Seconds, written ``100ms``, ``10s``, ``2min``, ``1h`` (in *unit* when bare)."""

    unit: str = "s"
    positive: bool = True

    @property
    def expected(self) -> str:  # type: ignore[override]
        kind = "a duration above 0" if self.positive else "a duration"
        return f"{kind} such as 100ms, 10s, 2min or 1h (a bare number is in {_UNIT_WORDS[self.unit]})"

    def parse(self, text: str) -> float:
        value = _seconds(text, self.unit)
        if value is None or (self.positive and value <= 0):
            raise ValueError(text)
        return value


@dataclass(frozen=True)
class Choice(ValueType):
    """One of a few words, in any case; the value returned is spelt as in *options*."""

    options: tuple[str, ...] = ()

    @property
    def expected(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.options)

    def parse(self, text: str) -> str:
        for option in self.options:
            if text.strip().lower() == option.lower():
                return option
        raise ValueError(text)


# Master URLs. sparkctl.context parses the local ones; the grammar lives here so that a
# settings file is checked without starting anything.
LOCAL_N = re.compile(r"^local\[(\*|\d+)(?:\s*,\s*(\d+))?\]$")
LOCAL_CLUSTER = re.compile(r"^local-cluster\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]$")
_STANDALONE = re.compile(r"^spark://[^\s/:,]+:(\d+)(,[^\s/:,]+:(\d+))*$")
MASTER_URL_FORMS = ("local, local[N], local[N,F], local[*], local-cluster[W,C,M] (each number at least 1) "
                    "or spark://host:port")


def master_url_ok(url: str) -> bool:
    """Whether *url* is a master URL sparkctl can run with."""
    if url == "local":
        return True
    m = LOCAL_N.match(url)
    if m:
        return all(int(g) >= 1 for g in m.groups() if g is not None and g != "*")
    m = LOCAL_CLUSTER.match(url)
    if m:
        return all(int(g) >= 1 for g in m.groups())
    if _STANDALONE.match(url):
        return all(0 < int(port) < 65536 for port in re.findall(r":(\d+)", url))
    return False


class MasterURL(ValueType):
    expected = "a master URL: " + MASTER_URL_FORMS

    def parse(self, text: str) -> str:
        if not master_url_ok(text):
            raise ValueError(text)
        return text


#: spark.io.compression.codec: the codecs sparkctl has, and the extra that installs each one's library
IO_CODEC_EXTRAS = {"lz4": "lz4", "zstd": "zstd"}
_IO_CODEC_NAMES = {"lz4": "lz4", "org.apache.spark.io.lz4compressioncodec": "lz4",
                   "zstd": "zstd", "org.apache.spark.io.zstdcompressioncodec": "zstd"}


class IoCodec(ValueType):
    """Spark's shuffle and spill codec: a short name or Spark's class name; returns the short name."""

    expected = ("lz4 or zstd (or Spark's class names org.apache.spark.io.LZ4CompressionCodec and "
                "ZStdCompressionCodec; Spark's lzf and snappy are not supported)")

    def parse(self, text: str) -> str:
        name = _IO_CODEC_NAMES.get(text.strip().lower())
        if name is None:
            raise ValueError(text)
        return name


TEXT = Text()
PATH = PathValue()
BOOL = Bool()
PORT = Int(0, 65535)
POSITIVE = Int(1)
FRACTION = Float(0.0, 1.0)


@dataclass(frozen=True)
class Setting:
    key: str
    default: str | None
    doc: str
    type: ValueType = TEXT


_SETTINGS = [
    Setting("spark.master", "local[*]", "master URL: local, local[N], local[*], local-cluster[W,C,M] or spark://host:port", MasterURL()),
    Setting("spark.app.name", "sparkctl-app", "application name shown by the master and in logs"),
    Setting("spark.default.parallelism", None, "partitions of shuffles and parallelize when not given (default: total executor cores)", POSITIVE),
    Setting("spark.task.maxFailures", "4", "attempts of one task before its job fails", POSITIVE),
    Setting("spark.executor.memory", "1g", "memory of one executor; its task slots share it for shuffle aggregation, sorts and cache", Size("m", 1 << 20)),
    Setting("spark.executor.memoryOverhead", None, "memory an executor with its task slots may use beyond spark.executor.memory (interpreters, buffers; default: max(384m, 0.1 x spark.executor.memory))", Size("m")),
    Setting("spark.executor.cores", None, "task slots per executor, each a process forked by it (one slot: the executor itself, see spark.executor.inProcessSlot) (standalone: all free cores of the worker)", POSITIVE),
    Setting("spark.task.cpus", "1", "cores each task takes: an executor runs cores / spark.task.cpus tasks at once (TaskContext.cpus())", POSITIVE),
    Setting("spark.executor.pyspark.memory", None, "address-space limit of each executor's task slots together (RLIMIT_AS, split evenly over its slots, on top of what a slot holds when it starts); a task past it fails with MemoryError (default: no limit)", Size("m", 1 << 20)),
    Setting("spark.executor.inProcessSlot", "true", "an executor with one task slot runs its tasks in its own main thread instead of a forked slot process: one process per one-core worker, and a new application's first tasks cost less (never with spark.executor.pyspark.memory, which limits slot processes)", BOOL),
    Setting("spark.cores.max", None, "total cores an application may take from a standalone cluster (default: all)", POSITIVE),
    Setting("spark.memory.fraction", "0.6", "share of executor memory for execution (shuffle, sort) and storage (cache)", Float(0.0, 1.0, low_open=True)),
    Setting("spark.memory.storageFraction", "0.5", "share of that memory kept for cached blocks; the rest bounds shuffle and sort buffers", FRACTION),
    Setting("spark.reducer.maxSizeInFlight", "48m", "bytes of remote shuffle data a reduce task asks for at once, over all the executors it reads from", Size("m", 1 << 20)),
    Setting("spark.shuffle.spill.batchSize", "1000", "records pickled together in one batch of a shuffle or spill file", POSITIVE),
    Setting("spark.shuffle.compress", "true", "compress shuffle files (each pickled batch) with spark.io.compression.codec; reducers fetch the compressed bytes", BOOL),
    Setting("spark.shuffle.spill.compress", "true", "compress the runs aggregations and sorts spill to disk with spark.io.compression.codec", BOOL),
    Setting("spark.shuffle.push.enabled", "true", "push-based shuffle: map tasks push their small slices to a few merger executors and each reducer reads them from one, instead of from every executor (used for a shuffle only when enough hosts are there, see spark.shuffle.push.mergersMinStaticThreshold)", BOOL),
    Setting("spark.shuffle.push.maxBlockSizeToPush", "1m", "slices of a map output larger than this are not pushed: reducers read them from the map output (with more hosts than mergers, the limit is scaled by mergers / hosts)", Size("b")),
    Setting("spark.shuffle.push.maxBlockBatchSize", "3m", "the most bytes of slices one push to a merger carries", Size("b")),
    Setting("spark.shuffle.push.mergersMinStaticThreshold", "5", "the fewest hosts a shuffle takes push-based shuffle with (its mergers, one per host)", POSITIVE),
    Setting("spark.shuffle.push.mergersMinThresholdRatio", "0.05", "push-based shuffle also needs at least this share of one merger per reducer slot; sparkctl takes the fewest mergers this and the static threshold allow", Float(0.0, 1.0, low_open=True)),
    Setting("spark.shuffle.mapOutput.minSizeForBroadcast", "512k", "a shuffle's map output statuses this large or larger, encoded, go to each executor once as a broadcast (kept until they change) rather than inside every answer", Size("b")),
    Setting("spark.io.compression.codec", "lz4", "codec of shuffle and spill files: lz4 (pip install 'sparkctl[lz4]') or zstd (pip install 'sparkctl[zstd]'); left at the default without the lz4 package, files are written uncompressed with a warning, set explicitly without its package the context refuses to start", IoCodec()),
    Setting("spark.io.compression.zstd.level", "1", "zstd compression level of shuffle and spill files (higher: smaller and slower)", Int(1, 22)),
    Setting("spark.io.compression.lz4.blockSize", "32k", "lz4 block size of shuffle and spill files (LZ4 frames take 64k, 256k, 1m or 4m: the smallest that holds it)", Size("k", 1)),
    Setting("spark.local.dir", None, "directory for shuffle files, spills and disk-cached blocks (default: the system temp dir)", PATH),
    Setting("spark.driver.host", "127.0.0.1", "address the driver listens on for its executors"),
    Setting("spark.driver.port", "0", "port the driver listens on for its executors (0: any free port)", PORT),
    Setting("spark.driver.maxResultSize", "1g", "limit of the total serialized results of one action (0: unlimited)", Size("m")),
    Setting("spark.executor.registrationTimeout", "60s", "how long a new SparkContext waits for its executors before failing", Duration()),
    Setting("spark.executor.heartbeatInterval", "10s", "interval between executor heartbeats to the driver", Duration()),
    Setting("spark.network.timeout", "120s", "an executor silent for this long is lost; also the default RPC timeout", Duration()),
    Setting("spark.rpc.message.maxSize", "512m", "largest frame a process accepts on any connection", Size("m", 1 << 20)),
    Setting("spark.ui.showConsoleProgress", "true", "draw a stage progress bar on stderr when it is a terminal", BOOL),
    Setting("spark.ui.retainedJobs", "1000", "finished jobs statusTracker() remembers (the oldest are forgotten first)", POSITIVE),
    Setting("spark.ui.retainedStages", "1000", "finished stages statusTracker() remembers (the oldest are forgotten first)", POSITIVE),
    Setting("spark.ui.retainedTasks", "100000", "tasks the UI keeps per stage attempt (the oldest finished ones are dropped first)", POSITIVE),
    Setting("spark.ui.enabled", "true", "serve the application's live UI and Spark's REST API (/api/v1) while it runs", BOOL),
    Setting("spark.ui.port", "4040", "port of the application's UI; the next free one is taken, up to spark.port.maxRetries further (0: any free port)", PORT),
    Setting("spark.port.maxRetries", "16", "how many ports after a busy one a server tries", Int(0)),
    Setting("spark.redaction.regex", r"(?i)secret|password|token|access[.]?key", "settings whose key or value matches are shown as *********(redacted) in the UI and event logs"),
    Setting("spark.eventLog.enabled", "false", "write the application's events as Spark does (JSON lines) to spark.eventLog.dir, for a history server", BOOL),
    Setting("spark.eventLog.dir", "/tmp/spark-events", "existing directory (or file: URI) event logs are written to: APP_ID.inprogress while running, APP_ID after"),
    Setting("spark.eventLog.overwrite", "false", "replace an existing event log of the same application id", BOOL),
    Setting("spark.eventLog.logBlockUpdates.enabled", "false", "also log each cached block's updates", BOOL),
    Setting("spark.history.fs.logDirectory", "/tmp/spark-events", "history server: directory of the event logs it serves"),
    Setting("spark.history.fs.update.interval", "10s", "history server: how often it looks for new and grown event logs", Duration()),
    Setting("spark.python.profile", "false", "profile every task with cProfile, merged per RDD: SparkContext.show_profiles() and dump_profiles(dir); shown at exit if not before", BOOL),
    Setting("spark.python.profile.dump", None, "with spark.python.profile: write the profiles to this directory at exit (rdd_<id>.pstats) instead of printing them", PATH),
    Setting("spark.logConf", "false", "log the effective configuration when a SparkContext starts", BOOL),
    Setting("spark.log.level", "WARN", "driver log level (DEBUG, INFO, WARN, ERROR)", Choice(("ALL", "TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL", "OFF"))),
    Setting("spark.checkpoint.dir", None, "directory for RDD.checkpoint() (SparkContext.setCheckpointDir)", PATH),
    Setting("spark.hadoop.validateOutputSpecs", "true", "refuse to write into an existing output directory", BOOL),
    Setting("spark.ssl.enabled", "false", "wrap every rpc connection in TLS; every process of a cluster must agree (env SPARKCTL_SSL_ENABLED)", BOOL),
    Setting("spark.ssl.certFile", None, "this process's certificate chain, PEM, relative to the conf dir; needed to listen (env SPARKCTL_SSL_CERT_FILE)", PATH),
    Setting("spark.ssl.keyFile", None, "private key of spark.ssl.certFile, PEM, unencrypted (env SPARKCTL_SSL_KEY_FILE)", PATH),
    Setting("spark.ssl.caFile", None, "CA of the cluster's certificates: both sides present and verify certificates (mutual TLS) (env SPARKCTL_SSL_CA_FILE)", PATH),
    Setting("spark.speculation", "false", "relaunch slow tasks; the first attempt to finish wins", BOOL),
    Setting("spark.speculation.interval", "100ms", "how often to look for tasks to speculate", Duration()),
    Setting("spark.speculation.multiplier", "1.5", "a task this many times slower than the median is a straggler", Float(1.0)),
    Setting("spark.speculation.quantile", "0.75", "share of tasks that must finish before speculation starts", FRACTION),
    Setting("spark.barrier.sync.timeout", "8760h", "barrier stages: how long barrier()/allGather() waits for every task of the stage before the stage attempt fails (8760h: 365 days)", Duration()),
    Setting("spark.stage.maxConsecutiveAttempts", "4", "failed attempts in a row of a barrier stage (one failed task reruns the whole stage) before its job fails", POSITIVE),
    Setting("spark.submit.pyFiles", "", "comma-separated .py/.zip files put on the executors' path"),
    Setting("spark.files", "", "comma-separated files shipped to every executor (SparkContext.addFile; SparkFiles.get in tasks)"),
    Setting("spark.archives", "", "comma-separated .zip/.tar.gz/.tgz/.tar archives unpacked on every executor; path#name names the directory"),
    Setting("spark.deploy.spreadOut", "true", "standalone: spread an application's executors over as many workers as possible", BOOL),
    Setting("spark.deploy.recoveryMode", "NONE", "standalone: FILESYSTEM makes the master persist its state and recover it at restart", Choice(("NONE", "FILESYSTEM"))),
    Setting("spark.deploy.recoveryDirectory", None, "standalone: where the master keeps its state in FILESYSTEM recovery mode", PATH),
    Setting("spark.submit.deployMode", "client", "client: the driver runs where submit runs; cluster: on a worker, placed by the master", Choice(("client", "cluster"))),
    Setting("spark.driver.cores", "1", "cluster deploy mode: cores the driver takes from its worker", POSITIVE),
    Setting("spark.driver.memory", "1g", "cluster deploy mode: memory the driver takes from its worker", Size("m", 1 << 20)),
    Setting("spark.deploy.maxExecutorRetries", "10", "standalone: executor failures in a row before the master fails the application", Int()),
    Setting("spark.worker.timeout", "60", "standalone: seconds without heartbeat before the master marks a worker DEAD", Duration()),
    Setting("spark.worker.cleanup.enabled", "true", "standalone: workers remove what applications that no longer run left in their work dir, once older than the TTL below", BOOL),
    Setting("spark.worker.cleanup.interval", "1800", "standalone: seconds between two passes of a worker over its work dir", Duration()),
    Setting("spark.worker.cleanup.appDataTtl", "604800", "standalone: seconds (604800: 7 days) a finished application's directory is kept after its last change", Duration()),
    Setting("spark.ui.killEnabled", "false", "standalone: kill buttons on the master's web UI (POST with a token derived from the secret)", BOOL),
    Setting("spark.ui.allowedHosts", None, "standalone: comma-separated host names the web UIs answer to besides their own address and localhost (* turns the Host check off)"),
    Setting("spark.master.ui.port", "8080", "standalone: port of the master's web UI", PORT),
    Setting("spark.master.ui.historyServerUrl", None, "standalone: URL of the history server (e.g. http://host:18080) the master's page links completed applications to, at URL/history/APP_ID/jobs/ (default: no link)"),
    Setting("spark.master.port", "7077", "standalone: port of the master", PORT),
]

DEFAULTS: dict[str, Setting] = {s.key: s for s in _SETTINGS}


_TEMPLATE_HEADER = """\
# sparkctl-defaults.conf: settings for every sparkctl command and application.
#
# One setting a line: a key, white space (or '='), a value. Lines starting with # are comments.
# sparkctl reads $SPARKCTL_CONF_DIR/sparkctl-defaults.conf (SPARKCTL_CONF_DIR defaults to this
# directory); a missing file means every default below. Precedence, highest first: a command-line
# flag, --conf KEY=VALUE, the environment (SPARKCTL_MASTER), this file, the default.
# Keys are Spark's own where Spark has the setting. Each is shown commented out at its default.
# Every value is checked against its key's type when a command reads this file: a bad value or
# a line that is not 'key value' stops it with one line naming this file and the line. A key
# sparkctl does not know is kept for the application, with a warning.
"""


def render_template() -> str:
    """The text of conf/sparkctl-defaults.conf (a test keeps the file equal to it)."""
    out = [_TEMPLATE_HEADER]
    for s in _SETTINGS:
        out.append(f"# {s.doc}")
        out.append(f"# {s.key} {s.default}" if s.default is not None else f"# {s.key}")
        out.append("")
    return "\n".join(out)


def parse_size(value: str | int, default_unit: str = "b", name: str = "size") -> int:
    """Bytes in a size like ``512m``, ``4g``, ``1024`` (as Spark's byte strings)."""
    if isinstance(value, int):
        return value
    size = _size_bytes(str(value), default_unit)
    if size is None:
        raise ConfigError(f"invalid {name} {value!r}: use a number with an optional unit k, m, g or t (e.g. 512m, 4g)")
    return size


def parse_duration(value: str | float, default_unit: str = "s", name: str = "duration") -> float:
    """Seconds in a duration like ``100ms``, ``10s``, ``2min``."""
    if isinstance(value, (int, float)):
        return float(value)
    seconds = _seconds(str(value), default_unit)
    if seconds is None:
        raise ConfigError(f"invalid {name} {value!r}: use a number with a unit ms, s, min or h (e.g. 10s)")
    return seconds
