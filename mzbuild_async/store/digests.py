"""A persistent cache of file digests keyed by ``stat``, like git's index.

Re-hashing an unchanged checkout is most of a warm run's time. A file whose
device, inode, size, mode, mtime and ctime are unchanged since we hashed it
still has the content we hashed: ctime cannot be set by user space, so any
write moves it. Two guards keep this exact:

- an entry is stored only if the file's ``fstat`` after reading equals its
  ``lstat`` before (it did not change while we read it), and
- only if its mtime and ctime lie at least :data:`RACY_SECONDS` before the
  hashing began: a file written within the same clock tick as our read
  could change again without moving its timestamps (git's "racy clean").

Symlinks are never cached (their target's content is hashed, and the
link's own stat says nothing about it). The cache can only make a run
faster: any error reading or writing it is one warning and the run goes on
without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import stat
import struct
import time
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple, TypeAlias

from ..support import logs
from . import layout
from .integrity import CHECK_SIZE, row_check

#: Entries whose mtime or ctime is newer than this before hashing began are not stored.
RACY_SECONDS = 2.0
DB_NAME = layout.DIGESTS
#: Paths are bytes (git's paths need not be UTF-8); each row carries a check.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests_v2 (
    root BLOB NOT NULL,
    path BLOB NOT NULL,
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, st_mode INTEGER NOT NULL,
    mode INTEGER NOT NULL, sha1 BLOB NOT NULL, checksum BLOB NOT NULL,
    PRIMARY KEY (root, path)
) WITHOUT ROWID
"""
_INSERT = "INSERT OR REPLACE INTO digests_v2 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
#: The table of the first version (no checks, text paths): dropped on sight.
_OLD_TABLE = "DROP TABLE IF EXISTS digests"
_MODES = (0o100644, 0o100755)

#: ``(dev, ino, size, mtime_ns, ctime_ns, st_mode)`` of a regular file.
StatKey: TypeAlias = tuple[int, int, int, int, int, int]


class Cached(NamedTuple):
    """A remembered digest and the stat it was taken under.

    A named tuple, not a dataclass: thousands are built per run.
    """

    key: StatKey
    mode: int
    sha1: bytes


