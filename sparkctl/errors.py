"""Typed errors, so callers match on classes rather than on message strings.

An error raised inside a task reaches the driver as its original type where that type
can be rebuilt there; the remote traceback is attached as the ``__cause__`` (a
:class:`RemoteTraceback`), as ``concurrent.futures`` does for process pools.

SQL errors (:class:`SparkSqlError`) also carry where the user's code built the failing
expression (:class:`DataFrameQueryContext`, captured by :func:`user_query_context`).
"""
from __future__ import annotations

import os
import sys
import sysconfig
from typing import Any


class SparkctlError(Exception):
    """Base of every error sparkctl raises on purpose."""


class ConfigError(SparkctlError):
    """A setting, a config file line or a command-line value is invalid.

    The message is one line a user can act on (the command line prints it as is); *key*,
    *value* and *source* (``path:line``, ``--conf``, ``SparkConf.set``...) are kept for
    callers that want them, when the error is about one setting.
    """

    def __init__(self, message: str, *, key: str | None = None, value: str | None = None,
                 source: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.value = value
        self.source = source

    def __reduce__(self):  # keep the fields across pickling
        return (_config_error, (str(self), self.key, self.value, self.source))


def _config_error(message: str, key: str | None, value: str | None, source: str | None) -> ConfigError:
    return ConfigError(message, key=key, value=value, source=source)


class ProtocolError(SparkctlError):
    """A peer sent bytes that are not a valid frame or message."""


class FrameTooLargeError(ProtocolError):
    """A frame's length header is larger than the configured cap."""


class ConnectionClosed(ProtocolError):
    """The peer closed the connection (EOF), it was reset, or it was closed locally.

    A subclass of :class:`ProtocolError` so that a reader loop that stops on protocol
    errors also stops on a vanished peer.
    """


class RpcConnectError(SparkctlError, ConnectionError):
    """Could not open a connection to ``host:port`` (refused, unreachable, unknown host).

    Also a :class:`ConnectionError` (hence an :class:`OSError`) so that code written
    against plain sockets still catches it.
    """


class AuthenticationError(SparkctlError):
    """A peer failed the shared-secret handshake (or we failed theirs)."""


class RpcTimeoutError(SparkctlError):
    """A blocking network call did not complete within its timeout."""


class RemoteTraceback(Exception):
    """Carries the formatted traceback of an exception raised in another process."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class TaskFailedError(SparkctlError):
    """A task failed more often than ``spark.task.maxFailures`` allows."""


class ProfilerNotEnabledError(SparkctlError, RuntimeError):
    """``show_profiles``/``dump_profiles`` on a context started without ``spark.python.profile``
    (a RuntimeError, as PySpark's)."""


class JobCancelledError(SparkctlError):
    """A job was cancelled by the user (cancelAllJobs, cancelJobGroup, Ctrl-C)."""


class ExecutorLostError(SparkctlError):
    """An executor died or stopped answering while it held a task."""


class FetchFailedError(SparkctlError):
    """A reduce task could not read a map output block; the map stage must rerun."""

    def __init__(self, shuffle_id: int, map_index: int, reduce_index: int, message: str) -> None:
        super().__init__(f"fetch failed for shuffle {shuffle_id} map {map_index} reduce {reduce_index}: {message}")
        self.shuffle_id = shuffle_id
        self.map_index = map_index
        self.reduce_index = reduce_index
        self.message = message

    def __reduce__(self):  # keep the fields across pickling
        return (FetchFailedError, (self.shuffle_id, self.map_index, self.reduce_index, self.message))


class UserStopIterationError(SparkctlError, RuntimeError):
    """A function given to ``map``, ``filter``, ``flatMap``... raised ``StopIteration``.

    Python's iterators read that as "no more records", so left alone it would end the
    partition early and the job would succeed with records missing. The task fails
    instead, as PySpark's does.
    """

    def __init__(self, detail: str = "") -> None:
        message = "Caught StopIteration thrown from user's code; failing the task"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.detail = detail

    def __reduce__(self):
        return (UserStopIterationError, (self.detail,))


class TaskExitError(SparkctlError):
    """A task's code called ``sys.exit()`` (raised ``SystemExit``).

    The task fails (and is retried like any failed task); the driver gets this error rather
    than the ``SystemExit`` itself, which would end the user's driver program.
    """

    def __init__(self, code: object = None) -> None:
        super().__init__(f"the task's code called sys.exit({code!r}): the task failed instead of ending its "
                         f"Python process")
        self.code = code

    def __reduce__(self):
        return (TaskExitError, (self.code,))


class NotSupportedError(SparkctlError, NotImplementedError):
    """A PySpark feature sparkctl does not have yet, named in the message.

    Raised where the feature is reached, so a ported program stops at the first line that
    needs it, with one clear line, rather than running on with something that only looks
    like it works.
    """


class DataFramesNotSupportedError(NotSupportedError):
    """A part of PySpark's DataFrame and SQL API that sparkctl does not have yet, named."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"not supported by sparkctl yet: {feature}")
        self.feature = feature

    def __reduce__(self):
        return (DataFramesNotSupportedError, (self.feature,))


class FileSystemError(SparkctlError, OSError):
    """A filesystem URL cannot be used: an unknown scheme, a backend that is not installed
    (the message names the extra), refused credentials, an unreachable store. One line that
    names the URL and never a credential; ``sparkctl submit`` prints it as is. Also an
    :class:`OSError`, so code written against local files still catches it."""

    def __reduce__(self):
        return (FileSystemError, (str(self),))


class DataFrameQueryContext:
    """Where a DataFrame expression was written: PySpark 4's ``DataFrameQueryContext``.

    ``fragment`` is the API call that built it (``"__truediv__"``, ``"col"``, ``"cast"``),
    ``callSite`` the user's ``file:line`` that called it: the first frame outside sparkctl
    (and outside the standard library), captured when the Column or DataFrame was built,
    so an error raised later in an executor still names the line that wrote the expression.
    """

    __slots__ = ("_fragment", "_file", "_line")

    def __init__(self, fragment: str, file: str, line: int = 0) -> None:
        self._fragment = fragment
        self._file = file
        self._line = line

    def contextType(self) -> str:
        return "DataFrame"

    def fragment(self) -> str:
        return self._fragment

    def callSite(self) -> str:
        return f"{self._file}:{self._line}" if self._line else self._file

    def summary(self) -> str:
        return f'== DataFrame ==\n"{self._fragment}" was called from\n{self.callSite()}\n'

    def __reduce__(self):
        return (DataFrameQueryContext, (self._fragment, self._file, self._line))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataFrameQueryContext) and self.__reduce__() == other.__reduce__()

    def __hash__(self) -> int:
        return hash((self._fragment, self._file, self._line))

    def __repr__(self) -> str:
        return f"DataFrameQueryContext({self._fragment!r}, {self.callSite()!r})"


_PACKAGE_DIR = __file__.rsplit("/", 1)[0] + "/"
_STDLIB_DIR = sysconfig.get_paths()["stdlib"] + "/"
_USER, _OURS, _OTHER = 0, 1, 2
_kind_of: dict[str, int] = {}


def _file_kind(filename: str) -> int:
    path = os.path.abspath(filename)
    kind = _OURS if path.startswith(_PACKAGE_DIR) else \
        _OTHER if path.startswith(_STDLIB_DIR) or filename.startswith("<") else _USER
    _kind_of[filename] = kind
    return kind


def user_query_context(depth: int = 1) -> DataFrameQueryContext | None:
    """The context of the code running now: the outermost sparkctl function on the stack and
    the user's line that called it (None when no user code is on the stack, as in a task).
    Called for every expression built, so it walks frames with as little work as it can."""
    frame: Any = sys._getframe(depth)
    kinds = _kind_of
    fragment = None
    while frame is not None:
        code = frame.f_code
        kind = kinds.get(code.co_filename)
        if kind is None:
            kind = _file_kind(code.co_filename)
        if kind == _USER:
            return None if fragment is None else DataFrameQueryContext(fragment, code.co_filename, frame.f_lineno)
        if kind == _OURS:
            fragment = code.co_name
        frame = frame.f_back
    return None


class SparkSqlError(SparkctlError):
    """An error of DataFrame and SQL work that carries Spark's error class (``getErrorClass()``)
    and, where known, the place in the user's code that wrote the failing expression
    (``getQueryContext()``), shown at the end of the message as PySpark 4 shows it."""

    def __init__(self, message: str, error_class: str | None = None,
                 context: "list[DataFrameQueryContext] | None" = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        self.context: list[DataFrameQueryContext] = list(context or [])

    def getErrorClass(self) -> str | None:
        return self.error_class

    getCondition = getErrorClass

    def getMessage(self) -> str:
        return str(self)

    def getQueryContext(self) -> list[DataFrameQueryContext]:
        return list(self.context)

    def with_context(self, context: DataFrameQueryContext | None) -> "SparkSqlError":
        """This error naming *context* as where its expression was written (once)."""
        if context is not None and not self.context:
            self.context = [context]
        return self

    def __str__(self) -> str:
        if not self.context:
            return self.message
        return self.message + "\n" + "".join(c.summary() for c in self.context)

    def __reduce__(self):
        return (_sql_error, (type(self), self.message, self.error_class, self.context))


def _sql_error(cls: "type[SparkSqlError]", message: str, error_class: str | None, context: list) -> "SparkSqlError":
    err = cls.__new__(cls)
    SparkSqlError.__init__(err, message, error_class, context)
    return err


class AnalysisException(SparkSqlError):
    """A DataFrame or SQL query that cannot be analysed: an unknown column (with Spark's
    "did you mean"), mismatched types, an ambiguous name; PySpark's ``AnalysisException``.

    Analysis runs at the DataFrame call that builds the plan, so the user's line is on the
    stack when it is raised: that is its context unless the expression that failed to
    resolve knows where it was written (``col("x")`` on an earlier line)."""

    context_from_stack = False

    def __init__(self, message: str, error_class: str | None = None,
                 context: "list[DataFrameQueryContext] | None" = None) -> None:
        here = user_query_context(2) if context is None else None
        super().__init__(message, error_class, context if context is not None else ([here] if here else []))
        self.context_from_stack = here is not None


class ArithmeticException(SparkSqlError, ArithmeticError):
    """A value an expression cannot compute under Spark's ANSI mode (its default): division
    by zero, an integer overflow, a malformed cast; PySpark's ``ArithmeticException``."""


SparkArithmeticError = ArithmeticException


class DateTimeException(SparkSqlError):
    """A text that does not parse as a date or timestamp under Spark's ANSI mode (to_timestamp,
    unix_timestamp, to_date with a pattern); PySpark's ``DateTimeException``."""


class PythonException(SparkSqlError):
    """A Python UDF (``F.udf``, ``pandas_udf``) raised in an executor: PySpark's
    ``PythonException``; the UDF's own exception is its ``__cause__``."""


class IllegalArgumentException(SparkSqlError, ValueError):
    """A value Spark's JVM side refuses (an unknown explain mode); PySpark's ``IllegalArgumentException``."""


class PySparkValueError(SparkSqlError, ValueError):
    """PySpark's client-side ``PySparkValueError`` (arguments that cannot go together)."""


class PySparkTypeError(SparkSqlError, TypeError):
    """PySpark's client-side ``PySparkTypeError`` (an argument of the wrong type)."""


def attach_query_context(cls: Any) -> None:
    """Wrap *cls*'s own ``eval`` and ``resolve`` (an expression class) so that a SQL error
    raised under them names where the expression was written (its ``origin``), and an
    exception from a Python UDF comes out as a :class:`PythonException` naming it."""
    import functools
    evaluate = cls.__dict__.get("eval")
    if evaluate is not None:
        @functools.wraps(evaluate)
        def eval_with_context(self, table):  # type: ignore[no-untyped-def]
            try:
                return evaluate(self, table)
            except SparkSqlError as e:
                raise e.with_context(self.origin)
            except Exception as e:
                if not getattr(cls, "user_code", False):
                    raise
                import traceback
                text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
                raise PythonException(f"An exception was thrown from the Python worker:\n{text}",
                                      "PYTHON_EXCEPTION").with_context(self.origin) from e
        cls.eval = eval_with_context
    resolve = cls.__dict__.get("resolve")
    if resolve is not None:
        @functools.wraps(resolve)
        def resolve_with_context(self, scope):  # type: ignore[no-untyped-def]
            try:
                return resolve(self, scope)
            except AnalysisException as e:
                if e.context_from_stack and self.origin is not None:
                    e.context = [self.origin]
                    e.context_from_stack = False
                raise
        cls.resolve = resolve_with_context


class BarrierStageError(SparkctlError):
    """A barrier stage cannot run (more tasks than the cluster has slots, a pattern barrier
    mode does not allow) or a barrier()/allGather() sync failed (timed out, or the tasks
    disagreed on how to sync)."""


class ContextOnlyOnDriverError(SparkctlError, RuntimeError):
    """A task tried to create a SparkContext.

    A context belongs to the driver: one made inside a task would start a second
    application from every task that runs the code (or, in a task process forked from the
    driver, trip over the driver's own). PySpark refuses it the same way unless
    ``spark.executor.allowSparkContext`` is true in the conf passed to the new context.
    """

    def __init__(self) -> None:
        super().__init__("CONTEXT_ONLY_VALID_ON_DRIVER: a SparkContext can only be created on the driver, "
                         "not in a task (set spark.executor.allowSparkContext=true in its conf to allow it)")

    def __reduce__(self):
        return (ContextOnlyOnDriverError, ())
