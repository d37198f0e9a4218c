"""Reading byte ranges of bzip2 files: any cut of a file into ranges gives its lines once.

Python's own bz2 is the reference: the files are made by bz2.compress and the lines of
all ranges together must be bz2.decompress's lines, byte for byte."""
from __future__ import annotations

import bz2
import io
import random
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparkctl.rdd import bzip2_split
from sparkctl.rdd.bzip2_split import BLOCK_MAGIC, EOS_MAGIC, Magic, bzip2_is_splittable, bzip2_line_blocks

pytestmark = pytest.mark.timeout(60)

SETTINGS = settings(max_examples=15, deadline=None)


def _line(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.002:
        n = rng.randint(150_000, 300_000)  # longer than a level-1 block
    elif kind < 0.02:
        n = rng.randint(1_000, 20_000)
    else:
        n = rng.randint(0, 120)
    if rng.random() < 0.01:
        body = bytes([rng.randint(97, 122)]) * n  # a run: bzip2's first RLE squeezes it
    else:
        body = bytes(rng.choices(b"abcdefghij klmnopqrstuvwxyz,.", k=n))
    return body + (b"\r\n" if rng.random() < 0.1 else b"\n")


@lru_cache(maxsize=None)
def text(seed: int, size: int, trailing_newline: bool = False) -> bytes:
    """Lines of varied lengths, some CRLF, and (by default) no newline at the very end."""
    rng = random.Random(seed)
    lines = []
    total = 0
    while total < size:
        lines.append(_line(rng))
        total += len(lines[-1])
    data = b"".join(lines)
    return data if trailing_newline else data.rstrip(b"\r\n") + b" the end"


@lru_cache(maxsize=None)
def noise(seed: int, size: int) -> bytes:
    """Random bytes, which bzip2 cannot shrink, with a newline now and then."""
    rng = random.Random(seed)
    data = bytearray(rng.randbytes(size))
    for _ in range(size // 300):
        data[rng.randrange(size)] = 10
    return bytes(data)


@lru_cache(maxsize=None)
def files() -> dict[str, bytes]:
    """Named bzip2 files, level 1 (100 kB blocks) so a few MB make many blocks."""
    a, b, c = text(1, 1_000_000), text(2, 400_000, True), text(3, 500_000)
    long_line = bytes(random.Random(5).choices(b"ab c", k=450_000))  # no newline for 4 blocks
    return {
        "text": bz2.compress(a, 1),
        "newline_at_end": bz2.compress(b, 1),
        "noise": bz2.compress(noise(4, 500_000), 1),
        "streams": bz2.compress(a[:400_000], 1) + bz2.compress(b, 9) + bz2.compress(b"", 3) + bz2.compress(c, 5),
        "empty_streams_first": bz2.compress(b"", 9) + bz2.compress(b"", 1) + bz2.compress(c, 1),
        "long_lines": bz2.compress(long_line + b"\n" + text(6, 100_000) + long_line, 1),
    }


@lru_cache(maxsize=64)
def magic_bits(comp: bytes, magic: int) -> list[int]:
    """Every bit where the 48-bit magic begins, found the slow way through a string of bits."""
    bits = format(int.from_bytes(comp, "big"), f"0{len(comp) * 8}b") if comp else ""
    pattern = format(magic, "048b")
    found = []
    i = bits.find(pattern)
    while i >= 0:
        found.append(i)
        i = bits.find(pattern, i + 1)
    return found


@lru_cache(maxsize=16)
def decompressed(comp: bytes) -> bytes:
    return bz2.decompress(comp)


def read_ranges(comp: bytes, cuts: list[int]) -> list[list[bytes]]:
    """Each range's line blocks, for the cut of the file at ``cuts`` (file ends added)."""
    bounds = sorted({0, len(comp), *(c for c in cuts if 0 <= c <= len(comp))})
    f = io.BytesIO(comp)
    return [list(bzip2_line_blocks(f, lo, hi - lo)) for lo, hi in zip(bounds, bounds[1:])]


def check_cut(comp: bytes, cuts: list[int]) -> None:
    """All ranges' lines, in order, are the file's lines exactly; blocks hold whole lines;
    a range owning no block start gives nothing."""
    reference = decompressed(comp)
    per_range = read_ranges(comp, cuts)
    blocks = [block for blocks in per_range for block in blocks]
    assert b"".join(blocks) == reference
    assert all(blocks)
    assert all(block.endswith(b"\n") for block in blocks[:-1])
    lines = [line for block in blocks for line in block.splitlines(keepends=True)]
    assert lines == reference.splitlines(keepends=True)
    starts = magic_bits(comp, BLOCK_MAGIC)
    bounds = sorted({0, len(comp), *(c for c in cuts if 0 <= c <= len(comp))})
    for (lo, hi), got in zip(zip(bounds, bounds[1:]), per_range):
        if not any(lo * 8 <= bit < hi * 8 for bit in starts):
            assert got == []


@pytest.mark.parametrize("name", sorted(files()))
def test_whole_file_is_one_range(name: str) -> None:
    comp = files()[name]
    assert b"".join(bzip2_line_blocks(io.BytesIO(comp), 0, len(comp))) == bz2.decompress(comp)


@pytest.mark.parametrize("name", sorted(files()))
@pytest.mark.parametrize("deltas", [(-1,), (0,), (1,), (-1, 0, 1)])
def test_cut_at_every_block_boundary(name: str, deltas: tuple[int, ...]) -> None:
    comp = files()[name]
    bits = magic_bits(comp, BLOCK_MAGIC) + magic_bits(comp, EOS_MAGIC)
    assert len(bits) > 4
    check_cut(comp, [bit // 8 + d for bit in bits for d in deltas])


@pytest.mark.parametrize("name", sorted(files()))
@SETTINGS
@given(data=st.data())
def test_any_cut_gives_every_line_once(name: str, data: st.DataObject) -> None:
    comp = files()[name]
    cuts = data.draw(st.lists(st.integers(0, len(comp)), max_size=12))
    check_cut(comp, cuts)


@SETTINGS
@given(n=st.integers(1, 40), level=st.integers(1, 9), newline_at_end=st.booleans())
def test_even_splits_of_small_files(n: int, level: int, newline_at_end: bool) -> None:
    comp = bz2.compress(text(n, 3_000 * n, newline_at_end), level)
    check_cut(comp, [len(comp) * i // n for i in range(1, n)])


def test_a_range_before_the_first_block_owns_nothing() -> None:
    comp = files()["text"]
    f = io.BytesIO(comp)
    assert list(bzip2_line_blocks(f, 0, 4)) == []  # the first block's magic is at byte 4
    for start in (1, 2, 3, 4):  # ... so these ranges own it, and skip no line
        assert b"".join(bzip2_line_blocks(f, start, len(comp))) == bz2.decompress(comp)
    assert b"".join(bzip2_line_blocks(f, 5, len(comp))) != bz2.decompress(comp)


def test_empty_files() -> None:
    for comp in (b"", bz2.compress(b""), bz2.compress(b"") * 3):
        check_cut(comp, list(range(len(comp))))
        assert list(bzip2_line_blocks(io.BytesIO(comp), 0, len(comp) + 10)) == []
    assert list(bzip2_line_blocks(io.BytesIO(files()["text"]), 0, 0)) == []


def test_small_read_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Magics that straddle the chunks the file is scanned in are still found."""
    for chunk in (1_000, 4_099, 65_536):
        monkeypatch.setattr(bzip2_split, "CHUNK", chunk)
        for name in ("streams", "noise"):
            comp = files()[name]
            check_cut(comp, [len(comp) // 3, len(comp) // 2 + 7])


def test_false_magics_are_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    """A magic's pattern can turn up inside compressed data: the block CRC rejects it,
    whether it would begin a block or end one."""
    find = bzip2_split.find_magics

    def with_false_matches(buf: bytes, lo: int, hi: int, base: int) -> list[Magic]:
        found = find(buf, lo, hi, base)
        fakes = []
        for m in found:
            fakes += [Magic(m.bit + 9_001, True), Magic(m.bit + 50_003, False),
                      Magic(m.bit + 60, True)]
        ends = (base + hi) * 8
        return sorted(found + [m for m in fakes if (base + lo) * 8 <= m.bit < ends])

    monkeypatch.setattr(bzip2_split, "find_magics", with_false_matches)
    for name in ("text", "streams"):
        comp = files()[name]
        check_cut(comp, [bit // 8 + d for bit in magic_bits(comp, BLOCK_MAGIC) for d in (2, 1_200, 6_300)])


def planted_magics(chunk: int) -> tuple[bytes, list[Magic]]:
    """Random bytes with each magic planted at each bit shift, beginning on the bytes where
    scanning in ``chunk``-byte steps changes chunk, and on their neighbours."""
    size = chunk * 40
    value = int.from_bytes(random.Random(chunk).randbytes(size), "big")
    planted = []
    for i in range(16):
        magic = (BLOCK_MAGIC, EOS_MAGIC)[i % 2]
        bit = (chunk * (2 * i + 2) + (i % 3) - 1) * 8 + i // 2
        shift = size * 8 - bit - 48
        value = value & ~(((1 << 48) - 1) << shift) | magic << shift
        planted.append(Magic(bit, magic == BLOCK_MAGIC))
    return value.to_bytes(size, "big"), planted


@pytest.mark.parametrize("chunk", [64, 499, 500, 1_000])
def test_magics_found_once_at_every_bit_shift_and_chunk_edge(chunk: int) -> None:
    data, planted = planted_magics(500)
    expected = sorted([Magic(b, True) for b in magic_bits(data, BLOCK_MAGIC)]
                      + [Magic(b, False) for b in magic_bits(data, EOS_MAGIC)])
    assert set(planted) <= set(expected)
    assert bzip2_split.find_magics(data, 0, len(data) - 6, 0) == expected
    reader = bzip2_split.BlockReader(io.BytesIO(data), 0, chunk)
    found: list[Magic] = []
    while (m := reader.magic(len(found))) is not None:
        found.append(m)
    assert found == expected


def test_truncated_file_is_an_error() -> None:
    comp = files()["text"]
    with pytest.raises((OSError, ValueError)):  # bz2 says "ended before the end-of-stream marker"
        bz2.decompress(comp[:len(comp) * 2 // 3])
    with pytest.raises(OSError):
        list(bzip2_line_blocks(io.BytesIO(comp[:len(comp) * 2 // 3]), 0, len(comp)))


def test_not_bzip2_is_an_error() -> None:
    with pytest.raises(OSError):
        list(bzip2_line_blocks(io.BytesIO(b"hello\nworld\n"), 0, 12))


def test_trailing_garbage_with_a_magic_is_ignored() -> None:
    """bz2.decompress ignores what follows the last stream when it is not a stream."""
    garbage = (BLOCK_MAGIC << 2).to_bytes(7, "big") + random.Random(3).randbytes(5_000)
    garbage += (EOS_MAGIC << 5).to_bytes(7, "big") + b"\0" * 8
    comp = files()["newline_at_end"] + garbage
    check_cut(comp, [len(comp) - 5_000, len(comp) - 100])


def test_fsspec_memory_file() -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    comp = files()["streams"]
    fs.pipe("/bzip2_split/t.txt.bz2", comp)
    try:
        cuts = [0, len(comp) // 4, len(comp) // 2, len(comp) * 3 // 4, len(comp)]
        out: list[bytes] = []
        for lo, hi in zip(cuts, cuts[1:]):
            with fs.open("/bzip2_split/t.txt.bz2", "rb") as f:
                out += bzip2_line_blocks(f, lo, hi - lo)
        assert b"".join(out) == bz2.decompress(comp)
    finally:
        fs.rm("/bzip2_split", recursive=True)


def test_splittable_by_extension() -> None:
    assert bzip2_is_splittable("data/big.txt.bz2")
    assert not bzip2_is_splittable("data/big.txt.gz")
