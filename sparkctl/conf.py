"""SparkConf: where each setting's value comes from, and its check as it is read.

Every setting sparkctl knows lives in the table of :mod:`sparkctl.settings` (``DEFAULTS``)
with its type, its default and one line on what it does; ``conf/sparkctl-defaults.conf``
is the commented template of the same table. A setting's value is resolved, highest first: explicit ``SparkConf.set`` / command-line flag,
``--conf``, environment (``SPARKCTL_MASTER``), ``$SPARKCTL_CONF_DIR/sparkctl-defaults.conf``,
then the default here.

Each setting has a type (:class:`Int`, :class:`Size`, :class:`Duration`, :class:`Bool`...)
that checks its value where it is read: a settings file as it is parsed, ``--conf`` as
submit collects it, ``SparkConf.set`` when a SparkContext starts and in every typed
accessor. A bad value is one :class:`ConfigError` line that names the key, the value, where
it came from (``path:line``, ``--conf``, ``SPARKCTL_MASTER``, ``SparkConf.set``) and what
is expected.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any, Iterable

from sparkctl.errors import ConfigError
# The table and its value types live in settings.py; they are imported here too, where
# the rest of sparkctl has always found them.
from sparkctl.settings import (  # noqa: F401
    BOOL, DEFAULTS, LOCAL_CLUSTER, LOCAL_N, MASTER_URL_FORMS, Bool, Choice, Duration, Float, Int, MasterURL, Setting,
    Size, ValueType, master_url_ok, parse_duration, parse_size, render_template,
)

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def conf_dir() -> str:
    """``$SPARKCTL_CONF_DIR``, else the project's ``conf/``."""
    return os.environ.get("SPARKCTL_CONF_DIR") or os.path.join(PROJECT_ROOT, "conf")


# ---------------------------------------------------------------- checking values where they are read
#: Families of keys passed through to the application or its executors as they are.
_PASSTHROUGH_PREFIXES = ("spark.executorEnv.", "spark.hadoop.", "spark.home")
#: Where a value came from when nothing more precise is known.
DEFAULT_SOURCE = "the default"
#: A key looks like a setting when it has at least one dot (spark.x, app.y); a word alone
#: is more likely the start of a sentence than a setting, so such a line is an error.
_KEY = re.compile(r"[A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)+")


def invalid(key: str, value: str, source: str, expected: str) -> ConfigError:
    """The one-line error for a bad value: where it came from, the key, what it must be, the value."""
    return ConfigError(f"{source}: {key} must be {expected}, not {value!r}", key=key, value=value, source=source)


def check_setting(key: str, value: str, source: str) -> Any:
    """The typed value of *key*, or a :class:`ConfigError` naming the key, the value, where
    it came from (*source*: ``file:line``, ``--conf``, ``SparkConf.set``...) and what a valid
    value looks like. Unknown keys are returned as they are, but never with a NUL, which no
    environment variable or command line can carry to another process."""
    if "\x00" in value:
        raise ConfigError(f"{source}: {key} must not contain a NUL character, not {value!r}",
                          key=key, value=value, source=source)
    setting = DEFAULTS.get(key)
    if setting is None:
        return value
    try:
        return setting.type.parse(value)
    except ValueError:
        raise invalid(key, value, source, setting.type.expected) from None


def is_known(key: str) -> bool:
    return key in DEFAULTS or key.startswith(_PASSTHROUGH_PREFIXES)


class ConfValues(dict):  # type: ignore[type-arg]
    """A settings file's ``{key: value}``, plus where each value came from (``path:line``)
    and the keys sparkctl does not know (kept, warned about by :func:`warn_unknown`)."""

    def __init__(self) -> None:
        super().__init__()
        self.sources: dict[str, str] = {}
        self.unknown: list[str] = []

    def add(self, key: str, value: str, source: str) -> None:
        """Check and keep one value."""
        check_setting(key, value, source)
        self[key] = value
        self.sources[key] = source
        if not is_known(key) and key not in self.unknown:
            self.unknown.append(key)


