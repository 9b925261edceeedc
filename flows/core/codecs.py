"""The whole-file codecs of `destination.compression`: each one's extension, media type and
stream compressor, registered once.

A codec wraps the file the writer writes (format → compression), so it applies to every
format, Parquet included (whose column codecs are `format_options.parquet_compression`). Each
compressor streams into the counting file under it, so `max_file_mb` counts compressed bytes,
and each is deterministic: the same rows give the same bytes (gzip's header holds no time and
no name; zstd runs on one thread).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from dataclasses import dataclass
from typing import BinaryIO, Literal, cast, get_args

Compression = Literal["none", "gzip", "zstd", "bz2", "xz"]
COMPRESSIONS: tuple[Compression, ...] = get_args(Compression)


@dataclass(frozen=True)
class Codec:
    """What the rest of the pipe knows about a codec."""

    extension: str  # added after the rest of a file name: orders.csv.zst
    media_type: str  # Content-Type of an HTTP POST and of the gateway's download


# Levels are each tool's own default (gzip -6, zstd -3, bzip2 -9, xz -6), what a partner
# gets from the command line. xz -6 needs about 94 MB per open part, bzip2 about 8 MB.
GZIP_LEVEL = 6
ZSTD_LEVEL = 3
BZ2_LEVEL = 9
XZ_PRESET = 6

CODECS: dict[str, Codec] = {
    "gzip": Codec(".gz", "application/gzip"),
    "zstd": Codec(".zst", "application/zstd"),
    "bz2": Codec(".bz2", "application/x-bzip2"),
    "xz": Codec(".xz", "application/x-xz"),
}


# OpenPGP encryption (`destination.pgp`) wraps the codec's output (format → compression →
# encryption): its extension comes after the codec's, `orders.csv.gz.pgp` (`.asc` armored).
# The names of a file's layers are joined with `+`, e.g. `gzip+pgp` (Destination.file_codecs).
ENCRYPTIONS: dict[str, Codec] = {
    "pgp": Codec(".pgp", "application/pgp-encrypted"),
    "asc": Codec(".asc", "application/pgp-encrypted"),
}


def _layers(compression: str) -> list[Codec]:
    found = (CODECS.get(name) or ENCRYPTIONS.get(name) for name in compression.split("+"))
    return [codec for codec in found if codec is not None]


def codec_suffix(compression: str) -> str:
    """The extension a codec adds to file names (`.gz`, `.gz.pgp` when encrypted too), or ""
    for none."""
    return "".join(codec.extension for codec in _layers(compression))


def codec_media_type(compression: str) -> str | None:
    """The media type of a file its outer layer gives (`application/gzip`,
    `application/pgp-encrypted`), or None when the format's own applies."""
    layers = _layers(compression)
    return layers[-1].media_type if layers else None


def with_codec_suffix(name: str, compression: str) -> str:
    """`name` with the codec's extension after the rest, unless it already ends in it."""
    suffix = codec_suffix(compression)
    return name if not suffix or name.endswith(suffix) else name + suffix


def compressor(compression: str, file: BinaryIO) -> BinaryIO | None:
    """A stream that compresses into `file`, or None for none. Closing it writes the codec's
    trailer and leaves `file` open."""
    if compression == "gzip":
        stream: object = gzip.GzipFile(
            filename="", mode="wb", fileobj=file, compresslevel=GZIP_LEVEL, mtime=0
        )
    elif compression == "zstd":
        import zstandard

        context = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_checksum=True)
        stream = context.stream_writer(file, closefd=False)
    elif compression == "bz2":
        stream = bz2.BZ2File(file, mode="wb", compresslevel=BZ2_LEVEL)
    elif compression == "xz":
        stream = lzma.LZMAFile(file, mode="wb", format=lzma.FORMAT_XZ, preset=XZ_PRESET)
    else:
        return None
    return cast(BinaryIO, stream)
