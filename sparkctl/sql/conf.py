"""RuntimeConfig: ``spark.conf``, a session's settings as PySpark's ``RuntimeConfig``.

A session's settings start as its SparkContext's (every ``spark.*`` value it was started
with) plus the builder's options. Settings the SparkContext reads only as it starts
(``spark.master``, ``spark.executor.memory``...: the keys of sparkctl's settings table)
cannot change afterwards: setting one through ``spark.conf`` raises, as Spark's
``CANNOT_MODIFY_CONFIG`` does, rather than being stored and silently ignored. Other keys
(``spark.sql.*``, the application's own) are kept per session.
"""
from __future__ import annotations

import threading
from typing import Any

from sparkctl.errors import ConfigError
from sparkctl.settings import DEFAULTS


class _NoValue:
    """Marks "no default given" apart from ``None``, which is a default."""


_NO_VALUE = _NoValue()


def conf_string(value: Any) -> str | None:
    """PySpark's spelling of a setting's value: booleans as ``true``/``false``."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class RuntimeConfig:
    """The settings of one :class:`~sparkctl.sql.SparkSession`."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = dict(values)
        self._lock = threading.Lock()

    def set(self, key: str, value: str | int | bool) -> None:
        """Set *key* for this session; a setting read only when the SparkContext starts raises."""
        if not self.isModifiable(key) and key in DEFAULTS:
            raise ConfigError(f"Cannot modify the value of the Spark config: {key!r}: the SparkContext reads it "
                              f"only as it starts (set it on SparkSession.builder.config, SparkConf or "
                              f"--conf instead)", key=key, value=conf_string(value), source="spark.conf.set")
        text = conf_string(value)
        with self._lock:
            if text is None:
                self._values.pop(key, None)
            else:
                self._values[key] = text

    def _put(self, key: str, value: str) -> None:
        """Set *key* whatever it is: the builder's options on a session it hands back."""
        with self._lock:
            self._values[key] = value

    def get(self, key: str, default: Any = _NO_VALUE) -> str | None:
        """The value of *key*; without a *default*, a key that is not set raises
        (a setting of sparkctl's table gives its default instead)."""
        with self._lock:
            if key in self._values:
                return self._values[key]
        if not isinstance(default, _NoValue):
            return conf_string(default)
        setting = DEFAULTS.get(key)
        if setting is not None and setting.default is not None:
            return setting.default
        raise ConfigError(f"The SQL config {key!r} cannot be found; give a default to spark.conf.get to read "
                          f"an unset key", key=key, source="spark.conf.get")

    def unset(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)

    @property
    def getAll(self) -> dict[str, str]:
        """Every setting of this session (a property, as in PySpark 4)."""
        with self._lock:
            return dict(self._values)

    def isModifiable(self, key: str) -> bool:
        """Whether ``set`` may change *key* now: not for the settings the SparkContext reads as it starts."""
        return key.startswith("spark.sql.") or key not in DEFAULTS

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._values

    def __repr__(self) -> str:
        return f"<RuntimeConfig with {len(self._values)} settings>"
