"""Errors of DataFrame code name the column, the expression and the user's line.

As PySpark 4's DataFrameQueryContext does, an expression remembers the API call that built
it and the user's ``file:line``; an AnalysisException (at the DataFrame call) and a runtime
error raised in an executor task (ANSI division by zero, a malformed cast, a Python UDF's
exception) end with ``== DataFrame ==`` naming them. The lines are this file's own, read
with ``sys._getframe`` on the line that builds the expression; the slow test checks the
context against PySpark 4.3's for the same code.
"""
from __future__ import annotations

import pickle
import sys
from typing import Any

import pytest

pytest.importorskip("pyarrow")

from sparkctl.errors import (AnalysisException, ArithmeticException, DataFrameQueryContext,  # noqa: E402
                             PythonException)

pytestmark = pytest.mark.timeout(180)
HERE = __file__


def here() -> int:
    """The caller's line number."""
    return sys._getframe(1).f_lineno


@pytest.fixture(scope="module")
def spark() -> Any:
    from sparkctl.sql import SparkSession
    session = SparkSession.builder.master("local[2]").appName("errors").config("spark.ui.enabled", "false") \
        .getOrCreate()
    yield session
    session.stop()


def frame(spark: Any) -> Any:
    return spark.createDataFrame([(1, 0, "x"), (2, 1, "7")], ["a", "b", "s"])


def names_line(err: BaseException, fragment: str, line: int) -> None:
    text = str(err)
    assert f'== DataFrame ==\n"{fragment}" was called from\n{HERE}:{line}\n' in text, text


def test_unknown_column_names_the_column_suggestions_and_line(spark: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(spark)
    wrong, line = F.col("bb") + 1, here()
    with pytest.raises(AnalysisException) as e:
        df.select(wrong)
    assert "`bb` cannot be resolved" in str(e.value) and "Did you mean one of the following? [`b`" in str(e.value)
    names_line(e.value, "col", line)
    assert e.value.getQueryContext() == [DataFrameQueryContext("col", HERE, line)]


def test_plan_level_analysis_error_names_the_dataframe_call(spark: Any) -> None:
    from sparkctl.sql import functions as F
    df = frame(spark)
    line = here() + 2
    with pytest.raises(AnalysisException) as e:
        df.filter(F.col("a") + 1)
    assert "FILTER_NOT_BOOLEAN" in str(e.value)
    assert f"{HERE}:{line}" in str(e.value)


def test_division_by_zero_in_a_task_names_where_the_column_was_defined(spark: Any) -> None:
    from sparkctl.sql import functions as F
    ratio, line = F.col("a") / F.col("b"), here()
    df = frame(spark).select(ratio.alias("r"))
    with pytest.raises(ArithmeticException) as e:
        df.collect()
    assert str(e.value).startswith("[DIVIDE_BY_ZERO] Division by zero.")
    names_line(e.value, "__truediv__", line)


def test_malformed_cast_names_the_cast(spark: Any) -> None:
    from sparkctl.sql import functions as F
    number, line = F.col("s").cast("int"), here()
    with pytest.raises(ArithmeticException) as e:
        frame(spark).select(number).collect()
    assert "[CAST_INVALID_INPUT] The value 'x' of the type \"STRING\" cannot be cast to \"INT\"" in str(e.value)
    names_line(e.value, "cast", line)


def test_udf_exception_from_an_executor_names_where_it_was_applied(spark: Any) -> None:
    from sparkctl.sql import functions as F
    inverse = F.udf(lambda v: 1 // v, "int")
    applied, line = inverse("b"), here()
    with pytest.raises(PythonException) as e:
        frame(spark).select(applied).collect()
    assert "ZeroDivisionError" in str(e.value)
    names_line(e.value, "__call__", line)


def test_context_survives_pickling() -> None:
    err = ArithmeticException("[DIVIDE_BY_ZERO] Division by zero.", "DIVIDE_BY_ZERO",
                              [DataFrameQueryContext("__truediv__", "/app.py", 12)])
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ArithmeticException and str(back) == str(err)
    assert back.getErrorClass() == "DIVIDE_BY_ZERO"
    assert [(c.fragment(), c.callSite(), c.contextType()) for c in back.getQueryContext()] == \
        [("__truediv__", "/app.py:12", "DataFrame")]


def test_stages_are_named_after_the_action_and_the_user_line(spark: Any) -> None:
    from sparkctl.sql import functions as F
    sc = spark.sparkContext
    sc.setJobGroup("named-stages", "stage names")
    try:
        frame(spark).groupBy("b").agg(F.sum("a")).collect(); line = here()  # noqa: E702
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    tracker = sc.statusTracker()
    jobs = tracker.getJobIdsForGroup("named-stages")
    assert jobs
    names = {tracker.getStageInfo(s).name for j in jobs for s in tracker.getJobInfo(j).stageIds
             if tracker.getStageInfo(s) is not None}
    assert f"collect at {HERE}:{line}" in names, names


@pytest.mark.slow
def test_same_query_context_as_pyspark(spark: Any) -> None:
    from sparkctl.sql import functions as F
    from tests.spark_reference import reference_pyspark

    def failures(session: Any, fns: Any) -> list[tuple[str, str, str]]:
        df = frame(session)
        cases = [lambda: df.select(fns.col("a") / fns.col("b")).collect(),
                 lambda: df.select(fns.col("s").cast("int")).collect(),
                 lambda: df.select(fns.col("bb") + 1).collect()]
        out = []
        for run in cases:
            with pytest.raises(Exception) as e:
                run()
            out += [(c.fragment(), c.callSite(), str(e.value).split(" ", 1)[0]) for c in e.value.getQueryContext()]
        return out

    with reference_pyspark("errors") as theirs_session:
        from pyspark.sql import functions as PF
        theirs = failures(theirs_session, PF)
    assert failures(spark, F) == theirs
