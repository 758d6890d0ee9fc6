"""The visible files of a working tree, from one ``git ls-files`` process.

A path is *visible* when it is tracked and still present in the working
tree, or untracked and not ignored: the set the original mzbuild gets from
``git diff --name-only <empty-tree>`` plus ``git ls-files --others
--exclude-standard``. We get the same set from a single process by asking
for cached, other and deleted files with status tags (``-t``) and dropping
the deleted ones.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import anyio

from ..errors import GitError

_LS_FILES = (
    "git",
    "-c",
    "core.quotePath=false",
    "ls-files",
    "-z",
    "-t",
    "--cached",
    "--others",
    "--deleted",
    "--exclude-standard",
)


def _decode(raw: bytes) -> str:
    # Paths that are not UTF-8 keep their bytes through surrogateescape, so
    # they can still be opened and hashed exactly as git listed them.
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class GitView:
    """The sorted, repository-relative, ``/``-separated visible paths."""

    root: Path
    paths: tuple[str, ...]

    @classmethod
    def from_ls_files(cls, root: Path, output: bytes) -> GitView:
        """Build the view from the output of ``git ls-files -z -t ...``."""
        present: set[str] = set()
        deleted: set[str] = set()
        for entry in output.split(b"\0"):
            if not entry:
                continue
            tag, _, raw = entry.partition(b" ")
            path = _decode(raw)
            if tag == b"R":
                deleted.add(path)
            else:
                present.add(path)
        return cls(root=root, paths=tuple(sorted(present - deleted)))

    def __contains__(self, path: object) -> bool:
        if not isinstance(path, str):
            return False
        index = bisect.bisect_left(self.paths, path)
        return index < len(self.paths) and self.paths[index] == path

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def under(self, directory: str) -> tuple[str, ...]:
        """Every visible path under ``directory`` (``""`` is the whole tree)."""
        if not directory or directory == ".":
            return self.paths
        prefix = directory.rstrip("/") + "/"
        lo = bisect.bisect_left(self.paths, prefix)
        # Every path with the prefix sorts before prefix with its last
        # character ("/") bumped to the next code point ("0").
        hi = bisect.bisect_left(self.paths, prefix[:-1] + "0", lo)
        return self.paths[lo:hi]

    def named(self, filename: str) -> Iterable[str]:
        """Every visible path whose last component is ``filename``."""
        suffix = "/" + filename
        return (p for p in self.paths if p == filename or p.endswith(suffix))


def git_environ() -> dict[str, str]:
    """The environment git runs with: ours, without taking optional locks (we only read)."""
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}


async def _git(args: tuple[str, ...], cwd: Path) -> bytes:
    try:
        result = await anyio.run_process(args, cwd=cwd, check=False, env=git_environ())
    except FileNotFoundError:
        if not cwd.is_dir():
            raise GitError(f"{cwd}: no such directory; pass an existing --repo") from None
        raise GitError("git is not installed or not on PATH; install git") from None
    except NotADirectoryError:
        raise GitError(f"{cwd}: not a directory; pass a repository directory as --repo") from None
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        detail = lines[0] if lines else f"exit status {result.returncode}"
        if "not a git repository" in detail:
            raise GitError(f"{cwd}: not a git repository; run inside a git checkout or pass --repo")
        raise GitError(f"{cwd}: git failed: {detail}")
    return result.stdout


async def load_git_view(root: Path) -> GitView:
    """Read the visible files of the working tree at ``root`` with one git call."""
    return GitView.from_ls_files(root, await _git(_LS_FILES, root))


async def find_toplevel(start: Path) -> Path:
    """The top level of the git working tree containing ``start``."""
    out = await _git(("git", "rev-parse", "--show-toplevel"), start)
    return Path(os.fsdecode(out.rstrip(b"\n")))


LABEL_SOURCE = "org.opencontainers.image.source"
LABEL_REVISION = "org.opencontainers.image.revision"
#: ``git@host:path`` (scp-like remote syntax).
_SCP_LIKE = re.compile(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)")


def source_url(remote: str) -> str | None:
    """A git remote as a browsable source URL, credentials removed (None: not a URL).

    ``git@github.com:org/repo.git`` and ``https://user:token@host/org/repo.git``
    both become ``https://host/org/repo``; a local path is no source URL.
    """
    remote = remote.strip()
    scp = _SCP_LIKE.fullmatch(remote)
    if "://" not in remote and scp is not None:
        host, path = scp.groups()
        return f"https://{host}/{path.removesuffix('.git').strip('/')}"
    parts = urlsplit(remote)
    if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port and parts.scheme != "ssh" else "")
    scheme = "https" if parts.scheme in ("ssh", "git") else parts.scheme
    return f"{scheme}://{host}/{parts.path.removesuffix('.git').strip('/')}"


async def source_labels(root: Path) -> dict[str, str]:
    """The OCI labels naming where ``root``'s images come from: the revision (HEAD) and
    the source (the ``origin`` remote, else the first one); a missing one is left out."""
    labels: dict[str, str] = {}
    with contextlib.suppress(GitError):  # (a repository without a commit yet)
        labels[LABEL_REVISION] = (await _git(("git", "rev-parse", "HEAD"), root)).decode().strip()
    try:
        remotes = (await _git(("git", "remote"), root)).decode().split()
        if remotes:
            name = "origin" if "origin" in remotes else remotes[0]
            url = (await _git(("git", "remote", "get-url", name), root)).decode()
            source = source_url(url)
            if source is not None:
                labels[LABEL_SOURCE] = source
    except GitError:
        pass
    return labels


__all__ = ["GitView", "find_toplevel", "load_git_view", "source_labels", "source_url"]
