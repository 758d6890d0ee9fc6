"""The disk tier: specs seen present before, kept across runs in SQLite.

Fingerprint tags are content-addressed and never move, but a tag can be
deleted (a retention policy, a registry's own clean-up): a stored
"present" is a hint with an age, not the truth. ``check``, ``plan`` and
``acquire`` use it as an answer (shown with its age); ``ensure`` and CI
steps confirm it with the registry (:class:`~.engine.Lookups`'s
``confirm``), and any ``absent`` the registry gives evicts it at once.
"Absent" is never stored: another CI job may publish it a second later.
Any error with the store is one warning, then the tier is skipped. Each
row carries a check over its spec: a row that fails it (or is not a
fingerprint spec at all) is a miss, is deleted, and gives one warning.
"""

from __future__ import annotations

import hmac
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from ..model.spec import SPEC_PATTERN as _SPEC  # only mzbuild- tags are content-addressed
from ..model.status import Probe, Status
from ..registry.names import Reference
from ..store import layout
from ..store.integrity import row_check
from ..support import logs

DB_NAME = layout.PRESENT
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS present_v2"
    " (spec TEXT PRIMARY KEY, seen REAL NOT NULL, checksum BLOB NOT NULL)"
)
#: The table of the first version (no checks): dropped on sight.
_OLD_TABLE = "DROP TABLE IF EXISTS present"


def _check(spec: str) -> bytes:
    return row_check(b"present", spec.encode())


def _valid(spec: object, check: object, seen: object) -> bool:
    return (
        isinstance(spec, str)
        and isinstance(check, bytes)
        and isinstance(seen, int | float)
        and math.isfinite(seen)
        and _SPEC.fullmatch(spec) is not None
        and hmac.compare_digest(_check(spec), check)
    )


@dataclass
class DiskTier:
    """Present specs in ``directory``/present.sqlite3."""

    directory: Path
    name: str = "disk"
    #: Spec -> when it was seen present (UNIX time), once loaded.
    _known: dict[str, float] | None = None
    _broken: bool = False
    clock: Callable[[], float] = time.time
    _lock: anyio.Lock = field(default_factory=anyio.Lock)
    #: Answers recorded but not written yet (:meth:`flush`).
    _pending: dict[str, float] = field(default_factory=dict)

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

    def _load(self) -> dict[str, float]:
        if not self.path.exists():
            return {}
        try:
            db = sqlite3.connect(self.path, timeout=10)
            try:
                db.execute(_SCHEMA)
                rows = db.execute("SELECT spec, checksum, seen FROM present_v2").fetchall()
                bad = [spec for spec, check, seen in rows if not _valid(spec, check, seen)]
                if bad:
                    logs.warning(
                        f"{self.path}: {len(bad)} lookup cache entr"
                        f"{'y' if len(bad) == 1 else 'ies'} failed validation;"
                        " asking the registry for those"
                    )
                    with db:
                        db.executemany("DELETE FROM present_v2 WHERE spec = ?", [(b,) for b in bad])
                return {spec: seen for spec, check, seen in rows if _valid(spec, check, seen)}
            finally:
                db.close()
        except (sqlite3.OperationalError, OSError) as exc:
            self._warn("read", exc)
            return {}
        except (sqlite3.DatabaseError, UnicodeError) as exc:
            # (SQLite's message quotes the damaged schema: bytes that are not UTF-8
            # reach Python as a UnicodeDecodeError, not a DatabaseError)
            logs.warning(f"{self.path}: damaged lookup cache ({exc}); starting a new one")
            try:
                self.path.unlink(missing_ok=True)
            except OSError:
                self._broken = True
            return {}

    def _store(self, rows: dict[str, float]) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10)
            try:
                with db:  # (one transaction for them all)
                    db.execute(_SCHEMA)
                    db.execute(_OLD_TABLE)
                    db.executemany(
                        "INSERT OR REPLACE INTO present_v2 VALUES (?, ?, ?)",
                        [(spec, seen, _check(spec)) for spec, seen in rows.items()],
                    )
            finally:
                db.close()
        except (sqlite3.Error, OSError, UnicodeError) as exc:
            self._warn("write", exc)

    def _delete(self, spec: str) -> None:
        if not self.path.exists():
            return
        try:
            db = sqlite3.connect(self.path, timeout=10)
            try:
                with db:
                    db.execute(_SCHEMA)
                    db.execute("DELETE FROM present_v2 WHERE spec = ?", (spec,))
            finally:
                db.close()
        except (sqlite3.Error, OSError, UnicodeError) as exc:
            self._warn("write", exc)

    async def _loaded(self) -> dict[str, float]:
        async with self._lock:
            if self._known is None:
                self._known = await anyio.to_thread.run_sync(self._load)
            return self._known

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """Present if this spec was seen present before (with when); else no opinion."""
        if self._broken:
            return None
        seen = (await self._loaded()).get(spec)
        if seen is None:
            return None
        return Probe(Status.PRESENT, f"seen present {age(self.clock() - seen)} ago")

    async def seen(self, spec: str) -> float | None:
        """When ``spec`` was last seen present (UNIX time), if it is stored."""
        if self._broken:
            return None
        return (await self._loaded()).get(spec)

    async def record(self, spec: str, status: Status) -> None:
        """Keep a present answer (refreshing its time); absent and unknown are never stored."""
        if status is not Status.PRESENT or self._broken or _SPEC.fullmatch(spec) is None:
            return
        known = await self._loaded()
        now = self.clock()
        if now - known.get(spec, -math.inf) < REFRESH_SECONDS:
            return
        known[spec] = now
        self._pending[spec] = now
        if len(self._pending) >= FLUSH_EVERY:
            await self.flush()

    async def flush(self) -> None:
        """Write the answers recorded since the last flush, in one transaction (a
        thousand lookups are a few writes, not a thousand)."""
        pending, self._pending = self._pending, {}
        if pending and not self._broken:
            await anyio.to_thread.run_sync(self._store, pending)

    async def forget(self, spec: str) -> None:
        """Drop ``spec`` (the registry said it is absent, or a pull could not find it)."""
        self._pending.pop(spec, None)
        if self._broken:
            return
        known = await self._loaded()
        if known.pop(spec, None) is not None:
            await anyio.to_thread.run_sync(self._delete, spec)

    def clear(self) -> None:
        """Forget every stored answer."""
        self.path.unlink(missing_ok=True)
        self._known = {}
        self._pending = {}


#: A present answer stored less than this long ago is not written again.
REFRESH_SECONDS = 3600.0
#: Recorded answers written at once (also at the end of each batch of lookups).
FLUSH_EVERY = 256


def age(seconds: float) -> str:
    """A short human age: ``40 s``, ``12 min``, ``5 h``, ``3 d``."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size * (2 if unit != "min" else 1):
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"
