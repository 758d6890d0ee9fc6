"""Reading the protobuf wire format, for the few messages we decode ourselves.

BuildKit's build progress arrives as protobuf ``StatusResponse`` messages
(base64 in the engine's JSON stream). Decoding a handful of fields needs no
generated code: each field is a key (field number and wire type) and a value.
Malformed input is a ``ValueError``; unknown fields are skipped, as protobuf
readers do.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise ValueError("a varint runs past the end of the message")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Each ``(field number, value)`` of a message: an int for varints and fixed
    widths, the bytes of a length-delimited field (a string, bytes, a message)."""
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        if kind == VARINT:
            value, at = _varint(data, at)
            yield number, value
        elif kind == LENGTH:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ValueError("a field runs past the end of the message")
            yield number, data[at : at + size]
            at += size
        elif kind in (FIXED64, FIXED32):
            width = 8 if kind == FIXED64 else 4
            if at + width > len(data):
                raise ValueError("a fixed-width field runs past the end of the message")
            yield number, int.from_bytes(data[at : at + width], "little")
            at += width
        else:
            raise ValueError(f"wire type {kind} (groups are not read)")


def text(value: int | bytes) -> str:
    """A string field's value (ValueError for a number)."""
    if not isinstance(value, bytes):
        raise ValueError("a number where a string was expected")
    return value.decode("utf-8", "replace")


def signed(value: int | bytes) -> int:
    """An ``int64`` field's value (two's complement of the varint)."""
    if not isinstance(value, int):
        raise ValueError("bytes where a number was expected")
    return value - (1 << 64) if value >= 1 << 63 else value


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field_bytes(number: int, data: bytes) -> bytes:
    """A length-delimited field (bytes, a string's UTF-8, a message)."""
    return _varint_bytes(number << 3 | LENGTH) + _varint_bytes(len(data)) + data


def field_varint(number: int, value: int) -> bytes:
    """A varint field (a bool, an enum, a non-negative integer)."""
    return _varint_bytes(number << 3 | VARINT) + _varint_bytes(value)
