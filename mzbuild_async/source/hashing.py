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
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeAlias

import anyio

from ..errors import InputError, shown_path
from ..store.digests import Cached, DigestCache, StatKey, now_ns, stat_key

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
    #: Whether the digest came from the digest cache instead of a read.
    cached: bool = False


def _mode(st_mode: int) -> int:
    if stat.S_ISLNK(st_mode):
        return MODE_SYMLINK
    if st_mode & stat.S_IXUSR:
        return MODE_EXECUTABLE
    return MODE_REGULAR


def hash_file(
    root: str,
    path: str,
    buffer: bytearray | None = None,
    known: Mapping[str, Cached] | None = None,
    stop: threading.Event | None = None,
) -> tuple[FileDigest, Cached | None]:
    """The digest of repository-relative ``path``, as the original computes it.

    The mode comes from ``lstat`` (a symlink is a symlink); the content is
    read through the path (a symlink's target). Reading into a reused
    ``buffer`` avoids allocating (and page-faulting) a fresh buffer per file.

    With ``known`` (a digest cache), an unchanged regular file is not read.
    The second value is what a digest cache may store for this file:
    ``None`` for a cache hit, a symlink, or a file that changed as we read it.

    Only regular files (or symlinks to them) are read: a device, FIFO or
    socket is refused, since reading one may never end. ``stop`` is checked
    between buffers, so a cancelled run leaves even a huge file promptly.
    """
    full = os.path.join(root, path)
    try:
        st = os.lstat(full)
        mode = _mode(st.st_mode)
        key = stat_key(st) if stat.S_ISREG(st.st_mode) else None
        if key is not None and known is not None:
            hit = known.get(path)
            if hit is not None and hit.key == key:
                return FileDigest(hit.mode, hit.sha1, key[2], cached=True), None
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
            raise InputError(_not_regular(path, st.st_mode, False))
        sha1, size, unchanged = _read(full, path, st, key, buffer, stop)
    except OSError as exc:
        raise _input_error(full, path, exc) from None
    digest = FileDigest(mode, sha1, size)
    if not unchanged or key is None:
        return digest, None
    return digest, Cached(key, mode, sha1)


def _read(
    full: str,
    path: str,
    st: os.stat_result,
    key: StatKey | None,
    buffer: bytearray | None,
    stop: threading.Event | None,
) -> tuple[bytes, int, bool]:
    """SHA-1 and size of a regular file (through a symlink), and whether it stayed as
    ``key`` says while we read it."""
    buf = buffer if buffer is not None else bytearray(BUFFER_SIZE)
    with memoryview(buf) as view:
        buffers = [view]
        h = hashlib.sha1()
        size = 0
        # Non-blocking: opening a FIFO swapped in since the lstat must not hang.
        fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            opened = os.fstat(fd)
            if stat.S_ISDIR(opened.st_mode):
                raise IsADirectoryError
            if not stat.S_ISREG(opened.st_mode):
                raise InputError(_not_regular(path, opened.st_mode, stat.S_ISLNK(st.st_mode)))
            while n := os.readv(fd, buffers):
                h.update(view[:n])
                size += n
                if stop is not None and stop.is_set():
                    raise Stopped
            unchanged = key is not None and stat_key(os.fstat(fd)) == key
        finally:
            os.close(fd)
    return h.digest(), size, unchanged


def _input_error(full: str, path: str, exc: OSError) -> InputError:
    """The one line for an input that could not be read."""
    shown = shown_path(path)
    if isinstance(exc, IsADirectoryError):
        return InputError(
            f"{shown}: is a directory (a submodule or a symlink to a directory?);"
            " inputs must be files"
        )
    if isinstance(exc, FileNotFoundError):
        if os.path.islink(full):
            return InputError(f"{shown}: symlink to a missing target; fix or remove the link")
        return InputError(f"{shown}: vanished while fingerprinting; run again")
    return InputError(f"{shown}: cannot read input file: {exc.strerror}")


class Stopped(Exception):
    """Hashing was asked to stop (the run is being cancelled)."""


_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


def _not_regular(path: str, mode: int, via_link: bool) -> str:
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    link = " (through a symlink)" if via_link else ""
    return (
        f"{shown_path(path)}: is {kind}{link}; inputs must be regular files: remove it or ignore it"
    )


