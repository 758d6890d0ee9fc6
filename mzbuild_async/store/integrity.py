"""Integrity for the files we keep between runs (git's index carries a checksum too).

Every state file under the cache directory is only ever a way to go
faster: a row or file that fails its check is a miss plus one warning,
never a value. Rows of the SQLite stores carry :func:`row_check`; JSON
files are an envelope ``{"version", "check", "data"}`` whose check covers
the canonical form of ``data``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from ..support import logs
from ..support.documents import parse_json

#: Bytes of a row's or file's integrity check (BLAKE2b).
CHECK_SIZE = 16
ENVELOPE_VERSION = 1


def row_check(*parts: bytes) -> bytes:
    """The check of one stored row: BLAKE2b over its length-prefixed fields."""
    h = hashlib.blake2b(digest_size=CHECK_SIZE, person=b"mzbuild-async")
    for part in parts:
        h.update(len(part).to_bytes(4, "big"))
        h.update(part)
    return h.digest()


def _canonical(data: object) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def read_json(path: Path, what: str, *, warn: bool = True) -> Any | None:
    """The ``data`` of the envelope at ``path``; ``None`` when absent or bad.

    A file that exists but cannot be read, is not an envelope or fails its
    check gives one warning (unless not ``warn``) naming it and ``what``
    happens instead.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if warn:
            logs.warning(f"{path}: cannot read ({exc.strerror}); {what}")
        return None
    try:
        envelope = parse_json(raw, parse_constant=_reject_constant)
        ok = (
            isinstance(envelope, dict)
            and envelope.get("version") == ENVELOPE_VERSION
            and isinstance(envelope.get("check"), str)
            and "data" in envelope
            and envelope["check"] == row_check(_canonical(envelope["data"])).hex()
        )
    except (ValueError, RecursionError, UnicodeDecodeError):
        ok = False
    if not ok:
        if warn:
            logs.warning(f"{path}: damaged or from another version (failed its check); {what}")
        return None
    return envelope["data"]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def write_json(path: Path, data: object) -> None:
    """Write ``data`` in a checked envelope, atomically (raises ``OSError``)."""
    body = _canonical(data)
    envelope = {"version": ENVELOPE_VERSION, "check": row_check(body).hex(), "data": data}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(envelope, f, indent=1, sort_keys=True, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def finite_seconds(value: object, limit: float) -> float | None:
    """``value`` as seconds if it is a finite, non-negative number below ``limit``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    if not math.isfinite(seconds) or not 0 <= seconds < limit:
        return None
    return seconds
