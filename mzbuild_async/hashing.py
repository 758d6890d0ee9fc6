"""Content digests of input files: each distinct file hashed once per run.

Hashing runs in worker threads (``hashlib`` releases the GIL on large
buffers, file reads release it too) in a few interleaved batches rather than
one thread hop per file: on Materialize's ~3.6k distinct inputs a hop per
file costs more than the hashing. ``benchmarks/bench_hashing.py`` measures
the worker counts.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from .errors import InputError

MODE_SYMLINK = 0o120000
MODE_EXECUTABLE = 0o100755
MODE_REGULAR = 0o100644
#: Worker threads used for hashing. One: on the 2-core machines we measured,
#: reading from the page cache in two threads was slower than in one, so
#: more threads lost time (``benchmarks/bench_hashing.py`` prints it).
DEFAULT_HASH_WORKERS = 1
#: Read buffer of each hashing thread.
BUFFER_SIZE = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """What the fingerprint takes from one input file: git's mode and SHA-1."""

    mode: int
    sha1: bytes
    size: int


def _mode(st_mode: int) -> int:
    if stat.S_ISLNK(st_mode):
        return MODE_SYMLINK
    if st_mode & stat.S_IXUSR:
        return MODE_EXECUTABLE
    return MODE_REGULAR


def hash_file(root: str, path: str, buffer: bytearray | None = None) -> FileDigest:
    """The digest of repository-relative ``path``, as the original computes it.

    The mode comes from ``lstat`` (a symlink is a symlink); the content is
    read through the path (a symlink's target). Reading into a reused
    ``buffer`` avoids allocating (and page-faulting) a fresh buffer per
    file, which is what made threads slower than one loop.
    """
    full = os.path.join(root, path)
    buf = buffer if buffer is not None else bytearray(BUFFER_SIZE)
    view = memoryview(buf)
    buffers = [view]
    try:
        mode = _mode(os.lstat(full).st_mode)
        h = hashlib.sha1()
        size = 0
        fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while n := os.readv(fd, buffers):
                h.update(view[:n])
                size += n
        finally:
            os.close(fd)
        return FileDigest(mode, h.digest(), size)
    except IsADirectoryError:
        raise InputError(
            f"{path}: is a directory (a submodule or a symlink to a directory?);"
            " inputs must be files"
        ) from None
    except FileNotFoundError:
        if os.path.islink(full):
            raise InputError(
                f"{path}: symlink to a missing target; fix or remove the link"
            ) from None
        raise InputError(f"{path}: vanished while fingerprinting; run again") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read input file: {exc.strerror}") from None
    finally:
        view.release()


def _hash_batch(root: str, paths: list[str]) -> list[tuple[str, FileDigest | InputError]]:
    # Errors are values here so that every batch finishes and the error
    # reported is the first by path, whatever the thread timing.
    results: list[tuple[str, FileDigest | InputError]] = []
    buffer = bytearray(BUFFER_SIZE)
    for p in paths:
        try:
            results.append((p, hash_file(root, p, buffer)))
        except InputError as exc:
            results.append((p, exc))
    return results


@dataclass(frozen=True)
class HashStatistics:
    """What a :class:`FileHasher` has done so far."""

    files: int
    bytes: int
    #: Wall time spent in hashing rounds.
    seconds: float
    workers: int


class FileHasher:
    """Hashes input files under a root, each distinct path once per instance."""

    def __init__(self, root: Path, workers: int = DEFAULT_HASH_WORKERS) -> None:
        self.root = str(root)
        self.workers = max(1, workers)
        self._digests: dict[str, FileDigest] = {}
        self._lock = anyio.Lock()
        self._limiter = anyio.CapacityLimiter(self.workers)
        self._seconds = 0.0

    def statistics(self) -> HashStatistics:
        """Files and bytes hashed, and the time it took."""
        return HashStatistics(
            files=len(self._digests),
            bytes=sum(d.size for d in self._digests.values()),
            seconds=self._seconds,
            workers=self.workers,
        )

    @property
    def hashed(self) -> Mapping[str, FileDigest]:
        """Every digest computed so far."""
        return self._digests

    async def digests(self, paths: Iterable[str]) -> dict[str, FileDigest]:
        """The digests of ``paths``, hashing those not yet known."""
        wanted = set(paths)
        # One hashing round at a time: a concurrent caller waits and then
        # finds its files already hashed instead of hashing them twice.
        async with self._lock:
            missing = sorted(wanted.difference(self._digests))
            if missing:
                started = time.perf_counter()
                await self._hash(missing)
                self._seconds += time.perf_counter() - started
        return {p: self._digests[p] for p in wanted}

    async def _hash(self, paths: list[str]) -> None:
        results: list[tuple[str, FileDigest | InputError]] = []
        # Interleaved batches balance big and small files across workers.
        count = 1 if self.workers == 1 or len(paths) < 64 else self.workers * 2
        batches = [paths[i::count] for i in range(count)]

        async def run(batch: list[str]) -> None:
            results.extend(
                await anyio.to_thread.run_sync(_hash_batch, self.root, batch, limiter=self._limiter)
            )

        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(run, batch)
        errors = sorted(
            ((p, r) for p, r in results if isinstance(r, InputError)), key=lambda e: e[0]
        )
        if errors:
            raise errors[0][1]
        self._digests.update((p, r) for p, r in results if isinstance(r, FileDigest))
