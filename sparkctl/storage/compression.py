"""Shuffle and spill compression, as Spark's settings name it.

``spark.shuffle.compress`` compresses the shuffle files (the map outputs reducers read,
and the map side's own spills, which are copied into them as they are);
``spark.shuffle.spill.compress`` the sorted runs ``ExternalAppendOnlyMap`` and
``ExternalSorter`` spill; ``spark.io.compression.codec`` picks the codec (``lz4``, Spark's
default, or ``zstd`` at ``spark.io.compression.zstd.level``).

Each pickled batch is compressed on its own, as one frame of the codec's standard format
(an LZ4 frame, a Zstandard frame), never record by record. A frame starts with its codec's
magic number and a pickle with the PROTO opcode (0x80), so a reader needs no setting: the
bytes say how they were written. A batch that would not shrink is stored as it is.

```
 driver                                     executor (its task slots are forked from it)
 SparkConf ──executor_settings(conf)──▶ ExecutorSettings.io_compression ──configure()──┐
   (an explicitly set codec whose library                                                │
    is missing stops the context here)     writers: shuffle_codec(), spill_codec() ◀────┘
                                           readers: decompress(payload), by its magic
```

Neither codec library is part of the base install. When the codec is Spark's default
(``lz4``, not set anywhere) and ``lz4`` is not installed, shuffles and spills are written
uncompressed, with one warning; a codec set explicitly whose library is missing is an
error naming the extra to install (``pip install 'sparkctl[lz4]'``).
"""
from __future__ import annotations

import importlib.util
import logging
from typing import Any

from sparkctl.errors import ConfigError
from sparkctl.settings import IO_CODEC_EXTRAS

log = logging.getLogger("sparkctl.storage")

LZ4_MAGIC = b"\x04\x22\x4d\x18"  # 0x184D2204, little-endian: an LZ4 frame
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"  # 0xFD2FB528, little-endian: a Zstandard frame
CODEC_KEY = "spark.io.compression.codec"


def library_installed(codec: str) -> bool:
    """Whether the Python package behind *codec* (``lz4`` or ``zstd``) can be imported."""
    return importlib.util.find_spec("lz4" if codec == "lz4" else "zstandard") is not None


def missing_library(codec: str) -> str:
    """One line saying what to install for *codec*."""
    package = "lz4" if codec == "lz4" else "zstandard"
    return (f"{CODEC_KEY} {codec} needs the {package} package, which is not installed: "
            f"pip install 'sparkctl[{IO_CODEC_EXTRAS[codec]}]'")


def _lz4_frame() -> Any:
    try:
        import lz4.frame  # type: ignore[import-not-found, import-untyped]
    except ImportError:
        raise OSError(missing_library("lz4")) from None
    return lz4.frame


def preload() -> None:
    """Import Spark's default codec's library if it is installed: a fork server does, so
    the executors it forks share it instead of each importing it."""
    if library_installed("lz4"):
        _lz4_frame()


def _zstandard() -> Any:
    try:
        import zstandard  # type: ignore[import-not-found]
    except ImportError:
        raise OSError(missing_library("zstd")) from None
    return zstandard


# LZ4 frames come in four block sizes; spark.io.compression.lz4.blockSize picks the
# smallest that holds it (Spark's default, 32k, gives 64 KiB blocks)
_LZ4_BLOCKS = ((64 << 10, 4), (256 << 10, 5), (1 << 20, 6), (4 << 20, 7))


class Codec:
    """Compresses one pickled batch into one frame of the codec's own format."""

    def __init__(self, name: str, zstd_level: int = 1, lz4_block_size: int = 32 << 10) -> None:
        self.name = name
        self.zstd_level = zstd_level
        self.lz4_block = next((flag for size, flag in _LZ4_BLOCKS if lz4_block_size <= size), 7)
        self._compress: Any = None  # made at first use, in the process that uses it

    def load(self) -> Codec:
        """Import the codec's library now (raises OSError naming what to install)."""
        if self._compress is None:
            if self.name == "lz4":
                frame = _lz4_frame()
                block = self.lz4_block
                self._compress = lambda d: frame.compress(d, block_size=block, store_size=True)
            else:
                self._compress = _zstandard().ZstdCompressor(level=self.zstd_level).compress
        return self

    def compress(self, data: bytes) -> bytes:
        if self._compress is None:
            self.load()
        return self._compress(data)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"Codec({self.name!r})"


