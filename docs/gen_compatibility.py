"""Write docs/compatibility.md: every public name of PySpark's core classes, and whether
sparkctl has it.

    python docs/gen_compatibility.py            # rewrites docs/compatibility.md
    python docs/gen_compatibility.py --check    # exit 1 if the file is stale

The table is never edited by hand. For each public name of the installed pyspark's class
it asks sparkctl's class of the same name:

- missing                                     -> not supported
- present, but its code raises a NotSupportedError -> not supported (says so when called)
- present, with parameters PySpark's has and ours lacks -> supported, with a difference
- present, with a note in DIFFERENCES below   -> supported, with a difference
- otherwise                                   -> supported

DIFFERENCES holds the behaviour differences a signature cannot show; each one is
described at length in README's "Differences from PySpark".
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "docs", "compatibility.md")

#: (PySpark's module, sparkctl's module, class name)
CLASSES = [
    ("pyspark", "sparkctl", "SparkContext"),
    ("pyspark", "sparkctl", "RDD"),
    ("pyspark", "sparkctl", "SparkConf"),
    ("pyspark", "sparkctl", "TaskContext"),
    ("pyspark", "sparkctl", "BarrierTaskContext"),
    ("pyspark", "sparkctl", "SparkFiles"),
    ("pyspark.status", "sparkctl.status", "StatusTracker"),
    ("pyspark.broadcast", "sparkctl.broadcast", "Broadcast"),
    ("pyspark.accumulators", "sparkctl.accumulators", "Accumulator"),
    ("pyspark.sql", "sparkctl.sql", "SparkSession"),
    ("pyspark.sql", "sparkctl.sql", "DataFrame"),
    ("pyspark.sql", "sparkctl.sql", "Column"),
    ("pyspark.sql", "sparkctl.sql", "GroupedData"),
    ("pyspark.sql", "sparkctl.sql", "DataFrameReader"),
    ("pyspark.sql", "sparkctl.sql", "DataFrameWriter"),
    ("pyspark.sql", "sparkctl.sql", "Row"),
    ("pyspark.sql.window", "sparkctl.sql.window", "Window"),
    ("pyspark.sql.window", "sparkctl.sql.window", "WindowSpec"),
]

#: Behaviour that differs although the name and its parameters are there.
DIFFERENCES = {
    ("SparkContext", "serializer"): "accepted and ignored: data always travels as pickled batches",
    ("SparkContext", "resources"): "always empty: no custom resource scheduling",
    ("SparkContext", "setInterruptOnCancel"): "only recorded: cancelled tasks are always stopped",
    ("SparkContext", "version"): "sparkctl's version",
    ("RDD", "countApproxDistinct"): "counts exactly",
    ("TaskContext", "resources"): "always empty: no custom resource scheduling",
    ("BarrierTaskContext", "resources"): "always empty: no custom resource scheduling",
    ("SparkSession", "version"): "sparkctl's version",
    ("SparkSession", "conf"): "changing a setting the SparkContext reads only at start raises ConfigError",
    ("DataFrameReader", "csv"): "the options of docs: header, sep, inferSchema, nullValue, quote, escape, mode...; "
                                "not every Spark option",
    ("DataFrame", "explain"): (
        "every mode prints Spark's sections and operator names (pushed and partition filters, "
        'exchanges, partial and final aggregates, the join strategy that runs); attribute ids are '
        "sparkctl's, the parsed plan is the analysed one (plans are analysed as they are built) and"
        ' `codegen` finds no subtree (there is no whole-stage code generation)'),
    ("DataFrame", "repartition"): "without columns, round-robin; with columns, hashed (another hash than Spark's)",
    ("SparkSession", "sql"): "SELECT queries over temporary views; no DDL or DML",
}

NOT_SUPPORTED_MARKERS = ("NotSupportedError(", "raise NotImplementedError")


def _signature_gap(ours: Any, theirs: Any) -> list[str]:
    """Parameters PySpark's callable takes and ours does not (none when ours takes **kwargs)."""
    try:
        a, b = inspect.signature(ours), inspect.signature(theirs)
    except (TypeError, ValueError):
        return []
    mine = a.parameters
    if any(p.kind is p.VAR_KEYWORD for p in mine.values()):
        return []
    return [name for name, p in b.parameters.items()
            if name not in mine and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name != "self"]


