"""Why an image's fingerprint differs from another: files, options, dependencies.

``explain IMAGE --against REV`` computes the other side at a git revision
from git objects (:mod:`.commits`: the working tree and the index are never
touched) and compares, input by input, what went into
each fingerprint; dependencies whose fingerprints differ are explained
the same way, down to their files. ``--against SPEC`` looks for the commit
(among the last ``search`` ones) whose fingerprint is the spec's.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import GitError, UsageError
from ..model.spec import fingerprint_of
from .commits import History
from .fingerprint import pre_image_extra
from .gitview import _git
from .repository import InputFile, Repository


@dataclass(frozen=True)
class Changed:
    """An input present on both sides whose content or mode differs."""

    path: str
    old_mode: int
    new_mode: int
    old_sha1: str
    new_sha1: str

    @property
    def kind(self) -> str:
        """``content``, ``mode`` or ``content+mode``."""
        parts = []
        if self.old_sha1 != self.new_sha1:
            parts.append("content")
        if self.old_mode != self.new_mode:
            parts.append("mode")
        return "+".join(parts)


@dataclass(frozen=True)
class Explanation:
    """The difference between one image's two fingerprints."""

    image: str
    fingerprint: str
    #: The other side's fingerprint ("" when the image does not exist there).
    other: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[Changed, ...] = ()
    #: ``(what, other side, this side)`` for options that differ.
    options: tuple[tuple[str, str, str], ...] = ()
    dependencies: tuple[Explanation, ...] = field(default=())

    @property
    def same(self) -> bool:
        """Whether the two fingerprints are equal."""
        return self.fingerprint == self.other

    def to_json(self) -> dict[str, Any]:
        """The ``explain --json`` document of this image, dependencies nested."""
        # Deepest first, with an explicit stack: a chain of any depth works.
        done: dict[int, dict[str, Any]] = {}
        stack = [self]
        while stack:
            node = stack[-1]
            waiting = [d for d in node.dependencies if id(d) not in done]
            if waiting:
                stack += waiting
                continue
            stack.pop()
            done[id(node)] = node._document([done[id(d)] for d in node.dependencies])
        return done[id(self)]

    def _document(self, dependencies: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "image": self.image,
            "fingerprint": self.fingerprint,
            "other": self.other or None,
            "same": self.same,
            "added": list(self.added),
            "removed": list(self.removed),
            "changed": [
                {
                    "path": c.path,
                    "kind": c.kind,
                    "mode": [oct(c.old_mode)[2:], oct(c.new_mode)[2:]],
                    "sha1": [c.old_sha1, c.new_sha1],
                }
                for c in self.changed
            ],
            "options": [{"what": w, "other": o, "this": t} for w, o, t in self.options],
            "dependencies": dependencies,
        }

    def text(self, other_label: str) -> str:
        """A readable account, dependencies nested under their dependent (each once).

        Walked with an explicit stack: a chain of any depth prints.
        """
        lines: list[str] = []
        seen: set[str] = set()
        # An item is an account to write (and its indent) or a line as it is.
        stack: list[tuple[Explanation, str] | str] = [(self, "")]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                lines.append(item)
                continue
            node, indent = item
            head = f"{indent}{node.image}: {node.fingerprint}"
            if node.image in seen:
                lines.append(f"{head} (explained above)")
                continue
            seen.add(node.image)
            if not node.other:
                lines.append(f"{head} (no such image at {other_label})")
                continue
            if node.same:
                lines.append(f"{head}, the same at {other_label}")
                continue
            lines.append(f"{head}, was {node.other} at {other_label}")
            pad = indent + "  "
            lines += [f"{pad}added     {p}" for p in node.added]
            lines += [f"{pad}removed   {p}" for p in node.removed]
            for c in node.changed:
                modes = f"{oct(c.old_mode)[2:]} -> {oct(c.new_mode)[2:]}"
                if c.kind == "mode":
                    lines.append(f"{pad}mode      {c.path} ({modes})")
                elif c.kind == "content":
                    lines.append(f"{pad}changed   {c.path}")
                else:
                    lines.append(f"{pad}changed   {c.path} (and mode {modes})")
            for what, old, new in node.options:
                lines.append(f"{pad}option    {what}: {old!r} -> {new!r}")
            # Each dependency's heading, then its account: pushed in reverse.
            for dep in reversed(node.dependencies):
                stack.append((dep, pad + "  "))
                stack.append(f"{pad}dependency {dep.image} changed:")
        return "\n".join(lines)


def _hex(sha1: bytes) -> str:
    return sha1.hex()


