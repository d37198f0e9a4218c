"""Saying *which* object made a closure unpicklable.

cloudpickle's own error names a type ("cannot pickle '_thread.lock' object") but not
where it hides. We walk what the closure references (RDD fields, functions' free
variables and globals, containers) and report the path to the innermost object that still
fails on its own, e.g. ``map function parse (app.py:12) -> global 'conn' -> <socket>``.
"""
from __future__ import annotations

import types
from typing import Any

import cloudpickle

_MAX_DEPTH = 12


def _fails(obj: Any) -> bool:
    try:
        cloudpickle.dumps(obj)
        return False
    except Exception:
        return True


def _describe_function(fn: types.FunctionType) -> str:
    code = fn.__code__
    return f"function {fn.__qualname__} ({code.co_filename}:{code.co_firstlineno})"


def _children(obj: Any) -> list[tuple[str, Any]]:
    if isinstance(obj, types.FunctionType):
        out: list[tuple[str, Any]] = []
        if obj.__closure__:
            for name, cell in zip(obj.__code__.co_freevars, obj.__closure__):
                try:
                    out.append((f"free variable {name!r}", cell.cell_contents))
                except ValueError:
                    pass
        names = set(obj.__code__.co_names)
        for const in obj.__code__.co_consts:
            if isinstance(const, types.CodeType):
                names |= set(const.co_names)
        for name in sorted(names):
            if name in obj.__globals__ and not isinstance(obj.__globals__[name], types.ModuleType):
                out.append((f"global {name!r}", obj.__globals__[name]))
        return out
    if isinstance(obj, types.MethodType):
        return [("bound object", obj.__self__), ("method", obj.__func__)]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [(f"item {i}", x) for i, x in enumerate(obj)]
    if isinstance(obj, dict):
        return [(f"key {k!r}", v) for k, v in obj.items()]
    state = getattr(obj, "__dict__", None)
    if isinstance(state, dict):
        return [(f"field {k!r}", v) for k, v in state.items() if k not in ("ctx", "_partitions", "_deps")]
    return []


def describe_unpicklable(obj: Any) -> str:
    """A path from ``obj`` to the innermost object that cannot be pickled."""
    path: list[str] = []
    seen: set[int] = set()
    current = obj
    for _ in range(_MAX_DEPTH):
        seen.add(id(current))
        for label, child in _children(current):
            if id(child) in seen or not _fails(child):
                continue
            label = _describe_function(child) if isinstance(child, types.FunctionType) else label
            path.append(label)
            current = child
            break
        else:
            break
    leaf = f"{type(current).__module__}.{type(current).__qualname__} object"
    return " -> ".join(path + [leaf]) if path else leaf
