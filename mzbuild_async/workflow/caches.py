"""The cache directory: a usable one for every run, and ``cache clear``."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from ..store.layout import clear
from ..store.locks import LOCKS_DIR
from ..support import logs


def clear_caches(cache_dir: Path) -> list[Path]:
    """``cache clear``: remove the caches kept in ``cache_dir``; the paths that were there."""
    return clear(cache_dir)


def usable_cache_dir(cache_dir: Path, stack: contextlib.ExitStack) -> Path:
    """``cache_dir`` if we can write there, else a private temporary one (one warning).

    A read-only mount, or ``locks`` being a file, must not stop a run: it
    goes on without the persistent caches, its locks in the private
    directory (removed when ``stack`` closes).
    """
    try:
        locks = cache_dir / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        for directory in (cache_dir, locks):
            with tempfile.TemporaryFile(dir=directory):
                pass
        return cache_dir
    except OSError as exc:
        private = Path(tempfile.mkdtemp(prefix="mzbuild_async-cache-"))
        stack.callback(shutil.rmtree, private, True)
        logs.warning(
            f"{cache_dir}: cannot write the cache directory ({exc.strerror or exc});"
            f" running without the persistent caches, locks in {private}."
            " Fix its permissions or pass --cache-dir"
        )
        return private
