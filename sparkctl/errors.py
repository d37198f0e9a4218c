"""Typed errors, so callers match on classes rather than on message strings.

An error raised inside a task reaches the driver as its original type where that type
can be rebuilt there; the remote traceback is attached as the ``__cause__`` (a
:class:`RemoteTraceback`), as ``concurrent.futures`` does for process pools.
"""
from __future__ import annotations


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


class SparkSqlError(SparkctlError):
    """An error of DataFrame and SQL work that carries Spark's error class (``getErrorClass()``)."""

    def __init__(self, message: str, error_class: str | None = None) -> None:
        super().__init__(message)
        self.error_class = error_class

    def getErrorClass(self) -> str | None:
        return self.error_class

    getCondition = getErrorClass

    def __reduce__(self):
        return (type(self), (str(self), self.error_class))


class AnalysisException(SparkSqlError):
    """A DataFrame or SQL query that cannot be analysed: an unknown column (with Spark's
    "did you mean"), mismatched types, an ambiguous name; PySpark's ``AnalysisException``."""


class ArithmeticException(SparkSqlError, ArithmeticError):
    """A value an expression cannot compute under Spark's ANSI mode (its default): division
    by zero, an integer overflow, a malformed cast; PySpark's ``ArithmeticException``."""


SparkArithmeticError = ArithmeticException


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
