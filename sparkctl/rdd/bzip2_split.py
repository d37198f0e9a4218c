"""Reading one byte range of a bzip2 file, as Hadoop's ``BZip2Codec`` splits its input.

A bzip2 file is a run of streams (``BZh1``..``BZh9``, then blocks, then an end-of-stream
marker and a combined CRC), and every block begins with the 48-bit magic
``0x314159265359`` at any bit position, not byte aligned. A range owns the blocks whose
magic begins in its bytes, so any cut of a file into ranges shares its blocks out once:

    range bytes --scan 16 shifted magics--> candidate bit positions
        --shift block to byte 0, wrap as a one-block stream--> bz2 (checks the block CRC)
        --> block text --Hadoop's line rule--> blocks of whole lines

A candidate the CRC rejects is a false match inside compressed data and is passed over.
Lines follow Hadoop's reader of split compressed input: a range whose first block is not
the file's first skips its first line (the previous range read it), and every range reads
into the following blocks to finish the line that crosses (or starts at) its end.
"""
from __future__ import annotations

import bz2
from typing import BinaryIO, Iterator, NamedTuple

BLOCK_MAGIC = 0x314159265359
EOS_MAGIC = 0x177245385090
_MASK48 = (1 << 48) - 1
# the header of the one-block streams handed to bz2: level 9 admits a block of any level
_HEADER = int.from_bytes(b"BZh9", "big")
# longest compressed block: 900k symbols of at most 20-bit codes, plus its tables
MAX_BLOCK_BITS = 20_000_000
CHUNK = 4 << 20  # bytes read and scanned at a time


class Magic(NamedTuple):
    """A bit-exact match of a block magic (``block``) or an end-of-stream magic."""

    bit: int
    block: bool


class Block(NamedTuple):
    """A block that decompressed with a good CRC: from its magic to the next magic."""

    start: int  # bit of its magic
    end: int  # bit of the magic after it (a block's or the end of its stream)
    text: bytes
    next_index: int  # index of the magic at ``end`` in the reader's list


def bzip2_is_splittable(path: str) -> bool:
    """Whether a file is read in byte ranges: a bzip2 file, by its extension."""
    return path.endswith(".bz2")


def _shifted(magic: int) -> list[tuple[int, bytes]]:
    """For each bit shift s, the 5 bytes the magic surely fills when it begins s bits into a byte."""
    return [(s, (magic << (8 - s)).to_bytes(7, "big")[1:6]) for s in range(8)]


_PATTERNS = [(magic, magic == BLOCK_MAGIC, _shifted(magic)) for magic in (BLOCK_MAGIC, EOS_MAGIC)]


def find_magics(buf: bytes, lo: int, hi: int, base: int) -> list[Magic]:
    """The magics beginning in bytes [lo, hi) of ``buf`` (file offset ``base``), sorted.

    bytes.find runs the 16 searches at C speed; each hit is checked bit-exactly."""
    found = []
    for magic, block, shifts in _PATTERNS:
        for s, pattern in shifts:
            # the 5 bytes sit one byte into the magic: magics beginning in [lo, hi)
            p = buf.find(pattern, lo + 1, hi + 5)
            while p >= 0:
                k = p - 1  # the byte the magic begins in; a real one has 4 bytes or more after it
                if k + 7 <= len(buf) and int.from_bytes(buf[k:k + 7], "big") >> (8 - s) & _MASK48 == magic:
                    found.append(Magic((base + k) * 8 + s, block))
                p = buf.find(pattern, p + 1, hi + 5)
    found.sort()
    return found