def stat_key(st: os.stat_result) -> StatKey:
    """The parts of a stat that change whenever a file's content can have."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _fsencode(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


_FIELDS = struct.Struct(">QQQqqQHI")


Hasher: TypeAlias = "hashlib.blake2b"


def _keyed(root: bytes) -> Hasher:
    """A BLAKE2b keyed by ``root``, copied per row (a row cannot move between roots)."""
    return hashlib.blake2b(digest_size=CHECK_SIZE, key=row_check(b"digests", root))


def _checksum(keyed: Hasher, path: bytes, numbers: bytes, sha1: bytes) -> bytes:
    h = keyed.copy()  # cheaper than keying a new hash for each of thousands of rows
    h.update(numbers + sha1 + path)
    return h.digest()


def _valid(row: tuple[object, ...], key: Hasher) -> tuple[str, Cached] | None:
    """The entry a row stands for, or ``None`` if any field is off or the check fails.

    Hot (thousands of rows per run): ``struct`` checks the integers' types
    and ranges in one call.
    """
    path, dev, ino, size, mtime, ctime, st_mode, mode, sha1, check = row
    if not (
        isinstance(path, bytes)
        and isinstance(sha1, bytes)
        and isinstance(check, bytes)
        and len(sha1) == 20
        and len(check) == CHECK_SIZE
    ):
        return None
    try:
        numbers = _FIELDS.pack(dev, ino, size, mtime, ctime, st_mode, mode, len(path))
    except struct.error:
        return None
    if _checksum(key, path, numbers, sha1) != check:
        return None
    # The check passed, so we wrote this row; these guard against a bad writer.
    if not isinstance(st_mode, int) or not isinstance(mode, int):
        return None
    if not path or b"\0" in path or path[:1] == b"/" or not stat.S_ISREG(st_mode):
        return None
    if mode not in _MODES or (mode == 0o100755) != bool(st_mode & stat.S_IXUSR):
        return None
    stat_key: StatKey = (dev, ino, size, mtime, ctime, st_mode)  # type: ignore[assignment]
    return path.decode("utf-8", "surrogateescape"), Cached(stat_key, mode, sha1)


class DigestCache:
    """The digests of one repository root, in a SQLite file shared by all roots.

    Every row is validated when read (types, ranges, a BLAKE2b check over
    all its fields): a row that fails is a miss, is deleted, and the load
    gives one warning.
    """

    def __init__(self, directory: Path, root: str, *, racy_seconds: float = RACY_SECONDS) -> None:
        self.path = directory / DB_NAME
        self.root = root
        self._root = _fsencode(root)
        self._key = _keyed(self._root)
        self.racy_ns = int(racy_seconds * 1e9)
        self._broken = False

    def _warn(self, action: str, exc: Exception) -> None:
        self._broken = True
        logs.warning(
            f"{self.path}: cannot {action} the digest cache ({exc}); going on without it."
            " Delete the file or pass --no-digest-cache"
        )

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(_SCHEMA)
        return db

    def load(self) -> dict[str, Cached]:
        """Every valid entry of this root (empty when there is none or the cache is broken)."""
        if self._broken or not self.path.exists():
            return {}
        try:
            db = self._connect()
            try:
                rows = db.execute(
                    "SELECT path, dev, ino, size, mtime, ctime, st_mode, mode, sha1, checksum"
                    " FROM digests_v2 WHERE root = ?",
                    (self._root,),
                ).fetchall()
                found: dict[str, Cached] = {}
                bad: list[object] = []
                for row in rows:
                    entry = _valid(row, self._key)
                    if entry is None:
                        bad.append(row[0])
                    else:
                        found[entry[0]] = entry[1]
                if bad:
                    self._forget(db, bad)
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            self._warn("read", exc)
            return {}
        except (sqlite3.DatabaseError, UnicodeError) as exc:
            # (SQLite's message quotes the damaged schema: bytes that are not UTF-8
            # reach Python as a UnicodeDecodeError, not a DatabaseError)
            self._reset(exc)
            return {}
        except OSError as exc:
            self._warn("read", exc)
            return {}
        return found

    def _forget(self, db: sqlite3.Connection, paths: list[object]) -> None:
        logs.warning(
            f"{self.path}: {len(paths)} digest cache entr{'y' if len(paths) == 1 else 'ies'}"
            " failed validation; hashing those files again"
        )
        with contextlib.suppress(sqlite3.Error), db:
            db.executemany(
                "DELETE FROM digests_v2 WHERE root = ? AND path = ?",
                [(self._root, p) for p in paths],
            )

    def _reset(self, exc: Exception) -> None:
        """A file SQLite cannot read at all: warn once, start a new one."""
        logs.warning(f"{self.path}: damaged digest cache ({exc}); starting a new one")
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            self._broken = True

    def store(self, entries: Iterable[tuple[str, Cached]], started_ns: int) -> int:
        """Remember ``entries`` hashed in a round that began at ``started_ns``.

        Returns how many were stored; recently changed files are skipped.
        """
        if self._broken:
            return 0
        limit = started_ns - self.racy_ns
        rows = []
        for path, c in entries:
            if c.key[3] < limit and c.key[4] < limit:
                raw = _fsencode(path)
                numbers = _FIELDS.pack(*c.key, c.mode, len(raw))
                check = _checksum(self._key, raw, numbers, c.sha1)
                rows.append((self._root, raw, *c.key, c.mode, c.sha1, check))
        if not rows:
            return 0
        try:
            db = self._connect()
            try:
                with db:
                    db.execute(_OLD_TABLE)
                    db.executemany(_INSERT, rows)
            finally:
                db.close()
        except (sqlite3.Error, OSError, UnicodeError) as exc:
            self._warn("write", exc)
            return 0
        return len(rows)

    def clear(self) -> None:
        """Forget every entry of every root."""
        self.path.unlink(missing_ok=True)


def now_ns() -> int:
    """Wall-clock time in the timestamps' own terms (file times are wall clock)."""
    return time.time_ns()
