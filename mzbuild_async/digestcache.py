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

import os
import sqlite3
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple, TypeAlias

from . import logs

#: Entries whose mtime or ctime is newer than this before hashing began are not stored.
RACY_SECONDS = 2.0
DB_NAME = "digests.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    root TEXT NOT NULL,
    path TEXT NOT NULL,
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, size INTEGER NOT NULL,
    mtime INTEGER NOT NULL, ctime INTEGER NOT NULL, st_mode INTEGER NOT NULL,
    mode INTEGER NOT NULL, sha1 BLOB NOT NULL,
    PRIMARY KEY (root, path)
) WITHOUT ROWID
"""

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


class DigestCache:
    """The digests of one repository root, in a SQLite file shared by all roots."""

    def __init__(self, directory: Path, root: str, *, racy_seconds: float = RACY_SECONDS) -> None:
        self.path = directory / DB_NAME
        self.root = root
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
        """Every entry of this root (empty when there is none or the cache is broken)."""
        if self._broken or not self.path.exists():
            return {}
        try:
            db = self._connect()
            try:
                rows = db.execute(
                    "SELECT path, dev, ino, size, mtime, ctime, st_mode, mode, sha1"
                    " FROM digests WHERE root = ?",
                    (self.root,),
                ).fetchall()
            finally:
                db.close()
        except (sqlite3.Error, OSError) as exc:
            self._warn("read", exc)
            return {}
        return {r[0]: Cached(r[1:7], r[7], r[8]) for r in rows}

    def store(self, entries: Iterable[tuple[str, Cached]], started_ns: int) -> int:
        """Remember ``entries`` hashed in a round that began at ``started_ns``.

        Returns how many were stored; recently changed files are skipped.
        """
        if self._broken:
            return 0
        limit = started_ns - self.racy_ns
        rows = [
            (self.root, path, *c.key, c.mode, c.sha1)
            for path, c in entries
            if c.key[3] < limit and c.key[4] < limit
        ]
        if not rows:
            return 0
        try:
            db = self._connect()
            try:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
                    )
            finally:
                db.close()
        except (sqlite3.Error, OSError) as exc:
            self._warn("write", exc)
            return 0
        return len(rows)

    def clear(self) -> None:
        """Forget every entry of every root."""
        self.path.unlink(missing_ok=True)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """The cache directory: ``$MZBUILD_ASYNC_CACHE_DIR``, else the XDG cache home."""
    explicit = environ.get("MZBUILD_ASYNC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mzbuild-async"


def now_ns() -> int:
    """Wall-clock time in the timestamps' own terms (file times are wall clock)."""
    return time.time_ns()
