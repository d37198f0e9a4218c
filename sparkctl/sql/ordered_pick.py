"""``max_by(x, ord)`` and ``min_by(x, ord)`` as hash aggregates: each row gets its position
in one sort of (ord, row number), so that the winner of every group is its row of largest
position; pyarrow's hash ``max`` finds that position per group and ``take`` fetches the
value, all vectorised:

    (x, ord) ─▶ sort_indices(ord, row) ─▶ position per row (NULL where ord is NULL)
             ─▶ hash max(position) by group ─▶ take(x, row at position)
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def ordering_positions(table: pa.Table, col: str, largest: bool) -> tuple[pa.Array, pa.Array]:
    """For ``max_by``/``min_by`` over the spec's (value ``col_0``, ordering ``col_1``): each
    row's position in the order that puts the winner of a group last among its rows (the
    ordering ascending for max_by, descending for min_by; a tie goes to the later row, as
    Spark's update keeps the newer value unless the older ordering is strictly better), NULL
    where the ordering is NULL (Spark skips those rows); and the row at each position. NaN
    is greater than every other value, as Spark orders doubles."""
    ordering = table.column(f"{col}_1")
    n = table.num_rows
    direction = "ascending" if largest else "descending"
    keys = {"o": ordering, "i": pa.array(np.arange(n, dtype=np.int64))}
    sort_keys = [("o", direction), ("i", "ascending")]
    if pa.types.is_floating(ordering.type):
        keys["nan"] = pc.fill_null(pc.is_nan(ordering), False)
        sort_keys.insert(0, ("nan", direction))
    rows = pc.sort_indices(pa.table(keys), sort_keys=sort_keys).to_numpy()
    positions = np.empty(n, np.int64)
    positions[rows] = np.arange(n, dtype=np.int64)
    valid = pc.is_valid(ordering).to_numpy(zero_copy_only=False) if ordering.null_count else None
    return pa.array(positions, mask=None if valid is None else ~valid), pa.array(rows)


def picked_values(table: pa.Table, col: str, picked: tuple[pa.Array, pa.Array], best: Any) -> Any:
    """The value (``col_0``) of the row at each group's best position (NULL where none)."""
    return pc.take(table.column(f"{col}_0"), pc.take(picked[1], best))