_Result: TypeAlias = tuple[str, FileDigest | InputError, Cached | None]


def _hash_batch(
    root: str, paths: list[str], known: Mapping[str, Cached] | None, stop: threading.Event
) -> list[_Result]:
    # Errors are values here so that every batch finishes and the error
    # reported is the first by path, whatever the thread timing.
    results: list[_Result] = []
    buffer = bytearray(BUFFER_SIZE)
    for p in paths:
        if stop.is_set():
            break
        try:
            results.append((p, *hash_file(root, p, buffer, known, stop)))
        except InputError as exc:
            results.append((p, exc, None))
        except Stopped:
            break
    return results


@dataclass(frozen=True)
class HashStatistics:
    """What a :class:`FileHasher` has done so far."""

    files: int
    bytes: int
    #: Files whose digest came from the digest cache (not read).
    cached: int
    #: Wall time spent in hashing rounds.
    seconds: float
    workers: int


class Hasher(Protocol):
    """What a repository asks of its file digests (:class:`FileHasher` reads the
    working tree; :class:`~.history.TreeHasher` a commit's blobs)."""

    @property
    def hashed(self) -> Mapping[str, FileDigest]:
        """Every digest computed so far."""
        ...

    async def preload(self) -> None:
        """Read ahead whatever helps the first round."""
        ...

    async def digests(self, paths: Iterable[str]) -> dict[str, FileDigest]:
        """The digests of ``paths``."""
        ...

    def statistics(self) -> HashStatistics:
        """Files and bytes hashed, and the time it took."""
        ...


class FileHasher:
    """Hashes input files under a root, each distinct path once per instance."""

    def __init__(
        self,
        root: Path,
        workers: int = DEFAULT_HASH_WORKERS,
        cache: DigestCache | None = None,
    ) -> None:
        self.root = str(root)
        self.workers = max(1, workers)
        self.cache = cache
        self._known: dict[str, Cached] | None = None
        self._digests: dict[str, FileDigest] = {}
        self._lock = anyio.Lock()
        self._limiter = anyio.CapacityLimiter(self.workers)
        self._seconds = 0.0

    def statistics(self) -> HashStatistics:
        """Files and bytes hashed, and the time it took."""
        return HashStatistics(
            files=len(self._digests),
            bytes=sum(d.size for d in self._digests.values()),
            cached=sum(d.cached for d in self._digests.values()),
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

    async def preload(self) -> None:
        """Read the digest cache now (in a worker thread), ahead of the first round."""
        if self.cache is not None and self._known is None:
            self._known = await anyio.to_thread.run_sync(self.cache.load)

    async def _hash(self, paths: list[str]) -> None:
        cache = self.cache
        await self.preload()
        started_ns = now_ns()
        results: list[_Result] = []
        # Interleaved batches balance big and small files across workers.
        count = 1 if self.workers == 1 or len(paths) < 64 else self.workers * 2
        batches = [paths[i::count] for i in range(count)]

        stop = threading.Event()

        async def run(batch: list[str]) -> None:
            results.extend(
                await anyio.to_thread.run_sync(
                    _hash_batch, self.root, batch, self._known, stop, limiter=self._limiter
                )
            )

        async def stop_when_cancelled() -> None:
            # A worker thread cannot be cancelled: it is told to stop instead.
            try:
                await anyio.sleep_forever()
            finally:
                stop.set()

        async with anyio.create_task_group() as watch:
            watch.start_soon(stop_when_cancelled)
            async with anyio.create_task_group() as tg:
                for batch in batches:
                    tg.start_soon(run, batch)
            watch.cancel_scope.cancel()
        errors = sorted(
            ((p, r) for p, r, _ in results if isinstance(r, InputError)), key=lambda e: e[0]
        )
        if errors:
            raise errors[0][1]
        self._digests.update((p, r) for p, r, _ in results if isinstance(r, FileDigest))
        fresh = [(p, c) for p, _, c in results if c is not None]
        if cache is not None and fresh:
            await anyio.to_thread.run_sync(cache.store, fresh, started_ns)
