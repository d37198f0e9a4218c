"""docs/compatibility.md is generated from the installed pyspark and sparkctl's modules:
it must be what the generator writes today, and the generator must classify names right."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_compatibility", ROOT / "docs" / "gen_compatibility.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(60)
def test_the_table_is_not_stale() -> None:
    pytest.importorskip("pyspark", reason="the test extra installs pyspark, which the table is made from")
    expected = generator().render()
    assert (ROOT / "docs" / "compatibility.md").read_text(encoding="utf-8") == expected, \
        "docs/compatibility.md is stale: run python docs/gen_compatibility.py"


class Theirs:
    def same(self, a: int, b: int = 0) -> int: ...
    def fewer(self, a: int, b: int = 0) -> int: ...
    def flexible(self, a: int, b: int = 0) -> int: ...
    def refused(self) -> None: ...
    def absent(self) -> None: ...
    def noted(self) -> None: ...
    attribute = 1


class Ours:
    def __init__(self) -> None:
        self.attribute = 1

    def same(self, a: int, b: int = 0) -> int: ...
    def fewer(self, a: int) -> int: ...
    def flexible(self, a: int, **kwargs: Any) -> int: ...

    def refused(self) -> None:
        from sparkctl.errors import DataFramesNotSupportedError
        raise DataFramesNotSupportedError("refused")

    def noted(self) -> None: ...


@pytest.mark.timeout(30)
def test_each_kind_of_name_is_classified() -> None:
    gen = generator()
    gen.DIFFERENCES[("Ours", "noted")] = "behaves otherwise"

    def status(name: str) -> tuple[str, str]:
        return gen.classify("Ours", name, Ours, Theirs)

    assert status("same") == ("supported", "")
    assert status("fewer") == ("supported, with a difference", "does not take `b`")
    assert status("flexible") == ("supported", "")
    assert status("refused") == ("not supported", "raises an error that names it")
    assert status("absent") == ("not supported", "")
    assert status("noted") == ("supported, with a difference", "behaves otherwise")
    assert status("attribute") == ("supported", "")