_zstd_decompressor: Any = None


def decompress(payload: bytes) -> bytes:
    """The pickled bytes of one compressed batch, whichever codec wrote it."""
    global _zstd_decompressor
    magic = payload[:4]
    if magic == LZ4_MAGIC:
        return _lz4_frame().decompress(payload)  # type: ignore[no-any-return]
    if magic == ZSTD_MAGIC:
        if _zstd_decompressor is None:
            _zstd_decompressor = _zstandard().ZstdDecompressor()
        return _zstd_decompressor.decompress(payload)  # type: ignore[no-any-return]
    raise OSError(f"a batch starts with bytes {bytes(magic[:4]).hex()}: neither a pickle nor an LZ4 or "
                  "Zstandard frame (a damaged shuffle or spill file?)")


# ------------------------------------------------------------------ configuration
# The driver turns the application's settings into a small dict (it travels as JSON to
# the executors); each executor configures this module once, before forking its slots.

_state: dict[str, Codec | None] | None = None


def executor_settings(conf: Any) -> dict[str, Any]:
    """What an executor needs from *conf* (a SparkConf). A codec set explicitly whose
    library is not installed here is a ConfigError; the default codec falls back to no
    compression, with one warning."""
    from sparkctl.conf import check_setting

    shuffle = conf.get_bool("spark.shuffle.compress", True)
    spill = conf.get_bool("spark.shuffle.spill.compress", True)
    explicit = conf.contains(CODEC_KEY)
    codec = check_setting(CODEC_KEY, conf.get(CODEC_KEY) or "lz4", conf.source(CODEC_KEY))
    if (shuffle or spill) and not library_installed(codec):
        if explicit:
            raise ConfigError(f"{conf.source(CODEC_KEY)}: {missing_library(codec)}", key=CODEC_KEY, value=codec,
                              source=conf.source(CODEC_KEY))
        _warn_default_missing()
        shuffle = spill = False
    return {
        "shuffle": shuffle, "spill": spill, "codec": codec, "explicit": explicit,
        "zstd_level": conf.get_int("spark.io.compression.zstd.level", 1),
        "lz4_block_size": conf.get_size("spark.io.compression.lz4.blockSize", "k") or (32 << 10),
    }


_warned = False


def _warn_default_missing() -> None:
    global _warned
    if not _warned:
        _warned = True
        log.warning("Shuffle and spill files are not compressed: %s is lz4 by default and the lz4 package is "
                    "not installed (pip install 'sparkctl[lz4]', or set spark.shuffle.compress=false and "
                    "spark.shuffle.spill.compress=false to say so)", CODEC_KEY)


def configure(settings: dict[str, Any] | None) -> None:
    """Set this process's codecs from :func:`executor_settings`' dict. None (an executor
    started without one, or a process that uses the storage structures directly, as unit
    tests do) writes uncompressed files: the driver's settings are what turn compression on."""
    global _state
    if settings is None:
        settings = {"shuffle": False, "spill": False}
    name = settings.get("codec") or "lz4"
    if (settings.get("shuffle") or settings.get("spill")) and not library_installed(name):
        # this host lacks what the driver's has: an explicit codec fails the first write
        # that needs it (with missing_library's line); the default one is dropped here
        if not settings.get("explicit"):
            log.warning("This executor writes uncompressed shuffle and spill files: %s", missing_library(name))
            settings = dict(settings, shuffle=False, spill=False)
    codec = Codec(name, int(settings.get("zstd_level", 1)), int(settings.get("lz4_block_size", 32 << 10)))
    if (settings.get("shuffle") or settings.get("spill")) and library_installed(name):
        codec.load()  # here, before an executor forks its slots: not once in every slot
    _state = {"shuffle": codec if settings.get("shuffle") else None,
              "spill": codec if settings.get("spill") else None}


def shuffle_codec() -> Codec | None:
    """The codec of shuffle files in this process (None: uncompressed)."""
    if _state is None:
        configure(None)
    assert _state is not None
    return _state["shuffle"]


def spill_codec() -> Codec | None:
    """The codec of aggregation and sort spills in this process (None: uncompressed)."""
    if _state is None:
        configure(None)
    assert _state is not None
    return _state["spill"]