def _raises_not_supported(obj: Any) -> bool:
    target = obj.fget if isinstance(obj, property) else obj
    try:
        source = inspect.getsource(target)
    except (TypeError, OSError):
        return False
    return any(marker in source for marker in NOT_SUPPORTED_MARKERS)


def _set_on_instances(cls: Any, name: str) -> bool:
    """Whether *cls*'s own code assigns ``self.<name>``: an instance attribute, which the
    class itself does not show."""
    try:
        source = inspect.getsource(cls)
    except (TypeError, OSError):
        return False
    return f"self.{name} =" in source or f"self.{name}:" in source


def classify(cls_name: str, name: str, ours_cls: Any, theirs_cls: Any) -> tuple[str, str]:
    if not hasattr(ours_cls, name):
        return ("supported", "") if _set_on_instances(ours_cls, name) else ("not supported", "")
    ours = inspect.getattr_static(ours_cls, name)
    theirs = inspect.getattr_static(theirs_cls, name)
    if not isinstance(ours, type) and _raises_not_supported(ours):
        return "not supported", "raises an error that names it"
    notes = []
    if (cls_name, name) in DIFFERENCES:
        notes.append(DIFFERENCES[(cls_name, name)])
    if callable(ours) and callable(theirs) and not isinstance(ours, type):
        func = ours.__func__ if isinstance(ours, (classmethod, staticmethod)) else ours
        their_func = theirs.__func__ if isinstance(theirs, (classmethod, staticmethod)) else theirs
        gap = _signature_gap(func, their_func)
        if gap:
            notes.append("does not take " + ", ".join(f"`{g}`" for g in gap))
    return ("supported, with a difference" if notes else "supported"), "; ".join(notes)


def render() -> str:
    import pyspark
    lines = [
        "# PySpark compatibility",
        "",
        f"Generated by `docs/gen_compatibility.py` from pyspark {pyspark.__version__}: every public",
        "name of PySpark's core classes and whether sparkctl's class of the same name has it. Do not",
        "edit by hand; `tests/test_compatibility_doc.py` fails when this file is stale. README's",
        "\"Differences from PySpark\" says more about each difference.",
        "",
        "| class | supported | with a difference | not supported |",
        "| --- | ---: | ---: | ---: |",
    ]
    sections: list[str] = []
    for their_mod, our_mod, cls_name in CLASSES:
        theirs_cls = getattr(importlib.import_module(their_mod), cls_name)
        ours_cls = getattr(importlib.import_module(our_mod), cls_name, None)
        names = sorted(n for n in dir(theirs_cls) if not n.startswith("_"))
        counts = {"supported": 0, "supported, with a difference": 0, "not supported": 0}
        rows = []
        for name in names:
            status, note = ("not supported", "no such class") if ours_cls is None else \
                classify(cls_name, name, ours_cls, theirs_cls)
            counts[status] += 1
            rows.append(f"| `{name}` | {status} | {note} |")
        lines.append(f"| [`{cls_name}`](#{cls_name.lower()}) | {counts['supported']} | "
                     f"{counts['supported, with a difference']} | {counts['not supported']} |")
        sections += ["", f"## {cls_name}", "", f"`{their_mod}.{cls_name}` against `{our_mod}.{cls_name}`.", "",
                     "| name | status | difference |", "| --- | --- | --- |", *rows]
    return "\n".join(lines + sections) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/compatibility.md is stale")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    text = render()
    if args.check:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUTPUT} is stale: run python docs/gen_compatibility.py", file=sys.stderr)
                return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
