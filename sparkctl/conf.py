"""SparkConf and the settings table.

Every setting sparkctl knows lives in ``DEFAULTS`` with its default and one line on what it
does; ``conf/sparkctl-defaults.conf`` is the commented template of the same table. A
setting's value is resolved, highest first: explicit ``SparkConf.set`` / command-line flag,
``--conf``, environment (``SPARKCTL_MASTER``), ``$SPARKCTL_CONF_DIR/sparkctl-defaults.conf``,
then the default here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable

from sparkctl.errors import ConfigError

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass(frozen=True)
class Setting:
    key: str
    default: str | None
    doc: str


_SETTINGS = [
    Setting("spark.master", "local[*]", "master URL: local, local[N], local[*], local-cluster[W,C,M] or spark://host:port"),
    Setting("spark.app.name", "sparkctl-app", "application name shown by the master and in logs"),
    Setting("spark.default.parallelism", None, "partitions of shuffles and parallelize when not given (default: total executor cores)"),
    Setting("spark.task.maxFailures", "4", "attempts of one task before its job fails"),
    Setting("spark.executor.memory", "1g", "memory of one executor; its task slots share it for shuffle aggregation, sorts and cache"),
    Setting("spark.executor.cores", None, "task slots (processes) per executor (standalone: all free cores of the worker)"),
    Setting("spark.cores.max", None, "total cores an application may take from a standalone cluster (default: all)"),
    Setting("spark.memory.fraction", "0.6", "share of executor memory for execution (shuffle, sort) and storage (cache)"),
    Setting("spark.memory.storageFraction", "0.5", "share of that memory kept for cached blocks; the rest bounds shuffle and sort buffers"),
    Setting("spark.shuffle.spill.batchSize", "1000", "records pickled together in one batch of a shuffle or spill file"),
    Setting("spark.local.dir", None, "directory for shuffle files, spills and disk-cached blocks (default: the system temp dir)"),
    Setting("spark.driver.host", "127.0.0.1", "address the driver listens on for its executors"),
    Setting("spark.driver.port", "0", "port the driver listens on for its executors (0: any free port)"),
    Setting("spark.driver.maxResultSize", "1g", "limit of the total serialized results of one action (0: unlimited)"),
    Setting("spark.executor.registrationTimeout", "60s", "how long a new SparkContext waits for its executors before failing"),
    Setting("spark.executor.heartbeatInterval", "10s", "interval between executor heartbeats to the driver"),
    Setting("spark.network.timeout", "120s", "an executor silent for this long is lost; also the default RPC timeout"),
    Setting("spark.rpc.message.maxSize", "512m", "largest frame a process accepts on any connection"),
    Setting("spark.ui.showConsoleProgress", "true", "draw a stage progress bar on stderr when it is a terminal"),
    Setting("spark.logConf", "false", "log the effective configuration when a SparkContext starts"),
    Setting("spark.log.level", "WARN", "driver log level (DEBUG, INFO, WARN, ERROR)"),
    Setting("spark.checkpoint.dir", None, "directory for RDD.checkpoint() (SparkContext.setCheckpointDir)"),
    Setting("spark.hadoop.validateOutputSpecs", "true", "refuse to write into an existing output directory"),
    Setting("spark.ssl.enabled", "false", "wrap every rpc connection in TLS; every process of a cluster must agree (env SPARKCTL_SSL_ENABLED)"),
    Setting("spark.ssl.certFile", None, "this process's certificate chain, PEM, relative to the conf dir; needed to listen (env SPARKCTL_SSL_CERT_FILE)"),
    Setting("spark.ssl.keyFile", None, "private key of spark.ssl.certFile, PEM, unencrypted (env SPARKCTL_SSL_KEY_FILE)"),
    Setting("spark.ssl.caFile", None, "CA of the cluster's certificates: both sides present and verify certificates (mutual TLS) (env SPARKCTL_SSL_CA_FILE)"),
    Setting("spark.speculation", "false", "relaunch slow tasks; the first attempt to finish wins"),
    Setting("spark.speculation.interval", "100ms", "how often to look for tasks to speculate"),
    Setting("spark.speculation.multiplier", "1.5", "a task this many times slower than the median is a straggler"),
    Setting("spark.speculation.quantile", "0.75", "share of tasks that must finish before speculation starts"),
    Setting("spark.submit.pyFiles", "", "comma-separated .py/.zip files put on the executors' path"),
    Setting("spark.deploy.spreadOut", "true", "standalone: spread an application's executors over as many workers as possible"),
    Setting("spark.deploy.recoveryMode", "NONE", "standalone: FILESYSTEM makes the master persist its state and recover it at restart"),
    Setting("spark.deploy.recoveryDirectory", None, "standalone: where the master keeps its state in FILESYSTEM recovery mode"),
    Setting("spark.submit.deployMode", "client", "client: the driver runs where submit runs; cluster: on a worker, placed by the master"),
    Setting("spark.driver.cores", "1", "cluster deploy mode: cores the driver takes from its worker"),
    Setting("spark.driver.memory", "1g", "cluster deploy mode: memory the driver takes from its worker"),
    Setting("spark.deploy.maxExecutorRetries", "10", "standalone: executor failures in a row before the master fails the application"),
    Setting("spark.worker.timeout", "60", "standalone: seconds without heartbeat before the master marks a worker DEAD"),
    Setting("spark.ui.killEnabled", "false", "standalone: kill buttons on the master's web UI (POST with a token derived from the secret)"),
    Setting("spark.master.ui.port", "8080", "standalone: port of the master's web UI"),
    Setting("spark.master.port", "7077", "standalone: port of the master"),
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
"""


