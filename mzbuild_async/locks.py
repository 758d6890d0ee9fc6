"""One lock per image spec across processes on this machine (``flock``).

Two runs that would build the same spec at once: the second waits, then
finds the image the first built. The lock files live in the cache
directory; the kernel releases a lock when its process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

#: How often a waiting process retries the lock.
POLL_SECONDS = 0.1


@contextlib.asynccontextmanager
async def spec_lock(cache_dir: Path, spec: str) -> AsyncIterator[bool]:
    """Hold the lock of ``spec``; yields whether we had to wait for another holder."""
    directory = cache_dir / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(spec.encode()).hexdigest()[:32]
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    waited = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = True
                await anyio.sleep(POLL_SECONDS)
        yield waited
    finally:
        os.close(fd)  # closing releases the flock
