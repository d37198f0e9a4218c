"""SparkSession as PySpark's entry point: the builder, getOrCreate reusing a running session or
context, spark.conf, the active session, stop and the context manager, and the one clear
error for every DataFrame entry. No test here uses the shared ``sc``: each makes and stops its
own session, and no process may outlive it.

The reference is PySpark's documented SparkSession API (pyspark.sql.session).
"""
from __future__ import annotations

import pytest

from sparkctl import SparkConf, SparkContext
from sparkctl.errors import ConfigError, DataFramesNotSupportedError, NotSupportedError
from sparkctl.sql import SparkSession

pytestmark = pytest.mark.timeout(60)


def test_builder_get_or_create_conf_and_stop(assert_no_child_processes) -> None:
    spark = (SparkSession.builder.master("local[2]").appName("session-app")
             .config("spark.ui.showConsoleProgress", False).config("spark.myapp.threshold", 3).getOrCreate())
    try:
        sc = spark.sparkContext
        assert isinstance(sc, SparkContext) and sc.master == "local[2]" and sc.appName == "session-app"
        assert SparkContext._active is sc
        assert spark.version == sc.version
        assert SparkSession.getActiveSession() is spark and SparkSession.active() is spark
        # the builder's options reach the context's settings and spark.conf, as strings
        assert sc.getConf().get("spark.myapp.threshold") == "3"
        assert spark.conf.get("spark.myapp.threshold") == "3"
        assert spark.conf.get("spark.ui.showConsoleProgress") == "false"
        assert spark.conf.get("spark.app.name") == "session-app"
        # runtime settings: set, get with and without a default, unset, getAll
        spark.conf.set("spark.sql.shuffle.partitions", 7)
        spark.conf.set("spark.myapp.flag", True)
        assert spark.conf.get("spark.sql.shuffle.partitions") == "7" and spark.conf.get("spark.myapp.flag") == "true"
        assert spark.conf.getAll["spark.sql.shuffle.partitions"] == "7"
        spark.conf.unset("spark.myapp.flag")
        assert spark.conf.get("spark.myapp.flag", None) is None
        assert spark.conf.get("spark.myapp.flag", "fallback") == "fallback"
        with pytest.raises(ConfigError, match="spark.myapp.flag"):
            spark.conf.get("spark.myapp.flag")
        # a setting the context reads as it starts cannot change under it
        assert not spark.conf.isModifiable("spark.executor.memory")
        assert spark.conf.isModifiable("spark.sql.shuffle.partitions")
        with pytest.raises(ConfigError, match="Cannot modify the value of the Spark config: 'spark.executor.memory'"):
            spark.conf.set("spark.executor.memory", "2g")
        # RDD work goes through the context
        words = sc.parallelize(["a b", "b c c"], 2).flatMap(str.split).map(lambda w: (w, 1))
        assert sorted(words.reduceByKey(lambda a, b: a + b).collect()) == [("a", 1), ("b", 2), ("c", 2)]
        # getOrCreate again: the same session, its options added to spark.conf only
        again = SparkSession.builder.appName("ignored-name").config("spark.sql.extra", "yes").getOrCreate()
        assert again is spark and spark.conf.get("spark.sql.extra") == "yes"
        assert sc.appName == "session-app"
    finally:
        spark.stop()
    assert SparkSession.getActiveSession() is None
    assert SparkContext._active is None
    with pytest.raises(RuntimeError, match="No active or default SparkSession"):
        SparkSession.active()
    assert_no_child_processes(allow_shared=False)
    # after a stop, getOrCreate makes a new session over a new context
    with SparkSession.builder.master("local[1]").appName("second").getOrCreate() as second:
        assert second is not spark and second.sparkContext.appName == "second"
        assert second.sparkContext.parallelize(range(5)).sum() == 10
    assert second.sparkContext._stopped
    assert_no_child_processes(allow_shared=False)


def test_session_over_a_running_context(assert_no_child_processes) -> None:
    sc = SparkContext("local[2]", "context-first")
    try:
        spark = SparkSession.builder.config(conf=SparkConf().set("spark.myapp.a", "1")) \
            .config(map={"spark.myapp.b": 2}).getOrCreate()
        assert spark.sparkContext is sc and sc.appName == "context-first"
        assert spark.conf.get("spark.myapp.a") == "1" and spark.conf.get("spark.myapp.b") == "2"
        assert sc.getConf().get("spark.myapp.a") is None  # the running context's settings stay as they were
        assert SparkSession(sc).sparkContext is sc  # PySpark's public constructor
        other = spark.newSession()
        assert other is not spark and other.sparkContext is sc
        other.conf.set("spark.sql.only.here", "x")
        assert spark.conf.get("spark.sql.only.here", None) is None
    finally:
        spark.stop()
    assert sc._stopped and SparkSession.getActiveSession() is None
    assert_no_child_processes(allow_shared=False)


def test_builders_do_not_share_options() -> None:
    first = SparkSession.builder.appName("one").config("spark.myapp.x", "1")
    second = SparkSession.builder
    assert first is not second
    assert "spark.myapp.x" not in second._options and first._options["spark.app.name"] == "one"
    with pytest.raises(NotSupportedError, match="Spark Connect"):
        SparkSession.builder.remote("sc://localhost")


def test_what_sparkctl_lacks_raises_one_clear_error(assert_no_child_processes) -> None:
    from sparkctl.errors import AnalysisException
    with SparkSession.builder.master("local[1]").appName("lacking").getOrCreate() as spark:
        calls = {
            "Structured Streaming (spark.readStream)": lambda: spark.readStream,
            "Python UDTFs (spark.udtf)": lambda: spark.udtf,
            "table-valued functions (spark.tvf)": lambda: spark.tvf,
        }
        for feature, call in calls.items():
            with pytest.raises(NotSupportedError) as info:
                call()
            assert str(info.value).startswith(feature) and isinstance(info.value, NotImplementedError)
        with pytest.raises(AnalysisException, match="TABLE_OR_VIEW_NOT_FOUND"):
            spark.table("no_such_view")
        # the RDD side still works after the errors
        assert spark.sparkContext.parallelize([1, 2, 3]).count() == 3
    with pytest.raises(DataFramesNotSupportedError, match="not supported by sparkctl yet: sparkctl.sql.Observation"):
        from sparkctl.sql import Observation  # noqa: F401
    with pytest.raises(ImportError):
        from sparkctl.sql import NoSuchName  # noqa: F401
    assert_no_child_processes(allow_shared=False)
