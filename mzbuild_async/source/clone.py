"""What a clone holds of its history: shallow boundaries and its remotes' refs.

``gc`` computes what to keep from the commits it can see. A shallow clone
(``git clone --depth 1``, GitHub Actions' default checkout) or one fetched
without tags or with a single branch sees fewer commits than the policy asks
for, and would delete images still needed. These readers let the caller
refuse instead: the commits a shallow clone has no parents for, and the
branches and tags each remote has, asked with ``git ls-remote`` under a
deadline (the only network git does here).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..errors import GitError
from .gitview import _decode, _git, git_environ, source_url

#: Seconds ``git ls-remote`` may take before the remote counts as unreachable.
REMOTE_DEADLINE = 30.0


async def shallow_boundaries(root: Path) -> frozenset[str]:
    """The commits whose parents this clone lacks (empty unless it is shallow)."""
    out = await _git(("git", "rev-parse", "--is-shallow-repository"), root)
    if out.strip() != b"true":
        return frozenset()
    path = (await _git(("git", "rev-parse", "--git-path", "shallow"), root)).decode().strip()
    shallow = Path(path) if Path(path).is_absolute() else root / path
    try:
        return frozenset(shallow.read_text().split())
    except OSError as exc:
        raise GitError(f"{shallow}: could not read the shallow clone's boundary: {exc}") from None


async def remote_names(root: Path) -> list[str]:
    """The remotes configured in the clone."""
    return (await _git(("git", "remote"), root)).decode().split()


@dataclass(frozen=True)
class RemoteRefs:
    """What one remote has: branch name -> commit, tag name -> object (a tag
    object's id for an annotated tag, as ``refs/tags`` holds it locally)."""

    remote: str
    branches: dict[str, str]
    tags: dict[str, str]


def shown_remote(root: Path, remote: str) -> str:
    """A remote named for a message: its name and, where it is a URL, the URL
    without credentials."""
    try:
        out = subprocess.run(
            ("git", "remote", "get-url", remote),
            cwd=root,
            capture_output=True,
            check=False,
            env=git_environ(),
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return remote
    url = source_url(out.stdout.decode(errors="replace").strip()) if out.returncode == 0 else None
    return f"{remote} ({url})" if url else remote


async def remote_refs(root: Path, remote: str, deadline: float = REMOTE_DEADLINE) -> RemoteRefs:
    """The branches and tags ``remote`` has, asked once (GitError naming the remote
    when it cannot be asked within ``deadline`` seconds)."""
    environ = {**git_environ(), "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true"}
    args = ("git", "ls-remote", "--heads", "--tags", remote)
    detail = ""
    with anyio.move_on_after(deadline) as scope:
        result = await anyio.run_process(
            args, cwd=root, check=False, env=environ, stdin=subprocess.DEVNULL
        )
    if scope.cancelled_caught:
        detail = f"no answer in {deadline:.0f} s"
    elif result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        detail = lines[-1] if lines else f"git ls-remote exit status {result.returncode}"
    if detail:
        raise GitError(
            f"could not ask the remote {shown_remote(root, remote)} for its branches and tags"
            f" ({detail}); gc needs them to know this clone's history is complete: make the"
            " remote reachable, or pass --trust-local-refs"
        )
    branches: dict[str, str] = {}
    tags: dict[str, str] = {}
    for line in result.stdout.split(b"\n"):
        oid, _, raw = line.partition(b"\t")
        name = _decode(raw)
        if name.endswith("^{}"):
            continue  # an annotated tag's peeled commit: the tag object is compared
        if name.startswith("refs/heads/"):
            branches[name.removeprefix("refs/heads/")] = oid.decode()
        elif name.startswith("refs/tags/"):
            tags[name.removeprefix("refs/tags/")] = oid.decode()
    return RemoteRefs(remote, branches, tags)
