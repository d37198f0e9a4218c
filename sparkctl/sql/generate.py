"""``explode``: one output row per element of an array column (Spark's Generate node)."""
from __future__ import annotations

from functools import partial
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from sparkctl.errors import AnalysisException
from sparkctl.sql import plan as lp
from sparkctl.sql.expressions import Alias, Attribute, AttributeRef, Expr, as_array


class Explode(Expr):
    """``explode(array)`` / ``explode_outer(array)``: a generator, planned as a Generate node."""

    def __init__(self, child: Expr, outer: bool = False) -> None:
        self.children = (child,)
        self.outer = outer

    def resolve(self, scope: Any) -> Expr:
        new = super().resolve(scope)
        t = new.children[0].dtype
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
            raise AnalysisException(f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{self.sql()}\" due to"
                                    f" data type mismatch: the parameter requires the ARRAY type.",
                                    error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")
        return new

    @property
    def dtype(self) -> pa.DataType:
        return self.children[0].dtype.value_type

    def eval(self, table: pa.Table) -> Any:
        raise AnalysisException("[UNSUPPORTED_GENERATOR.NESTED_IN_EXPRESSIONS] a generator is not allowed inside "
                                "an expression", error_class="UNSUPPORTED_GENERATOR.NESTED_IN_EXPRESSIONS")

    def sql(self) -> str:
        return f"{'explode_outer' if self.outer else 'explode'}({self.children[0].sql()})"


def contains_generator(e: Expr) -> bool:
    return any(isinstance(x, Explode) for x in e.walk())


class Generate(lp.Plan):
    def __init__(self, child: lp.Plan, generator: Explode, name: str) -> None:
        self.children = (child,)
        self.generator = generator
        self.attr = Attribute(name, generator.dtype, True)
        self._output = list(child.output) + [self.attr]

    @property
    def output(self) -> list[Attribute]:
        return self._output

    def node_string(self) -> str:
        return f"Generate {self.generator.sql()}"


def plan_generator(child: lp.Plan, exprs: list[Expr]) -> tuple[lp.Plan, list[Expr]]:
    scope = child.scope()
    resolved = [e.resolve(scope) for e in lp.expand_stars(exprs, scope)]
    gens = [e for e in resolved if contains_generator(e)]
    if len(gens) > 1:
        raise AnalysisException("[UNSUPPORTED_GENERATOR.MULTI_GENERATOR] only one generator allowed per select clause "
                                "but found " + str(len(gens)), error_class="UNSUPPORTED_GENERATOR.MULTI_GENERATOR")
    gen = gens[0]
    inner = gen.child if isinstance(gen, Alias) else gen
    if not isinstance(inner, Explode):
        raise AnalysisException("[UNSUPPORTED_GENERATOR.NESTED_IN_EXPRESSIONS] the generator "
                                f"{inner.sql()} is nested in an expression",
                                error_class="UNSUPPORTED_GENERATOR.NESTED_IN_EXPRESSIONS")
    name = gen.name if isinstance(gen, Alias) else "col"
    plan = Generate(child, inner, name)
    return plan, [AttributeRef(plan.attr) if e is gen else e for e in resolved]


def generate_rdd(planner: Any, plan: Generate) -> Any:
    return planner.execute(plan.children[0]).mapPartitions(partial(_explode, plan=plan))


def _explode(tables: Iterator[pa.Table], plan: Generate) -> Iterator[pa.Table]:
    gen = plan.generator
    for t in tables:
        values = as_array(gen.children[0].eval(t), t.num_rows)
        values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        if gen.outer:
            lengths = pc.fill_null(pc.list_value_length(values), 0).to_numpy(zero_copy_only=False)
            empty = lengths == 0
            values = pc.if_else(pa.array(empty), pa.scalar([None], values.type), values)
        flat = pc.list_flatten(values)
        parents = pc.list_parent_indices(values)
        out = t.take(parents).append_column(plan.attr.column, flat)
        if out.num_rows:
            yield out
