"""Image specs at many commits, from git objects: nothing is checked out.

``gc`` needs every image's spec at hundreds of commits, under several build
options. A commit's tree is listed with one ``git ls-tree``; contents are
read with one ``git cat-file --batch`` per commit, and only for blobs not
seen before: a blob id names its content, so a file unchanged across commits
is hashed once for the whole walk (the fingerprint takes the content's
SHA-1, not git's blob id). The manifests, Dockerfiles and ``Cargo.toml``
files the image graph and the Cargo workspace are read from are written into
one scratch directory kept in step with the commit being read (what changed
since the previous commit is rewritten, the rest stays), with an empty
placeholder for each file whose mere presence Cargo reads (``src/main.rs``,
``src/bin/*.rs``: :func:`~.cargo.discovers`); nothing else is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..errors import GitError, InputError, shown_path
from ..model.graph import ImageGraph
from ..model.options import BuildOptions
from .cargo import discovers
from .gitview import GitView, _decode, _git, git_environ
from .hashing import MODE_SYMLINK, FileDigest, HashStatistics
from .repository import MANIFEST_NAME, Repository, load_images

#: Files whose content the image graph or the Cargo workspace is read from.
DEFINITIONS = frozenset({MANIFEST_NAME, "Dockerfile", "Cargo.toml"})
#: Git's mode of a submodule (a commit, not a file).
MODE_SUBMODULE = 0o160000
#: Symlinks followed at most while resolving one path (as the kernel's limit).
MAX_SYMLINKS = 40


@dataclass(frozen=True)
class Entry:
    """One file of a commit's tree: git's mode and blob id."""

    mode: int
    oid: str


Tree = Mapping[str, Entry]


async def list_tree(root: Path, commit: str) -> dict[str, Entry]:
    """The files of ``commit`` (submodules, which are not files, left out)."""
    out = await _git(("git", "ls-tree", "-r", "-z", "--full-tree", commit), root)
    tree: dict[str, Entry] = {}
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw = record.partition(b"\t")
        mode, kind, oid = meta.split()
        if kind == b"blob":
            tree[_decode(raw)] = Entry(int(mode, 8), oid.decode())
    return tree


async def tree_changes(root: Path, old: str, new: str) -> dict[str, Entry | None]:
    """The files that differ from ``old`` to ``new``: their entry at ``new``, None
    where removed (one ``git diff-tree``: far less than listing the whole tree)."""
    out = await _git(("git", "diff-tree", "-r", "-z", "--no-renames", old, new), root)
    changes: dict[str, Entry | None] = {}
    fields = out.split(b"\0")
    for meta, raw in zip(fields[0::2], fields[1::2], strict=False):
        if not meta.startswith(b":"):
            continue
        _, new_mode, _, new_oid, _ = meta[1:].split()
        mode = int(new_mode, 8)
        # Removed (mode 0) or a submodule (not a file): not in the tree.
        gone = mode in (0, MODE_SUBMODULE)
        changes[_decode(raw)] = None if gone else Entry(mode, new_oid.decode())
    return changes


@dataclass(frozen=True)
class Blob:
    """What the fingerprint takes from a blob's content (and, for the few blobs
    whose text is read, the text)."""

    sha1: bytes
    size: int
    data: bytes | None


def _cat(root: Path, oids: Sequence[str], keep: set[str]) -> dict[str, Blob]:
    """SHA-1 and size of each blob through one ``git cat-file --batch`` (a worker
    thread feeds the ids while this one reads, so neither pipe can fill up)."""
    proc = subprocess.Popen(
        ("git", "cat-file", "--batch"),
        cwd=root,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=git_environ(),
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def feed() -> None:
        try:
            stdin.write("".join(f"{oid}\n" for oid in oids).encode())
            stdin.close()
        except OSError:
            pass  # git ended early: the reader reports it

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    found: dict[str, Blob] = {}
    try:
        for oid in oids:
            header = stdout.readline().split()
            if len(header) != 3 or header[1] != b"blob":
                raise GitError(f"{root}: git cat-file could not read object {oid}")
            size = int(header[2])
            h = hashlib.sha1()
            parts: list[bytes] = []
            left = size
            while left:
                chunk = stdout.read(min(left, 1 << 20))
                if not chunk:
                    raise GitError(f"{root}: git cat-file ended in the middle of {oid}")
                h.update(chunk)
                if oid in keep:
                    parts.append(chunk)
                left -= len(chunk)
            stdout.read(1)  # the newline after each object
            found[oid] = Blob(h.digest(), size, b"".join(parts) if oid in keep else None)
    finally:
        proc.kill()
        proc.wait()
        feeder.join()
        stdout.close()
    return found


class BlobStore:
    """Blobs read so far, by id, for a whole walk over commits."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs: dict[str, Blob] = {}
        #: Bytes read from git (each blob once).
        self.bytes_read = 0

    async def load(self, oids: Iterable[str], *, keep: Iterable[str] = ()) -> None:
        """Read the blobs not read yet (keeping the text of those in ``keep``)."""
        kept = set(keep)
        missing = sorted(
            {o for o in oids if o not in self.blobs or (o in kept and self.blobs[o].data is None)}
        )
        if missing:
            found = await anyio.to_thread.run_sync(_cat, self.root, missing, kept)
            self.bytes_read += sum(b.size for b in found.values())
            self.blobs.update(found)

    def text(self, oid: str) -> bytes:
        """The content of a blob loaded with ``keep``."""
        data = self.blobs[oid].data
        assert data is not None, oid
        return data


