"""One lock per key (an image spec and what is done to it) across processes (``flock``).

Two runs that would build or push the same spec at once: the second waits,
then finds the image the first built or the tag it pushed. The kernel
releases a lock when its process dies. A holder removes its lock file
before releasing it; a waiter that then wins the lock on the removed file
sees that the path no longer names it and tries again, so lock files do
not pile up and no two processes ever hold one key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from ..support import logs
from . import layout

#: How often a waiting process retries the lock.
POLL_SECONDS = 0.1
LOCKS_DIR = layout.LOCKS


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


@contextlib.asynccontextmanager
async def spec_lock(cache_dir: Path, key: str) -> AsyncIterator[bool]:
    """Hold the lock of ``key``; yields whether we had to wait for another holder.

    A lock that cannot be taken at all (the directory is not writable, the
    file is a symlink) is one warning and no lock: locks only save work,
    the look-up before each push keeps a run right without them.
    """
    directory = cache_dir / LOCKS_DIR
    path = directory / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.lock"
    waited = False
    while True:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            logs.warning(f"{path}: cannot lock ({exc.strerror}); going on without the lock")
            yield False
            return
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    waited = True
                    await anyio.sleep(POLL_SECONDS)
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # the holder we waited for removed it: lock the new one
    try:
        yield waited
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # still held: nobody can lock this file and think it current
        os.close(fd)  # closing releases the flock
