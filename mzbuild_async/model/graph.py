"""The image DAG: images, their ``MZFROM`` edges, order and selection.

Pure data and functions over parsed manifests; no I/O.
"""

from __future__ import annotations

import bisect
import functools
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import RepositoryError, UsageError
from .manifest import Manifest, MzFrom

DOCKERFILE_NAME = "Dockerfile"


@dataclass(frozen=True)
class Image:
    """One image: its manifest, directory and ``MZFROM`` dependencies."""

    manifest: Manifest
    #: Repository-relative directory (``""`` for an image at the root).
    directory: str
    mzfrom: tuple[MzFrom, ...]

    @property
    def name(self) -> str:
        """The image's name."""
        return self.manifest.name

    @functools.cached_property
    def dependencies(self) -> tuple[str, ...]:
        """Distinct direct dependencies, sorted by name."""
        return tuple(sorted({m.name for m in self.mzfrom}))

    @property
    def dockerfile(self) -> str:
        """Repository-relative path of the image's Dockerfile."""
        return posixpath.join(self.directory, DOCKERFILE_NAME)


def _suggest(name: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_dependencies(images: Mapping[str, Image]) -> None:
    """Every ``MZFROM`` names a known image."""
    for image in images.values():
        for ref in image.mzfrom:
            if ref.name not in images:
                raise RepositoryError(
                    f"{image.dockerfile}:{ref.line}: MZFROM names unknown image"
                    f" {ref.name!r}{_suggest(ref.name, images)}"
                )


def topological_order(images: Mapping[str, Image], targets: Iterable[str]) -> tuple[str, ...]:
    """``targets`` and their transitive dependencies, dependencies first.

    The order is the original mzbuild's: a depth-first walk over the
    targets sorted by name, visiting each image's dependencies sorted by
    name. A cycle is a :class:`RepositoryError` showing it (``a -> b -> a``).
    """
    resolved: dict[str, None] = {}
    # An explicit stack, not recursion: a chain of 10,000 images is fine.
    for target in sorted(set(targets)):
        if target in resolved:
            continue
        path = [target]
        on_path = {target}
        pending = [iter(images[target].dependencies)]
        while pending:
            dep = next(pending[-1], None)
            if dep is None:
                pending.pop()
                done = path.pop()
                on_path.discard(done)
                resolved[done] = None
            elif dep in on_path:
                cycle = [*path[path.index(dep) :], dep]
                raise RepositoryError(f"dependency cycle: {' -> '.join(cycle)}; break it")
            elif dep not in resolved:
                path.append(dep)
                on_path.add(dep)
                pending.append(iter(images[dep].dependencies))
    return tuple(resolved)


def nested_directories(images: Mapping[str, Image]) -> dict[str, tuple[str, ...]]:
    """For each image, the directories of images strictly inside its own."""
    dirs = sorted(i.directory for i in images.values())
    nested: dict[str, tuple[str, ...]] = {}
    for image in images.values():
        d = image.directory
        if not d:
            nested[image.name] = tuple(o for o in dirs if o)
            continue
        # Sorted, so the directories under d/ are one slice (no scan of all).
        lo = bisect.bisect_left(dirs, d + "/")
        hi = bisect.bisect_left(dirs, d + "0", lo)  # "0" follows "/"
        nested[image.name] = tuple(dirs[lo:hi])
    return nested


@dataclass(frozen=True)
class ImageGraph:
    """The validated images of a repository and their dependency DAG."""

    images: Mapping[str, Image]
    #: Every image, dependencies first (the original's order).
    order: tuple[str, ...]

    @classmethod
    def build(cls, images: Mapping[str, Image]) -> ImageGraph:
        """Validate ``images`` (known dependencies, no cycle) into a graph."""
        check_dependencies(images)
        return cls(images=images, order=topological_order(images, images))

    def image(self, name: str) -> Image:
        """The image called ``name``, or a :class:`UsageError` naming it."""
        try:
            return self.images[name]
        except KeyError:
            raise UsageError(
                f"unknown image {name!r}{_suggest(name, self.images)};"
                " `mzbuild-async list` shows the images"
            ) from None

    def resolve(self, targets: Iterable[str]) -> tuple[Image, ...]:
        """The targets with their transitive dependencies, in dependency order."""
        names = [self.image(t).name for t in targets]
        return tuple(self.images[n] for n in topological_order(self.images, names))

    def dependents(self, name: str) -> tuple[str, ...]:
        """Every image that depends on ``name``, directly or transitively, sorted."""
        found: set[str] = set()
        for other in self.order:
            deps = self.images[other].dependencies
            if name in deps or found.intersection(deps):
                found.add(other)
        return tuple(sorted(found))