class TreeHasher:
    """File digests of one commit's tree, from its blobs (the
    :class:`~.hashing.FileHasher` interface a :class:`~.repository.Repository` uses)."""

    def __init__(self, tree: Tree, store: BlobStore) -> None:
        self.tree = tree
        self.store = store
        self._digests: dict[str, FileDigest] = {}
        self._links = [p for p, e in tree.items() if e.mode == MODE_SYMLINK]

    @property
    def hashed(self) -> Mapping[str, FileDigest]:
        """Every digest computed so far."""
        return self._digests

    async def preload(self) -> None:
        """Nothing to read ahead."""

    def statistics(self) -> HashStatistics:
        """Files and bytes known (git read them; nothing was read from disk)."""
        return HashStatistics(
            files=len(self._digests),
            bytes=sum(d.size for d in self._digests.values()),
            cached=0,
            seconds=0.0,
            workers=1,
        )

    async def digests(self, paths: Iterable[str]) -> dict[str, FileDigest]:
        """The digests of ``paths`` (each a file of the tree)."""
        wanted = set(paths)
        missing = wanted.difference(self._digests)
        if self._links:
            links = [self.tree[p].oid for p in self._links]
            await self.store.load(links, keep=links)
        targets = {p: self._resolve(p) for p in missing}
        await self.store.load(self.tree[t].oid for t in targets.values())
        for path, target in targets.items():
            blob = self.store.blobs[self.tree[target].oid]
            self._digests[path] = FileDigest(self.tree[path].mode, blob.sha1, blob.size)
        return {p: self._digests[p] for p in wanted}

    def _resolve(self, path: str) -> str:
        """The regular file ``path`` names, following symlinks inside the tree as
        the kernel would."""
        if not self._links:
            return path
        parts = path.split("/")
        hops, i = 0, 0
        while i < len(parts):
            entry = self.tree.get("/".join(parts[: i + 1]))
            if entry is None or entry.mode != MODE_SYMLINK:
                i += 1
                continue
            hops += 1
            target = self.store.text(entry.oid).decode("utf-8", "surrogateescape")
            joined = posixpath.normpath(posixpath.join(*parts[:i], target, *parts[i + 1 :]))
            if hops > MAX_SYMLINKS or target.startswith("/") or joined.split("/")[0] == "..":
                raise InputError(
                    f"{shown_path(path)}: a symlink to {target!r}, which leaves the repository"
                    " (or loops); make it a file"
                )
            parts, i = joined.split("/"), 0
        resolved = "/".join(parts)
        if resolved not in self.tree:
            raise InputError(f"{shown_path(path)}: a symlink to a missing file or a directory")
        return resolved


def _written(path: str, entry: Entry) -> bool:
    """Whether the scratch directory holds ``path``: a definition, a symlink (which
    a definition may be read through) or a file Cargo discovers targets by."""
    return posixpath.basename(path) in DEFINITIONS or entry.mode == MODE_SYMLINK or discovers(path)


