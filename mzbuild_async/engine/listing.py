"""Many "is it in the engine?" questions answered by one listing of its tags.

A run asks the local engine about each of its images; at 1,000 images that is
1,000 inspects, each a request of its own (about 2 ms of our CPU apiece). Asked
about at least :data:`LIST_FROM` images at once, :class:`TagSnapshot` asks the
engine instead for the tags of those images' repositories in one
``GET /images/json`` (filtered by ``reference``, so an engine with many other
images sends none of them) and answers from it. Each listed answer is used once:
a later question about the same image (after a build, say) goes to the engine.
A listing that fails leaves every question to the engine, where the failure is
said the usual way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from ..errors import EngineError, UsageError
from ..registry.names import DOCKER_HUB, parse_reference
from .protocol import ImageInspector

#: The fewest images asked about at once that are listed rather than inspected.
LIST_FROM = 32
#: Characters a ``reference`` filter pattern would read as wildcards.
_WILDCARDS = frozenset("*?[\\")


@runtime_checkable
class TagLister(Protocol):
    """An engine that lists its tags."""

    async def tags(self, patterns: Sequence[str]) -> set[str]:
        """The tags (as the engine writes them: :func:`familiar`) of its images whose
        reference matches one of ``patterns`` (the engine's ``reference`` filter)."""
        ...


def familiar(spec: str) -> str:
    """``spec`` as the engine writes its tags: Docker Hub's ``docker.io/`` and
    ``library/`` left out."""
    ref = parse_reference(spec)
    if ref.domain != DOCKER_HUB:
        return f"{ref.domain}/{ref.repository}:{ref.tag or 'latest'}"
    path = ref.repository.removeprefix("library/")
    return f"{path}:{ref.tag or 'latest'}"


def patterns(specs: Iterable[str]) -> list[str] | None:
    """The ``reference`` patterns that take in every spec's repository (one per
    directory: ``127.0.0.1:5000/ci/*``); None if some spec cannot be put so."""
    out: set[str] = set()
    for spec in specs:
        try:
            name = familiar(spec).rpartition(":")[0]
        except UsageError:
            return None
        directory, _, _ = name.rpartition("/")
        if _WILDCARDS & set(name):
            return None
        out.add(f"{directory}/*" if directory else "*")
    return sorted(out)


def image_tags(listed: Sequence[object]) -> set[str]:
    """Every tag in an engine's ``GET /images/json`` answer."""
    return {
        tag
        for image in listed
        if isinstance(image, dict)
        for tag in image.get("RepoTags") or ()
        if isinstance(tag, str)
    }


def matches(pattern: str, tag: str) -> bool:
    """Whether the engine's ``reference`` filter ``pattern`` takes in ``tag`` (a
    familiar tag): Go's ``path.Match`` on the tag or on its name, ``*`` and ``?``
    within one path component."""
    translated = "".join(
        "[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in pattern
    )
    name = tag.rpartition(":")[0] if ":" in tag.rpartition("/")[2] else tag
    return any(re.fullmatch(translated, text) for text in (tag, name))


class TagSnapshot:
    """``exists`` for an engine, answered from one listing where many are asked."""

    def __init__(self, engine: ImageInspector) -> None:
        self.engine = engine
        self._listed: dict[str, bool] = {}

    async def prefetch(self, specs: Sequence[str]) -> None:
        """About to ask about ``specs``: list them at once if they are many."""
        if len(specs) < LIST_FROM or not isinstance(self.engine, TagLister):
            return
        wanted = patterns(specs)
        if wanted is None:
            return
        try:
            tags = await self.engine.tags(wanted)
        except EngineError:
            return  # (each question then goes to the engine and says what is wrong)
        self._listed.update((spec, familiar(spec) in tags) for spec in specs)

    def forget(self, specs: Iterable[str]) -> None:
        """Drop the listed answers of ``specs`` (not asked for by now: stale later)."""
        for spec in specs:
            self._listed.pop(spec, None)

    async def exists(self, spec: str) -> bool:
        """Whether the engine has ``spec``: from the listing the first time, if listed."""
        listed = self._listed.pop(spec, None)
        if listed is not None:
            return listed
        return await self.engine.exists(spec)
