"""SparkSession: PySpark's entry point, over one SparkContext.

A PySpark program starts with ``SparkSession.builder...getOrCreate()``; with ``pyspark``
replaced by ``sparkctl`` in its imports it runs here unchanged:

```
 SparkSession.builder.master(..).appName(..).config(k, v).getOrCreate()
        │ options ──▶ SparkConf ──▶ SparkContext.getOrCreate (reused when one runs)
        ▼
 SparkSession ── .sparkContext, .conf (RuntimeConfig), .version, .stop(), with ...:
              └─ .read, .createDataFrame, .range, .sql, .table, .catalog ──▶ DataFrames
```

What sparkctl does not have (streaming, UDTFs, table-valued functions) raises one
:class:`~sparkctl.errors.NotSupportedError` that names it.
"""
from __future__ import annotations

import threading
from typing import Any, ClassVar, NoReturn

from sparkctl.conf import SparkConf
from sparkctl.context import SparkContext
from sparkctl.errors import NotSupportedError
from sparkctl.sql.conf import RuntimeConfig, conf_string

_BUILDER_SOURCE = "SparkSession.builder.config"


class Builder:
    """Collects a session's options; :meth:`getOrCreate` turns them into a session."""

    _lock: ClassVar[threading.RLock] = threading.RLock()

    def __init__(self) -> None:
        self._options: dict[str, str] = {}

    def config(self, key: str | None = None, value: Any = None, conf: SparkConf | None = None, *,
               map: dict[str, Any] | None = None) -> "Builder":
        """Set one option (*key*, *value*), every setting of a SparkConf (*conf*) or of a dict (*map*)."""
        with self._lock:
            if conf is not None:
                for k, v in conf.getAll():
                    self._options[k] = v
            if map is not None:
                for k, v in map.items():
                    self._put(k, v)
            if key is not None:
                self._put(key, value)
        return self

    def _put(self, key: str, value: Any) -> None:
        text = conf_string(value)
        if text is None:
            self._options.pop(key, None)
        else:
            self._options[key] = text

    def master(self, master: str) -> "Builder":
        return self.config("spark.master", master)

    def appName(self, name: str) -> "Builder":
        return self.config("spark.app.name", name)

    def enableHiveSupport(self) -> "Builder":
        """Kept as an option, as PySpark does; it matters only to SQL, which raises anyway."""
        return self.config("spark.sql.catalogImplementation", "hive")

    def remote(self, url: str) -> "Builder":
        raise NotSupportedError(f"Spark Connect is not supported: SparkSession.builder.remote({url!r}) "
                                f"(use .master(...) with a local, local-cluster or spark:// URL)")

    def create(self) -> NoReturn:
        raise NotSupportedError("SparkSession.builder.create() is for Spark Connect, which sparkctl does not "
                                "have: use getOrCreate()")

    def getOrCreate(self) -> "SparkSession":
        """The running session (with these options added to its settings), or a new one
        over the running SparkContext, or over a new SparkContext made from the options."""
        with self._lock:
            session = SparkSession._instantiatedSession
            if session is not None and not session._sc._stopped:
                for k, v in self._options.items():  # the context already runs: they reach spark.conf only
                    session._conf._put(k, v)
                SparkSession._activeSession = session
                return session
            conf = SparkConf()
            for k, v in self._options.items():
                conf._put(k, v, _BUILDER_SOURCE)
            sc = SparkContext.getOrCreate(conf)
            return SparkSession(sc, options=self._options)

    def __repr__(self) -> str:
        return f"<SparkSession.Builder options={self._options}>"


class _BuilderAttribute:
    """``SparkSession.builder`` gives a new Builder at each use, so two programs' (or two
    threads') option chains never mix."""

    def __get__(self, obj: object, owner: type | None = None) -> Builder:
        return Builder()


