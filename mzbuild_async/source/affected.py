"""Which images a change affects: every fingerprint at two commits, compared.

The base (and a ``--head`` revision) are read from git objects
(:mod:`.commits`: nothing is checked out); without ``--head`` the head is
the working tree, as ``ensure`` would build it. An image is affected when its
fingerprint differs (its inputs, its options or a parent changed: the
account is :mod:`.explain`'s), when it is new, or when it is gone. The files
that differ between the two sides are listed too (for CI steps that depend
on files no image takes), however many there are.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from .commits import BlobStore, History
from .explain import Explanation, explain_many, resolve_revision
from .gitview import _decode, _git
from .repository import Repository


@dataclass(frozen=True)
class Affected:
    """One image a change affects."""

    image: str
    #: ``changed``, ``added`` or ``removed``.
    kind: str
    base: str
    head: str
    #: Why (for ``changed``): the inputs, options and parents that differ.
    explanation: Explanation | None = None

    def reasons(self) -> list[str]:
        """Short reasons: ``content PATH``, ``option WHAT``, ``parent NAME``..."""
        if self.explanation is None:
            return [self.kind]
        e = self.explanation
        found = [f"added {p}" for p in e.added] + [f"removed {p}" for p in e.removed]
        found += [f"{c.kind} {c.path}" for c in e.changed]
        found += [f"option {what}" for what, _, _ in e.options]
        found += [f"parent {d.image}" for d in e.dependencies]
        return found


@dataclass(frozen=True)
class Comparison:
    """Every image's answer between two sides, and the files that differ."""

    base: str
    head: str
    affected: tuple[Affected, ...]
    unchanged: tuple[str, ...]
    files: tuple[str, ...]

    @property
    def names(self) -> set[str]:
        """The affected images' names."""
        return {a.image for a in self.affected}


async def compare(base: Repository, head: Repository) -> tuple[list[Affected], list[str]]:
    """The affected images (dependencies first) and the unchanged ones."""
    head_fps = await head.fingerprints(list(head.images))
    base_fps = await base.fingerprints(list(base.images))
    affected: list[Affected] = []
    unchanged: list[str] = []
    order = [image.name for image in head.resolve(list(head.images))]
    changed = [n for n in order if n in base_fps and base_fps[n] != head_fps[n]]
    accounts = await explain_many(head, base, changed)
    for name in order:
        mine = str(head_fps[name])
        if name not in base_fps:
            affected.append(Affected(name, "added", "", mine))
        elif base_fps[name] == head_fps[name]:
            unchanged.append(name)
        else:
            affected.append(Affected(name, "changed", str(base_fps[name]), mine, accounts[name]))
    for name in sorted(set(base_fps) - set(head_fps)):
        affected.append(Affected(name, "removed", str(base_fps[name]), ""))
    return affected, sorted(unchanged)


async def changed_files(root: Path, base: str, head: str | None) -> list[str]:
    """Paths that differ between ``base`` and ``head`` (None: the working tree,
    untracked files included)."""
    args = ["git", "-c", "core.quotePath=false", "diff", "--name-only", "-z", "--no-renames"]
    out = await _git((*args, base, *([head] if head else []), "--"), root)
    found = {_decode(p) for p in out.split(b"\0") if p}
    if head is None:
        others = await _git(("git", "ls-files", "-z", "--others", "--exclude-standard"), root)
        found |= {_decode(p) for p in others.split(b"\0") if p}
    return sorted(found)


@asynccontextmanager
async def sides(
    repo: Repository, base: str, head: str | None
) -> AsyncIterator[tuple[Repository, Repository, str, str]]:
    """The repository at ``base`` and at ``head`` (None: ``repo``, the working
    tree), with labels, from git objects."""
    base_commit = await resolve_revision(repo.root, base, flag="--base")
    head_commit = await resolve_revision(repo.root, head, flag="--head") if head else None
    store = BlobStore(repo.root)
    async with History.open(repo.root, store) as old, History.open(repo.root, store) as new:
        base_repo = await old.at(base_commit, repo.options)
        head_repo = repo if head_commit is None else await new.at(head_commit, repo.options)
        head_label = f"{head} ({head_commit[:12]})" if head_commit else "the working tree"
        yield base_repo, head_repo, f"{base} ({base_commit[:12]})", head_label


async def affected(repo: Repository, base: str, head: str | None = None) -> Comparison:
    """What changes between ``base`` and ``head`` (default: the working tree)."""
    async with sides(repo, base, head) as (base_repo, head_repo, base_label, head_label):
        found, unchanged = await compare(base_repo, head_repo)
        files = await changed_files(repo.root, base, head)
    return Comparison(base_label, head_label, tuple(found), tuple(unchanged), tuple(files))