def render_template() -> str:
    """The text of conf/sparkctl-defaults.conf (a test keeps the file equal to it)."""
    out = [_TEMPLATE_HEADER]
    for s in _SETTINGS:
        out.append(f"# {s.doc}")
        out.append(f"# {s.key} {s.default}" if s.default is not None else f"# {s.key}")
        out.append("")
    return "\n".join(out)


def conf_dir() -> str:
    """``$SPARKCTL_CONF_DIR``, else the project's ``conf/``."""
    return os.environ.get("SPARKCTL_CONF_DIR") or os.path.join(PROJECT_ROOT, "conf")


def read_conf_file(path: str) -> dict[str, str]:
    """Parse a spark-defaults style file: ``key value`` (or ``key=value``) per line, ``#`` comments."""
    values: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        return values
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\s*=\s*|\s+)(.*)$", line)
        if not m or not m.group(2).strip():
            raise ConfigError(f"{path}:{lineno}: expected 'key value', got {line!r}")
        values[m.group(1)] = m.group(2).strip()
    return values


def load_defaults_file() -> dict[str, str]:
    return read_conf_file(os.path.join(conf_dir(), "sparkctl-defaults.conf"))


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
               "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}


def parse_size(value: str | int, default_unit: str = "b", name: str = "size") -> int:
    """Bytes in a size like ``512m``, ``4g``, ``1024`` (as Spark's byte strings)."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = (m.group(2).lower() if m else "") or default_unit
    if not m or unit not in _SIZE_UNITS:
        raise ConfigError(f"invalid {name} {value!r}: use a number with an optional unit k, m, g or t (e.g. 512m, 4g)")
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


_TIME_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(value: str | float, default_unit: str = "s", name: str = "duration") -> float:
    """Seconds in a duration like ``100ms``, ``10s``, ``2min``."""
    if isinstance(value, (int, float)):
        return float(value)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    unit = (m.group(2).lower() if m else "") or default_unit
    if not m or unit not in _TIME_UNITS:
        raise ConfigError(f"invalid {name} {value!r}: use a number with a unit ms, s, min or h (e.g. 10s)")
    return float(m.group(1)) * _TIME_UNITS[unit]


class SparkConf:
    """Key-value settings of an application, as PySpark's ``SparkConf``."""

    def __init__(self, loadDefaults: bool = True, _jvm: object = None, _jconf: object = None) -> None:
        self._conf: dict[str, str] = {}
        if loadDefaults:
            self._conf.update(load_defaults_file())
            submitted = os.environ.get("SPARKCTL_SUBMIT_CONF")
            if submitted:
                # set by `sparkctl submit` for the driver it starts: key\x1fvalue\x1e...
                for item in submitted.split("\x1e"):
                    if item:
                        k, _, v = item.partition("\x1f")
                        self._conf[k] = v

    def set(self, key: str, value: object) -> "SparkConf":
        self._conf[key] = str(value)
        return self

    def setIfMissing(self, key: str, value: object) -> "SparkConf":
        if key not in self._conf:
            self._conf[key] = str(value)
        return self

    def setMaster(self, value: str) -> "SparkConf":
        return self.set("spark.master", value)

    def setAppName(self, value: str) -> "SparkConf":
        return self.set("spark.app.name", value)

    def setSparkHome(self, value: str) -> "SparkConf":
        return self.set("spark.home", value)

    def setExecutorEnv(self, key: str | None = None, value: str | None = None,
                       pairs: Iterable[tuple[str, str]] | None = None) -> "SparkConf":
        if key is not None:
            self.set(f"spark.executorEnv.{key}", value)
        for k, v in pairs or ():
            self.set(f"spark.executorEnv.{k}", v)
        return self

    def setAll(self, pairs: Iterable[tuple[str, object]]) -> "SparkConf":
        for k, v in pairs:
            self.set(k, v)
        return self

    def get(self, key: str, defaultValue: str | None = None) -> str | None:
        if key in self._conf:
            return self._conf[key]
        if defaultValue is not None:
            return defaultValue
        setting = DEFAULTS.get(key)
        return setting.default if setting else None

    def getAll(self) -> list[tuple[str, str]]:
        return sorted(self._conf.items())

    def contains(self, key: str) -> bool:
        return key in self._conf

    def toDebugString(self) -> str:
        return "\n".join(f"{k}={v}" for k, v in self.getAll())

    # typed accessors used inside sparkctl
    def get_int(self, key: str, default: int | None = None) -> int:
        raw = self.get(key)
        if raw is None:
            if default is None:
                raise ConfigError(f"setting {key} is required")
            return default
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"setting {key}={raw!r} is not an integer") from None

    def get_float(self, key: str, default: float = 0.0) -> float:
        raw = self.get(key)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"setting {key}={raw!r} is not a number") from None

    def get_bool(self, key: str, default: bool = False) -> bool:
        raw = self.get(key)
        if raw is None:
            return default
        if raw.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if raw.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"setting {key}={raw!r} is not true or false")

    def get_size(self, key: str, default_unit: str = "b") -> int:
        raw = self.get(key)
        if raw is None:
            return 0
        return parse_size(raw, default_unit, name=key)

    def get_duration(self, key: str, default_unit: str = "s") -> float:
        raw = self.get(key)
        if raw is None:
            return 0.0
        return parse_duration(raw, default_unit, name=key)

    def copy(self) -> "SparkConf":
        c = SparkConf(loadDefaults=False)
        c._conf = dict(self._conf)
        return c

    def __repr__(self) -> str:
        return f"SparkConf({self._conf!r})"