def decode_block(data: bytes, first_bit: int, start: int, end: int) -> bytes | None:
    """The text of the block at bits [start, end) of ``data`` (whose first bit is file bit
    ``first_bit``), or None when bz2 rejects it as a one-block stream."""
    n = end - start
    if n < 80:  # a magic and a CRC at least
        return None
    lo, hi = (start - first_bit) // 8, (end - first_bit + 7) // 8
    head_bits = (start - first_bit) % 8
    bits = int.from_bytes(data[lo:hi], "big") >> ((hi - lo) * 8 - head_bits - n)
    bits &= (1 << n) - 1
    crc = bits >> (n - 80) & 0xFFFFFFFF  # for one block the stream's combined CRC is its own
    total = 32 + n + 80
    pad = -total % 8
    stream = (((_HEADER << n | bits) << 80 | EOS_MAGIC << 32 | crc) << pad).to_bytes((total + pad) // 8, "big")
    decompressor = bz2.BZ2Decompressor()
    try:
        text = decompressor.decompress(stream)
    except OSError:
        return None
    if not decompressor.eof or decompressor.unused_data:
        return None
    return text


class BlockReader:
    """The blocks of a bzip2 file from a byte offset on, read in large chunks.

    Keeps the file's bytes from the block being resolved onwards, and the magics found
    in them."""

    def __init__(self, f: BinaryIO, start: int, chunk: int | None = None) -> None:
        self._f = f
        self._chunk = chunk or CHUNK
        self._buf = b""
        self._base = start  # file offset of _buf[0]
        self._eof: int | None = None  # file size, once a read came back short
        self._magics: list[Magic] = []
        self._scanned = start  # magics beginning before this byte are in _magics
        self._pin = start  # the earliest byte still needed

    def _read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            part = self._f.read(n)
            if not part:
                break
            parts.append(part)
            n -= len(part)
        return b"".join(parts)

    def _fill(self, hi: int) -> None:
        """Hold bytes [pin, hi) of the file (fewer at its end), reading a chunk at least."""
        have = self._base + len(self._buf)
        if not self._base <= self._pin <= have:  # nothing worth keeping: start again at pin
            self._buf, self._base = b"", self._pin
            have = self._pin
        if hi <= have or (self._eof is not None and have >= self._eof):
            return
        self._f.seek(have)
        want = max(hi - have, self._chunk)
        more = self._read(want)
        self._buf = self._buf[self._pin - self._base:] + more
        self._base = self._pin
        if len(more) < want:
            self._eof = self._base + len(self._buf)

    def _scan(self) -> bool:
        """Find the magics of the next chunk; False at the end of the file."""
        lo = self._scanned
        if self._eof is not None and lo >= self._eof:
            return False
        self._fill(lo + self._chunk + 6)
        hi = lo + self._chunk
        if self._eof is not None:
            hi = min(hi, self._eof)
        if hi <= lo:
            return False
        self._magics += find_magics(self._buf, lo - self._base, hi - self._base, self._base)
        self._scanned = hi
        return True

    def magic(self, i: int) -> Magic | None:
        """The i-th magic from the start offset on, or None past the last."""
        while i >= len(self._magics):
            if not self._scan():
                return None
        return self._magics[i]

    def resolve(self, i: int) -> Block | None:
        """The block beginning at magic i, or None if the magic is a false match.

        Its end is the first later magic that makes it decompress: a false match inside
        it would cut it short, and then the CRC fails."""
        first = self.magic(i)
        if first is None or not first.block:
            return None
        start = first.bit
        self._pin = max(self._pin, start // 8)  # bytes before the block are done with
        j = i + 1
        while (after := self.magic(j)) is not None and after.bit - start <= MAX_BLOCK_BITS:
            self._fill((after.bit + 7) // 8)
            text = decode_block(self._buf, self._base * 8, start, after.bit)
            if text is not None:
                return Block(start, after.bit, text, j)
            j += 1
        return None

    def first_block(self, lo: int, hi: int) -> Block | None:
        """The first block whose magic begins at a bit in [lo, hi), if any."""
        i = 0
        while (m := self.magic(i)) is not None and m.bit < hi:
            if m.bit >= lo and (found := self.resolve(i)) is not None:
                return found
            i += 1
        return None

    def next_block(self, block: Block, hi: int | None = None) -> Block | None:
        """The block after ``block``, if it begins before bit ``hi``.

        Raises OSError if the stream goes on there but no good block follows."""
        i = block.next_index
        m = self.magic(i)
        if m is not None and m.block:  # the stream goes on: a block must begin right here
            if hi is not None and m.bit >= hi:
                return None
            found = self.resolve(i)
            if found is None:
                raise OSError(f"bzip2 data is corrupt or truncated after bit {block.end}")
            return found
        # the end of a stream: the next stream's first block is further on
        i += 1
        while (m := self.magic(i)) is not None and (hi is None or m.bit < hi):
            if (found := self.resolve(i)) is not None:
                return found
            i += 1
        return None


def _first_in_file(f: BinaryIO, bit: int) -> bool:
    """Whether the block at ``bit`` is the file's first: only stream headers and empty
    streams (``BZhN``, end-of-stream magic, CRC: 14 bytes each) come before it."""
    pos, target = 0, bit // 8
    if bit % 8 or (target - 4) % 14:
        return False
    while pos + 4 < target:  # seldom more than one look: most files have no empty stream
        f.seek(pos)
        head = f.read(14)
        if len(head) < 14 or not _is_header(head) or int.from_bytes(head[4:10], "big") != EOS_MAGIC:
            return False
        pos += 14
    if pos + 4 != target:
        return False
    f.seek(pos)
    return _is_header(f.read(4))


def _is_header(head: bytes) -> bool:
    """``BZh`` and a block size level, 1 to 9."""
    return len(head) >= 4 and head[:3] == b"BZh" and 0x31 <= head[3] <= 0x39


def bzip2_line_blocks(f: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """Blocks of whole lines (each block ends with b"\\n", except possibly the file's very last line)
    of the decompressed text owned by the byte range [start, start + length) of the bzip2 file f.

    The range owns the blocks whose magic begins at a bit in [start*8, (start+length)*8).
    Raises OSError when the file is not bzip2 data or is cut short inside a stream."""
    if start == 0:
        f.seek(0)
        head = f.read(4)
        if head and not _is_header(head):
            raise OSError("Invalid data stream: not a bzip2 file")
    if length <= 0:
        return
    end_bit = (start + length) * 8
    reader = BlockReader(f, start)
    block = reader.first_block(start * 8, end_bit)
    if block is None:
        return
    # the line the first block begins in is the previous range's, unless no text precedes it
    skipping = block.start != 32 and not _first_in_file(f, block.start)
    partial: list[bytes] = []  # the line being read, in pieces, while it crosses blocks
    while True:
        text = block.text
        if skipping:
            nl = text.find(b"\n")
            if nl >= 0:
                skipping = False
                text = text[nl + 1:]
        if not skipping:
            cut = text.rfind(b"\n")
            if cut < 0:
                partial.append(text)
            else:
                partial.append(text[:cut + 1])
                yield b"".join(partial)
                partial = [text[cut + 1:]]
        following = reader.next_block(block, end_bit)
        if following is None:
            break
        block = following
    if skipping:  # no line begins in the range's blocks
        return
    # finish the line that crosses the end, or the one that starts right at it
    following = reader.next_block(block)
    while following is not None:
        nl = following.text.find(b"\n")
        if nl >= 0:
            partial.append(following.text[:nl + 1])
            break
        partial.append(following.text)
        following = reader.next_block(following)
    tail = b"".join(partial)
    if tail:
        yield tail
