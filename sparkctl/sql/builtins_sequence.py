"""``sequence(start, stop[, step])``: the array start, start + step, ... up to stop (Spark's
Sequence expression), a whole column at a time:

    counts = (stop - start) // step + 1  ─▶  values = repeat(start, counts) + i * repeat(step, counts)

Integers give an array of the wider of start's and stop's types, the step defaulting to 1
(or -1 counting down). Dates give dates a day apart (the step Spark takes by default,
INTERVAL 1 DAY); a step given as an INTERVAL needs interval values, which sparkctl has not.
A step that moves away from stop, or 0 between two different bounds, is Spark's
"Illegal sequence boundaries" error; any NULL argument gives NULL.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException, IllegalArgumentException
from sparkctl.sql.expressions import as_array, common_type, spark_type_name
from sparkctl.sql.scalar_spec import ScalarSpec

#: Spark's ByteArrayMethods.MAX_ROUNDED_ARRAY_LENGTH: the longest array a sequence makes
MAX_LENGTH = 2147483632


def _type(types: list[pa.DataType]) -> pa.DataType:
    start, stop = types[0], types[1]
    if pa.types.is_null(start) or pa.types.is_null(stop):  # NULL as a bound takes the other's type
        start = stop = stop if pa.types.is_null(start) else start
        start = stop = pa.int32() if pa.types.is_null(start) else start
    if pa.types.is_date(start) and pa.types.is_date(stop) and len(types) == 2:
        return pa.list_(pa.date32())
    bounds = common_type(start, stop) if pa.types.is_integer(start) and pa.types.is_integer(stop) else None
    step_ok = len(types) < 3 or pa.types.is_integer(types[2]) or pa.types.is_null(types[2])
    if bounds is None or not step_ok:
        got = ", ".join(f"\"{spark_type_name(t)}\"" for t in types)
        raise AnalysisException(f"[DATATYPE_MISMATCH.SEQUENCE_WRONG_INPUT_TYPES] Cannot resolve sequence due to data "
                                f"type mismatch: `sequence` uses the wrong parameter type. The parameter type must "
                                f"conform to: the start and stop expressions must resolve to the same type; the "
                                f"step is an integral type for integral bounds (an INTERVAL step for dates is not "
                                f"supported by sparkctl); got {got}.",
                                error_class="DATATYPE_MISMATCH.SEQUENCE_WRONG_INPUT_TYPES")
    return pa.list_(bounds)


def _int64(value: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The values as int64 (dates as days) and where they are NULL."""
    array = as_array(value, n)
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    if pa.types.is_date32(array.type):
        array = array.view(pa.int32())
    elif pa.types.is_null(array.type):
        return np.zeros(n, np.int64), np.ones(n, bool)
    null = array.is_null().to_numpy(zero_copy_only=False)
    return pc.fill_null(array.cast(pa.int64()), 0).to_numpy(zero_copy_only=False).astype(np.int64), null


def sequence(args: list[Any], n: int) -> Any:
    types = [a.type for a in args]
    result = _type(types)
    start, null = _int64(args[0], n)
    stop, stop_null = _int64(args[1], n)
    null = null | stop_null
    if len(args) > 2:
        step, step_null = _int64(args[2], n)
        null = null | step_null
    else:
        step = np.where(start <= stop, 1, -1).astype(np.int64)
    live = ~null
    bad = live & (((step > 0) & (start > stop)) | ((step < 0) & (start < stop)) | ((step == 0) & (start != stop)))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise IllegalArgumentException(f"requirement failed: Illegal sequence boundaries: {_text(start[i], types[0])} "
                                       f"to {_text(stop[i], types[1])} by {step[i]}")
    safe_step = np.where(step == 0, 1, step)
    counts = np.where(live, (stop - start) // safe_step + 1, 0).astype(np.int64)
    if len(counts) and counts.max() > MAX_LENGTH:
        raise IllegalArgumentException(f"[COLLECTION_SIZE_LIMIT_EXCEEDED.PARAMETER] Can't create array with "
                                       f"{int(counts.max())} elements which exceeding the array size limit "
                                       f"{MAX_LENGTH}. SQLSTATE: 54000")
    within = np.arange(int(counts.sum()), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    values = np.repeat(start, counts) + within * np.repeat(step, counts)
    element = result.value_type
    if pa.types.is_date(element):
        elements = pa.array(values.astype(np.int32), pa.int32()).view(pa.date32())
    else:
        elements = pa.array(values, pa.int64()).cast(element)
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int32))
    return pa.ListArray.from_arrays(offsets, elements, type=result, mask=pa.array(null) if null.any() else None)


def _text(value: int, t: pa.DataType) -> str:
    if pa.types.is_date(t):
        import datetime
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=int(value))).isoformat()
    return str(int(value))


SEQUENCE_SCALARS = {"sequence": ScalarSpec(_type, sequence, 2, 3, nulls="intolerant")}
