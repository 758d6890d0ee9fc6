"""The disk tier: specs known to be present, kept across runs in SQLite.

Fingerprint tags are content-addressed and never move, so "present" stays
true. "Absent" is never stored: another CI job may publish it a second
later. Any error with the store is one warning, then the tier is skipped.
Each row carries a check over its spec: a row that fails it (or is not a
fingerprint spec at all) is a miss, is deleted, and gives one warning.
"""

from __future__ import annotations

import hmac
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from ..model.spec import SPEC_PATTERN as _SPEC  # only mzbuild- tags are content-addressed
from ..model.status import Probe, Status
from ..registry.names import Reference
from ..store.integrity import row_check
from ..support import logs

DB_NAME = "present.sqlite3"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS present_v2"
    " (spec TEXT PRIMARY KEY, seen REAL NOT NULL, checksum BLOB NOT NULL)"
)
#: The table of the first version (no checks): dropped on sight.
_OLD_TABLE = "DROP TABLE IF EXISTS present"


def _check(spec: str) -> bytes:
    return row_check(b"present", spec.encode())


def _valid(spec: object, check: object) -> bool:
    return (
        isinstance(spec, str)
        and isinstance(check, bytes)
        and _SPEC.fullmatch(spec) is not None
        and hmac.compare_digest(_check(spec), check)
    )


@dataclass
class DiskTier:
    """Present specs in ``directory``/present.sqlite3."""

    directory: Path
    name: str = "disk"
    _known: set[str] | None = None
    _broken: bool = False
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return self.directory / DB_NAME

    def _warn(self, action: str, exc: Exception) -> None:
        self._broken = True
        logs.warning(
            f"{self.path}: cannot {action} the lookup cache ({exc}); going on without it."
            " Delete the file or pass --no-disk-cache"
        )

    def _load(self) -> set[str]:
        if not self.path.exists():
            return set()
        try:
            db = sqlite3.connect(self.path, timeout=10)
            try:
                db.execute(_SCHEMA)
                rows = db.execute("SELECT spec, checksum FROM present_v2").fetchall()
                bad = [spec for spec, check in rows if not _valid(spec, check)]
                if bad:
                    logs.warning(
                        f"{self.path}: {len(bad)} lookup cache entr"
                        f"{'y' if len(bad) == 1 else 'ies'} failed validation;"
                        " asking the registry for those"
                    )
                    with db:
                        db.executemany("DELETE FROM present_v2 WHERE spec = ?", [(b,) for b in bad])
                return {spec for spec, check in rows if _valid(spec, check)}
            finally:
                db.close()
        except sqlite3.OperationalError as exc:
            self._warn("read", exc)
            return set()
        except sqlite3.DatabaseError as exc:
            logs.warning(f"{self.path}: damaged lookup cache ({exc}); starting a new one")
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                self._broken = True
            return set()

    def _store(self, spec: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
            try:
                with db:
                    db.execute(_SCHEMA)
                    db.execute(_OLD_TABLE)
                    db.execute(
                        "INSERT OR REPLACE INTO present_v2 VALUES (?, ?, ?)",
                        (spec, time.time(), _check(spec)),
                    )
            finally:
                db.close()
        except (sqlite3.Error, OSError) as exc:
            self._warn("write", exc)

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """Present if this spec was seen present before; else no opinion."""
        if self._broken:
            return None
        async with self._lock:
            if self._known is None:
                self._known = await anyio.to_thread.run_sync(self._load)
        return Probe(Status.PRESENT, "seen before") if spec in self._known else None

    async def record(self, spec: str, status: Status) -> None:
        """Keep a present answer; absent and unknown are never stored."""
        if status is not Status.PRESENT or self._broken or _SPEC.fullmatch(spec) is None:
            return
        if self._known is not None and spec in self._known:
            return
        await anyio.to_thread.run_sync(self._store, spec)
        if self._known is not None:
            self._known.add(spec)

    def clear(self) -> None:
        """Forget every stored answer."""
        self.path.unlink(missing_ok=True)
        self._known = set()