class Scratch:
    """A directory holding one commit's definitions, updated commit by commit."""

    def __init__(self, directory: Path, store: BlobStore) -> None:
        self.directory = directory
        self.store = store
        self.tree: dict[str, Entry] = {}

    async def show(self, tree: Mapping[str, Entry]) -> None:
        """Make the directory hold ``tree``'s definitions and placeholders."""
        tree = {p: e for p, e in tree.items() if _written(p, e)}
        gone = [p for p in self.tree if p not in tree]
        fresh = {p: e for p, e in tree.items() if self.tree.get(p) != e}
        texts = [
            e.oid
            for p, e in fresh.items()
            if e.mode == MODE_SYMLINK or posixpath.basename(p) in DEFINITIONS
        ]
        await self.store.load(texts, keep=texts)
        await anyio.to_thread.run_sync(self._write, gone, fresh)
        self.tree = dict(tree)

    def _write(self, gone: list[str], fresh: Mapping[str, Entry]) -> None:
        root = str(self.directory)
        # The first commit writes thousands of placeholders into an empty directory:
        # plain system calls, no checks for what was there.
        first = not self.tree
        for path in gone:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(os.path.join(root, path))
        made: set[str] = set()
        for path, entry in fresh.items():
            full = os.path.join(root, path)
            parent = os.path.dirname(full)
            if parent not in made:
                os.makedirs(parent, exist_ok=True)
                made.add(parent)
            if not first:
                if os.path.isdir(full) and not os.path.islink(full):  # a directory became a file
                    shutil.rmtree(full)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(full)
            if entry.mode == MODE_SYMLINK:
                os.symlink(self.store.text(entry.oid), full)
            elif posixpath.basename(path) in DEFINITIONS:
                Path(full).write_bytes(self.store.text(entry.oid))
            else:
                os.close(os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))


class History:
    """The repository at any commit, each opened without a checkout.

    Use as ``async with History.open(root) as history`` and then
    :meth:`at` for each commit, in any order (nearby commits first is
    cheapest: the scratch directory changes least).
    """

    def __init__(self, root: Path, scratch: Scratch) -> None:
        self.root = root
        self.store = scratch.store
        self._scratch = scratch
        #: The last commit, its tree and repository (the next is read as changes to it).
        self._last: tuple[str, dict[str, Entry], Repository] | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, root: Path, store: BlobStore | None = None) -> AsyncIterator[History]:
        """A walk over ``root``'s history (its scratch directory removed at the end);
        walks that share a ``store`` read each blob once between them."""
        directory = Path(tempfile.mkdtemp(prefix="mzbuild-history-"))
        try:
            yield cls(root, Scratch(directory / "tree", store or BlobStore(root)))
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, directory, True)

    async def at(self, commit: str, options: BuildOptions) -> Repository:
        """The repository as it was at ``commit``, with ``options``.

        A manifest or Cargo error of that commit is raised as it would be in
        a checkout of it.
        """
        last = self._last
        if last is None:
            tree = await list_tree(self.root, commit)
        else:
            changes = await tree_changes(self.root, last[0], commit)
            tree = dict(last[1])
            for path, entry in changes.items():
                if entry is None:
                    tree.pop(path, None)
                else:
                    tree[path] = entry
            edits = all(
                entry is not None
                and path in last[1]
                and not _written(path, entry)
                and not _written(path, last[1][path])
                for path, entry in changes.items()
            )
            if edits:
                # Only contents changed, none the graph or the workspace is read from.
                repo = last[2].edited(set(changes), TreeHasher(tree, self.store), options)
                self._last = (commit, tree, repo)
                return repo
        hasher = TreeHasher(tree, self.store)
        await self._scratch.show(tree)
        directory = self._scratch.directory
        view = GitView(directory, tuple(sorted(tree)))
        # Old commits' manifest warnings are not this checkout's to fix.
        graph = ImageGraph.build(load_images(directory, view, warnings=[]))
        repo = Repository(directory, options, view, graph, hasher=hasher)
        self._last = (commit, tree, repo)
        return repo


async def specs_at(
    history: History, commit: str, variants: Sequence[BuildOptions]
) -> dict[str, set[str]]:
    """Every image's spec at ``commit`` under each of ``variants``, by image name.

    The files are hashed once; each variant only rehashes the records.
    """
    if not variants:
        return {}
    repo = await history.at(commit, variants[0])
    found: dict[str, set[str]] = {name: set() for name in repo.images}
    for i, options in enumerate(variants):
        # The first computes (and loads the workspace); the others share it.
        each = repo if i == 0 else repo.variant(options)
        for name, spec in (await each.specs(list(repo.images))).items():
            found[name].add(spec)
    return found
