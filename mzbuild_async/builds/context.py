"""The Docker build context: which files go in, and the tar stream that carries them.

The context is the image's visible files (those the fingerprint hashed),
filtered by its ``.dockerignore`` exactly as the Docker CLI filters a
directory, plus the pre-image outputs. It is streamed as a tar, file by
file, with bounded memory and without writing into the working tree. The
``Dockerfile`` with ``MZFROM x`` rewritten to ``FROM <spec of x>`` travels
in the tar under :data:`CONTEXT_DOCKERFILE`; an augmented ``.dockerignore``
makes the engine drop it (and itself) before any ``COPY`` sees them.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import anyio

from ..errors import DockerBuildError
from ..model.manifest import MZFROM_RE

#: Name of the rewritten Dockerfile inside the context tar.
CONTEXT_DOCKERFILE = ".mzbuild.Dockerfile"
DOCKERIGNORE = ".dockerignore"
#: Files at most this big are read in one call; bigger ones in chunks of it.
CHUNK = 1 << 20
BLOCK = tarfile.BLOCKSIZE


@dataclass(frozen=True)
class Entry:
    """One file of the context: where it is on disk and its name in the tar."""

    source: Path
    name: str


# -- .dockerignore ------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool


def _compile(pattern: str) -> re.Pattern[str]:  # noqa: PLR0912 - a translation table
    """A ``.dockerignore`` glob as a regex (moby's patternmatcher rules)."""
    out = ["^"]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        ch = pattern[i]
        i += 1
        if in_class:
            out.append(ch if ch != "\\" else "\\\\")
            in_class = ch != "]"
        elif ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            if i < n:
                out.append(re.escape(pattern[i]))
                i += 1
            else:
                out.append("\\\\")
        elif ch == "[":
            out.append("[")
            in_class = True
            if i < n and pattern[i] in "!^":
                out.append("^")
                i += 1
        else:
            out.append(re.escape(ch))
    out.append("$")
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error:
        return re.compile(re.escape(pattern))


class DockerIgnore:
    """The patterns of a ``.dockerignore`` file, matched as the Docker CLI does.

    Later patterns win; ``!`` re-includes; a pattern that matches a parent
    directory matches everything under it.
    """

    def __init__(self, text: str) -> None:
        self.lines: list[str] = []
        self._patterns: list[_Pattern] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            self.lines.append(line)
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            cleaned = os.path.normpath(line) if line else line
            if len(cleaned) > 1 and cleaned.startswith("/"):
                cleaned = cleaned.lstrip("/") or "/"
            if cleaned:
                self._patterns.append(_Pattern(_compile(cleaned), exclusion))

    def excludes(self, path: str) -> bool:
        """Whether the context-relative ``path`` is left out of the context."""
        parts = path.split("/")
        parents = ["/".join(parts[: i + 1]) for i in range(len(parts) - 1)]
        matched = False
        for pattern in self._patterns:
            if pattern.exclusion != matched:
                continue
            hit = bool(pattern.regex.match(path)) or any(pattern.regex.match(p) for p in parents)
            if hit:
                matched = not pattern.exclusion
        return matched


# -- What goes in ---------------------------------------------------------------


def context_entries(
    root: Path,
    directory: str,
    files: Iterable[str],
    *,
    copies: Sequence[tuple[str, str]] = (),
    staged: Path | None = None,
    dockerignore: str | None = None,
) -> list[Entry]:
    """The context of an image in ``directory``, sorted by name, without duplicates.

    ``files`` are repository paths under ``directory``; ``copies`` are
    ``(repository path, context name)`` pairs of ``copy`` pre-images;
    ``staged`` is a directory of pre-image outputs (cargo binaries) whose
    files go in at their relative names. Later sources win on a clash, as
    the original's pre-images overwrite files in the image directory.
    """
    prefix = f"{directory}/" if directory else ""
    chosen: dict[str, Path] = {}
    for path in files:
        chosen[path[len(prefix) :] if path.startswith(prefix) else path] = root / path
    for path, name in copies:
        chosen[name] = root / path
    if staged is not None:
        for dirpath, _dirs, names in os.walk(staged):
            for name in names:
                full = Path(dirpath) / name
                chosen[full.relative_to(staged).as_posix()] = full
    ignore = DockerIgnore(dockerignore) if dockerignore else None
    return [
        Entry(source, name)
        for name, source in sorted(chosen.items())
        if name not in (CONTEXT_DOCKERFILE,)
        and not (ignore and name != DOCKERIGNORE and ignore.excludes(name))
    ]


def rewrite_dockerfile(dockerfile: bytes, specs: Mapping[str, str]) -> bytes:
    """``MZFROM x`` lines replaced by ``FROM <spec of x>``, the rest of each line kept."""
    out: list[bytes] = []
    for line in dockerfile.splitlines(keepends=True):
        match = MZFROM_RE.match(line)
        if match:
            name = match.group(1).decode()
            if name not in specs:
                raise DockerBuildError(f"Dockerfile: MZFROM {name} names no dependency")
            out.append(b"FROM " + specs[name].encode() + line[match.end() :])
        else:
            out.append(line)
    return b"".join(out)


def augmented_dockerignore(text: str | None) -> bytes:
    """The image's ``.dockerignore`` plus lines that hide our own files from ``COPY``."""
    base = text if text else ""
    if base and not base.endswith("\n"):
        base += "\n"
    return (base + f"{DOCKERIGNORE}\n{CONTEXT_DOCKERFILE}\n").encode()


def input_list_digest(inputs: Iterable[str]) -> str:
    """A digest of the image's input file list, recorded as a label."""
    h = hashlib.sha256()
    for path in inputs:
        h.update(path.encode("utf-8", "surrogateescape") + b"\n")
    return f"sha256:{h.hexdigest()}"


# -- The tar stream ---------------------------------------------------------------


def _header(name: str, st: os.stat_result, link: str | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        info.mode = 0o777
    else:
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & stat.S_IXUSR else 0o644
    return info


def _memory_entry(name: str, data: bytes, mode: int = 0o644) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    return _encode(info) + data + _padding(len(data))


def _encode(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


def _open_entry(entry: Entry) -> tuple[bytes, BinaryIO | None, int]:
    """Header bytes, an open file (None for a link) and the size to read."""
    try:
        st = os.lstat(entry.source)
        link = os.readlink(entry.source) if stat.S_ISLNK(st.st_mode) else None
        if link is None and not stat.S_ISREG(st.st_mode):
            raise DockerBuildError(f"{entry.source}: not a regular file; cannot send it")
        f = None if link is not None else open(entry.source, "rb")  # noqa: SIM115
    except FileNotFoundError:
        raise DockerBuildError(
            f"{entry.source}: vanished while the build context was sent; re-run"
        ) from None
    except OSError as exc:
        raise DockerBuildError(f"{entry.source}: cannot read: {exc.strerror}") from None
    info = _header(entry.name, st, link)
    return _encode(info), f, info.size


def _read_small(entry: Entry) -> bytes:
    """Header, data and padding of a small file in one go (one thread hop)."""
    header, f, size = _open_entry(entry)
    if f is None:
        return header
    with f:
        data = f.read(size + 1)
    if len(data) != size:
        raise DockerBuildError(f"{entry.source}: changed while the build context was sent; re-run")
    return header + data + _padding(size)


async def stream_context(
    entries: Sequence[Entry], dockerfile: bytes, *, dockerignore: str | None = None
) -> AsyncIterator[bytes]:
    """The context as a tar, yielded in pieces of at most about :data:`CHUNK` bytes.

    Files are read off the event loop; small ones are batched into one read
    so a context of thousands of files costs few thread hops.
    """
    yield _memory_entry(CONTEXT_DOCKERFILE, dockerfile) + _memory_entry(
        DOCKERIGNORE, augmented_dockerignore(dockerignore)
    )
    batch: list[Entry] = []
    batch_bytes = 0

    def read_batch(todo: list[Entry]) -> bytes:
        return b"".join(_read_small(e) for e in todo)

    for entry in entries:
        if entry.name == DOCKERIGNORE:
            continue
        try:
            size = os.lstat(entry.source).st_size
        except OSError:
            size = 0
        if size < CHUNK:
            batch.append(entry)
            batch_bytes += size
            if batch_bytes >= CHUNK or len(batch) >= 256:
                yield await anyio.to_thread.run_sync(read_batch, batch)
                batch, batch_bytes = [], 0
            continue
        if batch:
            yield await anyio.to_thread.run_sync(read_batch, batch)
            batch, batch_bytes = [], 0
        async for piece in _stream_large(entry):
            yield piece
    if batch:
        yield await anyio.to_thread.run_sync(read_batch, batch)
    yield b"\0" * (2 * BLOCK)


async def _stream_large(entry: Entry) -> AsyncIterator[bytes]:
    header, f, size = await anyio.to_thread.run_sync(_open_entry, entry)
    yield header
    if f is None:
        return
    try:
        left = size
        while left > 0:
            piece = await anyio.to_thread.run_sync(f.read, min(CHUNK, left))
            if not piece:
                raise DockerBuildError(
                    f"{entry.source}: changed while the build context was sent; re-run"
                )
            left -= len(piece)
            yield piece
    finally:
        f.close()
    yield _padding(size)