class SparkSession:
    """PySpark's SparkSession for RDD programs: the SparkContext, settings, lifecycle."""

    builder = _BuilderAttribute()
    Builder = Builder

    _instantiatedSession: ClassVar["SparkSession | None"] = None
    _activeSession: ClassVar["SparkSession | None"] = None

    def __init__(self, sparkContext: SparkContext, jsparkSession: Any = None,
                 options: dict[str, Any] | None = None) -> None:
        self._sc = sparkContext
        values = dict(sparkContext._conf.getAll())
        for k, v in (options or {}).items():
            text = conf_string(v)
            if text is not None:
                values[k] = text
        self._conf = RuntimeConfig(values)
        self._views: dict[str, Any] = {}  # temporary views, by lower-case name
        self._udfs: dict[str, Any] = {}  # Python UDFs registered for SQL (spark.udf.register), by lower-case name
        with Builder._lock:
            current = SparkSession._instantiatedSession
            if current is None or current._sc._stopped:
                SparkSession._instantiatedSession = self
            SparkSession._activeSession = self

    # ------------------------------------------------------------------ what works
    @property
    def sparkContext(self) -> SparkContext:
        return self._sc

    @property
    def conf(self) -> RuntimeConfig:
        return self._conf

    @property
    def version(self) -> str:
        return self._sc.version

    def newSession(self) -> "SparkSession":
        """A session over the same SparkContext with settings of its own (the context's,
        without this session's changes)."""
        session = SparkSession.__new__(SparkSession)
        session._sc = self._sc
        session._conf = RuntimeConfig(dict(self._sc._conf.getAll()))
        session._views = {}
        session._udfs = {}
        return session

    @classmethod
    def getActiveSession(cls) -> "SparkSession | None":
        """The session most recently made or returned by ``getOrCreate``; None once stopped."""
        session = cls._activeSession
        if session is None or session._sc._stopped:
            return None
        return session

    @classmethod
    def active(cls) -> "SparkSession":
        """The active session, else the default one; raises when there is neither."""
        session = cls.getActiveSession()
        if session is None:
            default = cls._instantiatedSession
            if default is not None and not default._sc._stopped:
                return default
            # a RuntimeError, as PySpark's NO_ACTIVE_OR_DEFAULT_SESSION
            raise RuntimeError("No active or default SparkSession: create one with "
                               "SparkSession.builder.getOrCreate()")
        return session

    def stop(self) -> None:
        """Stop the SparkContext; the next ``getOrCreate`` makes a new session and context."""
        self._sc.stop()
        with Builder._lock:
            if SparkSession._instantiatedSession is not None and SparkSession._instantiatedSession._sc is self._sc:
                SparkSession._instantiatedSession = None
            if SparkSession._activeSession is not None and SparkSession._activeSession._sc is self._sc:
                SparkSession._activeSession = None

    def __enter__(self) -> "SparkSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<SparkSession master={self._sc.master} appName={self._sc.appName}>"

    # ------------------------------------------------------------------ DataFrames
    @property
    def read(self) -> Any:
        from sparkctl.sql.readwriter import DataFrameReader
        return DataFrameReader(self)

    def createDataFrame(self, data: Any, schema: Any = None, samplingRatio: float | None = None,
                        verifySchema: bool = True) -> Any:
        from sparkctl.sql.creation import create_data_frame
        return create_data_frame(self, data, schema, verifySchema)

    def range(self, start: int, end: int | None = None, step: int = 1, numPartitions: int | None = None) -> Any:
        from sparkctl.sql.creation import range_data_frame
        return range_data_frame(self, start, end, step, numPartitions)

    def table(self, tableName: str) -> Any:
        view = self._views.get(tableName.lower())
        if view is None:
            from sparkctl.errors import AnalysisException
            raise AnalysisException(f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{tableName}` cannot be found. "
                                    f"Verify the spelling and correctness of the schema and catalog.",
                                    error_class="TABLE_OR_VIEW_NOT_FOUND")
        return view

    def sql(self, sqlQuery: str, args: Any = None, **kwargs: Any) -> Any:
        from sparkctl.sql.creation import run_sql
        return run_sql(self, sqlQuery, args)

    @property
    def catalog(self) -> Any:
        from sparkctl.sql.creation import Catalog
        return Catalog(self)

    @property
    def readStream(self) -> NoReturn:
        raise NotSupportedError("Structured Streaming (spark.readStream) is not supported by sparkctl")

    @property
    def udf(self) -> Any:
        """Python UDFs registered by name for ``spark.sql`` and ``F.expr``."""
        from sparkctl.sql.udf import UDFRegistration
        return UDFRegistration(self)

    @property
    def udtf(self) -> NoReturn:
        raise NotSupportedError("Python UDTFs (spark.udtf) are not supported by sparkctl yet")

    @property
    def dataSource(self) -> NoReturn:
        raise NotSupportedError("Python data sources (spark.dataSource) are not supported by sparkctl yet")

    @property
    def streams(self) -> NoReturn:
        raise NotSupportedError("Structured Streaming (spark.streams) is not supported by sparkctl")

    @property
    def tvf(self) -> NoReturn:
        raise NotSupportedError("table-valued functions (spark.tvf) are not supported by sparkctl yet")