def _options(repo: Repository, name: str) -> dict[str, str]:
    """The non-file parts of an image's own hash, by a readable name."""
    image = repo.image(name)
    found = {"build options": repo.options.fingerprint_suffix()}
    for i, pre_image in enumerate(image.manifest.pre_images):
        kind = "cargo-build" if type(pre_image).__name__ == "CargoBuild" else "copy"
        found[f"pre-image {i + 1} ({kind}) extra"] = pre_image_extra(pre_image, repo.options)
    found["pre-images"] = str(len(image.manifest.pre_images))
    found["dependencies"] = ", ".join(sorted(image.dependencies))
    return found


async def explain(ours: Repository, theirs: Repository, name: str) -> Explanation:
    """Why ``name``'s fingerprint in ``ours`` differs from the one in ``theirs``."""
    return (await explain_many(ours, theirs, [name]))[name]


async def explain_many(
    ours: Repository, theirs: Repository, names: Sequence[str]
) -> dict[str, Explanation]:
    """:func:`explain` for each of ``names``, every image below them accounted for
    once (an account is shared by every image above it: a chain of N images costs N
    accounts, not N squared)."""
    await ours.fingerprints(list(names))
    await theirs.fingerprints([n for n in names if n in theirs.images])
    memo: dict[str, Explanation] = {}
    # Dependencies first, so each image finds its dependencies' accounts
    # made: a loop, not recursion, whatever the depth of the chain.
    for image in ours.resolve(list(names)):
        memo[image.name] = await _explain_one(ours, theirs, image.name, memo)
    return {name: memo[name] for name in names}


async def _explain_one(
    ours: Repository, theirs: Repository, image: str, memo: Mapping[str, Explanation]
) -> Explanation:
    """The account of ``image``, given those of its dependencies in ``memo``."""
    mine = await ours.describe(image)
    if image not in theirs.images:
        return Explanation(image, str(mine.fingerprint), "")
    other = await theirs.describe(image)
    if mine.fingerprint == other.fingerprint:
        return Explanation(image, str(mine.fingerprint), str(other.fingerprint))
    new: dict[str, InputFile] = {f.path: f for f in mine.inputs}
    old: dict[str, InputFile] = {f.path: f for f in other.inputs}
    changed = tuple(
        Changed(p, old[p].mode, new[p].mode, _hex(old[p].sha1), _hex(new[p].sha1))
        for p in sorted(new.keys() & old.keys())
        if (old[p].mode, old[p].sha1) != (new[p].mode, new[p].sha1)
    )
    mine_options, their_options = _options(ours, image), _options(theirs, image)
    options = tuple(
        (what, their_options.get(what, "(none)"), mine_options.get(what, "(none)"))
        for what in sorted(mine_options.keys() | their_options.keys())
        if mine_options.get(what) != their_options.get(what)
    )
    deps = tuple(
        memo[dep]
        for dep in sorted(mine.dependencies)
        if other.dependencies.get(dep) != mine.dependencies[dep]
    )
    return Explanation(
        image,
        str(mine.fingerprint),
        str(other.fingerprint),
        added=tuple(sorted(new.keys() - old.keys())),
        removed=tuple(sorted(old.keys() - new.keys())),
        changed=changed,
        options=options,
        dependencies=deps,
    )


async def resolve_revision(root: Path, rev: str, *, flag: str = "--against") -> str:
    """The commit ``rev`` names (a clear error, naming ``flag``, when it names none)."""
    if rev.startswith("-"):
        raise UsageError(f"{flag} {rev}: not a revision")
    try:
        out = await _git(("git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"), root)
    except GitError:
        spec = " (or an image spec)" if flag == "--against" else ""
        shallow = (root / ".git" / "shallow").is_file()
        hint = f"; this is a shallow clone: fetch it (git fetch origin {rev})" if shallow else ""
        raise UsageError(
            f"{flag} {rev}: no such revision in {root}; give a commit, branch or tag{spec}{hint}"
        ) from None
    return out.decode().strip()


@asynccontextmanager
async def repository_at(repo: Repository, rev: str) -> AsyncIterator[Repository]:
    """The repository as it was at ``rev``, same options, from git objects (nothing is
    checked out or extracted: :mod:`.commits`)."""
    commit = await resolve_revision(repo.root, rev)
    async with History.open(repo.root) as history:
        yield await history.at(commit, repo.options)


def spec_fingerprint(text: str) -> str | None:
    """The fingerprint in an image spec (or a bare fingerprint), else None."""
    candidate = fingerprint_of(text)
    if len(candidate) != 32:
        return None
    try:
        base64.b32decode(candidate.upper())
    except ValueError:
        return None
    return candidate.upper()


async def find_revision(repo: Repository, name: str, wanted: str, search: int) -> str | None:
    """The newest of the last ``search`` commits where ``name`` had fingerprint ``wanted``."""
    out = await _git(("git", "rev-list", f"--max-count={search}", "HEAD"), repo.root)
    async with History.open(repo.root) as history:
        for commit in out.decode().split():
            old = await history.at(commit, repo.options)
            if name in old.images and str(await old.fingerprint(name)) == wanted:
                return commit
    return None