def read_conf_file(path: str) -> ConfValues:
    """Parse a spark-defaults style file: ``key value`` (or ``key=value``) per line, ``#`` comments.

    Every line is checked here, so a mistake is reported with its file and line whatever
    command reads the file: text that is not UTF-8, a line that is not ``key value``, a key
    without a dot that sparkctl does not know, a value of a known key that does not parse."""
    values = ConfValues()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return values
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    offset = 0
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a BOM some editors write
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}:{lineno}: not UTF-8 text: byte 0x{raw[e.start]:02x} at column {e.start + 1} "
                              f"(offset {offset + e.start} in the file)") from None
        offset += len(raw) + 1
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\s*=\s*|\s+)(.*)$", line)
        if not m or not m.group(2).strip():
            raise ConfigError(f"{path}:{lineno}: expected 'key value', got {line!r}")
        key, value = m.group(1), m.group(2).strip()
        if not is_known(key) and not _KEY.fullmatch(key):
            raise ConfigError(f"{path}:{lineno}: {line!r} is not a setting: expected 'key value' where the key "
                              "is a setting such as spark.executor.memory")
        values.add(key, value, f"{path}:{lineno}")
    return values


_warned: set[str] = set()


def warn_unknown(values: ConfValues, stream: Any = None) -> None:
    """One warning line per key sparkctl does not know (Spark does the same): most likely a
    typing mistake, but an application may read its own keys, so the value is kept."""
    for key in values.unknown:
        line = f"sparkctl: warning: {values.sources[key]}: {key} is not a sparkctl setting (kept for the application)"
        if line not in _warned:
            _warned.add(line)
            print(line, file=stream or sys.stderr)


def load_defaults_file() -> ConfValues:
    return read_conf_file(os.path.join(conf_dir(), "sparkctl-defaults.conf"))


def check_defaults_file() -> ConfValues:
    """Read (and so check) the conf dir's settings file and the environment variables that
    override it, and warn about unknown keys: what a command does before it starts a daemon,
    so that a mistake is one line on its terminal rather than a daemon that dies with the
    reason in its log."""
    from sparkctl.rpc.tls import ENV_VARS

    values = load_defaults_file()
    warn_unknown(values)
    for key, var in ENV_VARS.items():
        value = os.environ.get(var, "").strip()  # empty counts as unset
        if value:
            check_setting(key, value, var)
    return values


# The driver started by `sparkctl submit` receives its settings in this variable:
# key US value US source RS ... (ASCII unit and record separators, which no setting holds).
SUBMIT_CONF_VAR = "SPARKCTL_SUBMIT_CONF"


def encode_submitted(settings: dict[str, str], sources: dict[str, str]) -> str:
    return "\x1e".join(f"{k}\x1f{v}\x1f{sources.get(k, 'sparkctl submit')}" for k, v in settings.items())


def decode_submitted(text: str) -> list[tuple[str, str, str]]:
    out = []
    for item in text.split("\x1e"):
        if item:
            key, _, rest = item.partition("\x1f")
            value, _, source = rest.partition("\x1f")
            out.append((key, value, source or "sparkctl submit"))
    return out


