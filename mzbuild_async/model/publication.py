"""Where images are published and which tags may move: ``[[publish]]`` and ``[promote]``.

The primary registry (``--image-registry``, ``--image-prefix``) names the
image specs and their fingerprint tags; mirrors receive the same tags.
From ``mzbuild-async.toml``::

    [[publish]]                 # one table per mirror
    registry = "ghcr.io"
    prefix = "materializeinc/"  # default: the primary's prefix

    [promote]
    moving = ["latest", "unstable"]   # tags `promote` may move (others never do)

``--mirror-registry REG`` adds a mirror with the primary's prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError
from .options import CONFIG_NAME
from .spec import TAG_PREFIX, repository_problem

#: The keys of a ``[[publish]]`` table, and what each means (the reference in docs/).
PUBLISH_KEYS = {
    "registry": "a mirror registry every image is published to as well (host[:port][/path])",
    "prefix": "the image name prefix there (default: the primary's ``--image-prefix``)",
}
#: The keys of the ``[promote]`` table.
PROMOTE_KEYS = {
    "moving": 'the tags ``promote`` may point at other content (default: ["latest", "unstable"])',
}
DEFAULT_MOVING = ("latest", "unstable")
#: An OCI tag (the distribution spec's grammar).
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid OCI tag, else one line saying what one is."""
    if not _TAG.fullmatch(tag):
        raise UsageError(
            f"{tag!r} is not a valid tag: letters, digits, '_', '.', '-'"
            " (at most 128, not starting with '.' or '-')"
        )
    return tag


#: Tags of the tool's own: fingerprint tags and their ``.failed`` markers, and the
#: referrers fallback tags attestations hang off (``sha256-<hex>``, cosign's too).
OWN_TAG_PREFIXES = (TAG_PREFIX, "sha256-")


def check_release_tag(tag: str) -> str:
    """``tag`` if it may be a release tag: a valid tag that is not one of the names
    the tool gives its own tags (moving one of those would make a commit's image
    another's), else one line saying why."""
    check_tag(tag)
    if tag.startswith(OWN_TAG_PREFIXES):
        raise UsageError(
            f"{tag!r} is a name of the tool's own tags (mzbuild-<fingerprint>, its .failed"
            " marker, sha256-<hex> referrers tags), never a release tag, --force or not;"
            " choose another tag"
        )
    return tag


@dataclass(frozen=True)
class Destination:
    """One registry an image is published to, with the name prefix used there."""

    registry: str
    prefix: str

    def spec(self, name: str, tag: str) -> str:
        """The reference of image ``name`` at ``tag`` here."""
        return f"{self.registry}/{self.prefix}{name}:{tag}"

    def check(self, where: str) -> Destination:
        """This destination if it makes valid repository names, else one line naming ``where``."""
        problem = repository_problem(self.registry, self.prefix)
        if problem is not None:
            raise UsageError(f"{where}: {self.registry}/{self.prefix}: {problem}")
        return self


@dataclass(frozen=True)
class PublishConfig:
    """The ``[[publish]]`` and ``[promote]`` tables as written (a mirror's prefix may be
    left to the primary's, which the command's flags decide)."""

    mirrors: tuple[tuple[str, str | None], ...] = ()
    moving: frozenset[str] = frozenset(DEFAULT_MOVING)

    def publication(self, primary: Destination, flags: Iterable[str] = ()) -> Publication:
        """Where to publish: ``primary``, these mirrors and ``--mirror-registry`` ``flags``."""
        mirrors = [
            Destination(r, primary.prefix if p is None else p).check(CONFIG_NAME)
            for r, p in self.mirrors
        ]
        flags = tuple(flags)
        mirrors += [
            Destination(r.rstrip("/"), primary.prefix).check("--mirror-registry") for r in flags
        ]
        unique = tuple(d for d in dict.fromkeys(mirrors) if d != primary)
        return Publication(primary, unique, self.moving, flags)


@dataclass(frozen=True)
class Publication:
    """The primary registry, the mirrors and the tags ``promote`` may move."""

    primary: Destination
    mirrors: tuple[Destination, ...] = ()
    moving: frozenset[str] = frozenset(DEFAULT_MOVING)
    #: The mirrors given as ``--mirror-registry`` (a CI step is given them again).
    flagged: tuple[str, ...] = ()

    @property
    def destinations(self) -> tuple[Destination, ...]:
        """The primary first, then every mirror."""
        return (self.primary, *self.mirrors)


def publish_config(data: Mapping[str, Any]) -> PublishConfig:
    """The ``[[publish]]`` and ``[promote]`` tables of the parsed file, checked."""
    tables = data.get("publish", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{CONFIG_NAME}: publish must be an array of tables: [[publish]]")
    mirrors: list[tuple[str, str | None]] = []
    for i, table in enumerate(tables, 1):
        label = f"{CONFIG_NAME}: publish #{i}"
        unknown = sorted(set(table) - set(PUBLISH_KEYS))
        if unknown:
            raise UsageError(
                f"{label}: unknown setting {unknown[0]!r}; known: {', '.join(PUBLISH_KEYS)}"
            )
        registry = table.get("registry")
        if not isinstance(registry, str) or not registry.strip("/ "):
            raise UsageError(f"{label}: registry must be a registry (host[:port][/path])")
        prefix = table.get("prefix")
        if prefix is not None and not isinstance(prefix, str):
            raise UsageError(f"{label}: prefix must be a string")
        mirrors.append((registry.rstrip("/"), prefix))
    promote = data.get("promote", {})
    if not isinstance(promote, dict):
        raise UsageError(f"{CONFIG_NAME}: [promote] must be a table")
    unknown = sorted(set(promote) - set(PROMOTE_KEYS))
    if unknown:
        raise UsageError(
            f"{CONFIG_NAME}: [promote]: unknown setting {unknown[0]!r};"
            f" known: {', '.join(PROMOTE_KEYS)}"
        )
    moving = promote.get("moving", list(DEFAULT_MOVING))
    if not isinstance(moving, list) or not all(isinstance(t, str) for t in moving):
        raise UsageError(f"{CONFIG_NAME}: [promote] moving must be a list of tags")
    for tag in moving:
        try:
            check_release_tag(tag)
        except UsageError as exc:
            raise UsageError(f"{CONFIG_NAME}: [promote] moving: {exc}") from None
    return PublishConfig(tuple(mirrors), frozenset(moving))
