"""Keys land in the same partition in every process, whatever its hash seed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkctl.util.hashing import portable_hash

ROOT = Path(__file__).resolve().parent.parent
KEYS = ["", "a", "word", "ünïcödé", "日本", b"bytes", ("t", 1, b"x"), (None, 2.5), frozenset({"a", "b"}), 42, -7,
        3.25, None, True]
pytestmark = pytest.mark.timeout(60)


def _hashes_with_seed(seed: str) -> list[int]:
    code = ("import json; from sparkctl.util.hashing import portable_hash; from tests.test_hashing import KEYS; "
            "print(json.dumps([portable_hash(k) for k in KEYS]))")
    env = dict(os.environ, PYTHONHASHSEED=seed, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


def test_portable_hash_ignores_the_hash_seed() -> None:
    first = _hashes_with_seed("1")
    assert first == _hashes_with_seed("12345") == _hashes_with_seed("random")
    assert first == [portable_hash(k) for k in KEYS]


def test_equal_keys_hash_equal() -> None:
    assert portable_hash(("a", 1)) == portable_hash(("a", 1))
    assert portable_hash(frozenset({"x", "y"})) == portable_hash(frozenset({"y", "x"}))
    assert portable_hash(1) == portable_hash(1.0) == portable_hash(True)  # equal keys, one group