class SparkConf:
    """Key-value settings of an application, as PySpark's ``SparkConf``.

    Each value remembers where it came from, so that the typed accessors (``get_int``,
    ``get_size``...) and :meth:`validate` name the file and line, ``--conf`` or
    ``SparkConf.set`` when a value is wrong."""

    def __init__(self, loadDefaults: bool = True, _jvm: object = None, _jconf: object = None) -> None:
        self._conf: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        if loadDefaults:
            values = load_defaults_file()
            self._conf.update(values)
            self._sources.update(values.sources)
            submitted = os.environ.get(SUBMIT_CONF_VAR)
            if submitted:  # set by `sparkctl submit` for the driver it starts
                for key, value, source in decode_submitted(submitted):
                    self._put(key, value, source)

    @classmethod
    def from_values(cls, values: dict[str, str], source: str = "settings") -> "SparkConf":
        """A SparkConf of *values* alone (a settings file's keep their ``path:line``)."""
        conf = cls(loadDefaults=False)
        sources = getattr(values, "sources", {})
        for key, value in values.items():
            conf._put(key, value, sources.get(key, source))
        return conf

    def _put(self, key: str, value: object, source: str) -> "SparkConf":
        self._conf[key] = str(value)
        self._sources[key] = source
        return self

    def set(self, key: str, value: object) -> "SparkConf":
        return self._put(key, value, "SparkConf.set")

    def setIfMissing(self, key: str, value: object) -> "SparkConf":
        if key not in self._conf:
            self._put(key, value, "SparkConf.setIfMissing")
        return self

    def setMaster(self, value: str) -> "SparkConf":
        return self._put("spark.master", value, "SparkConf.setMaster")

    def setAppName(self, value: str) -> "SparkConf":
        return self._put("spark.app.name", value, "SparkConf.setAppName")

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

    def source(self, key: str) -> str:
        """Where the value of *key* came from: ``path:line``, ``--conf``, ``SparkConf.set``..."""
        return self._sources.get(key, "SparkConf" if key in self._conf else DEFAULT_SOURCE)

    def validate(self) -> None:
        """Check every value now (a SparkContext does so as it starts), so that a mistake
        shows at once as one :class:`ConfigError`, not in the middle of a job."""
        for key, value in self._conf.items():
            check_setting(key, value, self.source(key))

    # typed accessors used inside sparkctl: each checks the value against the setting's type
    def _typed(self, key: str, raw: str, fallback: ValueType) -> Any:
        setting = DEFAULTS.get(key)
        kind = setting.type if setting is not None and isinstance(setting.type, type(fallback)) else fallback
        try:
            return kind.parse(raw)
        except ValueError:
            raise invalid(key, raw, self.source(key), kind.expected) from None

    def get_int(self, key: str, default: int | None = None) -> int:
        raw = self.get(key)
        if raw is None:
            if default is None:
                raise ConfigError(f"setting {key} is required", key=key)
            return default
        return self._typed(key, raw, Int())

    def get_float(self, key: str, default: float = 0.0) -> float:
        raw = self.get(key)
        return default if raw is None else self._typed(key, raw, Float())

    def get_bool(self, key: str, default: bool = False) -> bool:
        raw = self.get(key)
        return default if raw is None else self._typed(key, raw, BOOL)

    def get_size(self, key: str, default_unit: str | None = None) -> int:
        """Bytes; a bare number is in the setting's unit (or *default_unit*)."""
        raw = self.get(key)
        if raw is None:
            return 0
        return self._typed(key, raw, Size(default_unit or "b"))

    def get_duration(self, key: str, default_unit: str | None = None) -> float:
        """Seconds; a bare number is in the setting's unit (or *default_unit*)."""
        raw = self.get(key)
        if raw is None:
            return 0.0
        return self._typed(key, raw, Duration(default_unit or "s", positive=False))

    def get_dir(self, key: str) -> str | None:
        """The directory *key* names, created if missing; None when unset. A directory that
        cannot be created is a :class:`ConfigError` with the system's reason."""
        raw = self.get(key)
        if not raw:
            return None
        path = os.path.expanduser(check_setting(key, raw, self.source(key)))
        try:
            from sparkctl.util.fsutil import private_makedirs  # 0700, parents included

            private_makedirs(path)
        except OSError as e:
            raise ConfigError(f"{self.source(key)}: {key}={raw!r}: cannot create the directory: "
                              f"{e.strerror or e}", key=key, value=raw, source=self.source(key)) from None
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{self.source(key)}: {key}={raw!r}: the directory is not writable",
                              key=key, value=raw, source=self.source(key))
        return path

    def copy(self) -> "SparkConf":
        c = SparkConf(loadDefaults=False)
        c._conf = dict(self._conf)
        c._sources = dict(self._sources)
        return c

    def __repr__(self) -> str:
        return f"SparkConf({self._conf!r})"
