"""The cache directory's layout: the one owner of what is kept there, and of clearing it.

Every file and folder the tool keeps between runs is named here; each module
that reads or writes one takes its name from here, and :func:`clear` (``cache
clear``) removes the caches without knowing what is inside them. Build
history and locks are not caches: clearing leaves them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: File digests keyed by stat (:mod:`.digests`).
DIGESTS = "digests.sqlite3"
#: Specs seen present, with when (:mod:`~mzbuild_async.lookup.disk`).
PRESENT = "present.sqlite3"
#: Registry hosts' auth challenges and schemes (:mod:`.challenges`).
HOSTS = "hosts.json"
#: Build times, for critical paths and step sizes (:mod:`.history`).
HISTORY = "build-history.json"
#: Learned link rates and image bytes, for placement in a pool (:mod:`.links`).
LINKS = "links.json"
#: Per-spec locks across processes (:mod:`.locks`).
LOCKS = "locks"

#: What ``cache clear`` removes.
CACHES = (DIGESTS, PRESENT, HOSTS)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """The cache directory: ``$MZBUILD_ASYNC_CACHE_DIR``, else the XDG cache home."""
    explicit = environ.get("MZBUILD_ASYNC_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mzbuild-async"


def clear(directory: Path) -> list[Path]:
    """Remove the caches kept in ``directory``; the paths that were there."""
    removed = []
    for name in CACHES:
        path = directory / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed
