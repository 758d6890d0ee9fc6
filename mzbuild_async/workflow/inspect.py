"""``list``, ``fingerprint``, ``spec``, ``describe`` and ``explain``: what the
repository says of its images, without registries or engines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..source.explain import (
    Explanation,
    explain,
    find_revision,
    repository_at,
    resolve_revision,
    spec_fingerprint,
)
from ..source.repository import ImageDescription, Repository


def listing(repo: Repository) -> dict[str, dict[str, Any]]:
    """Each image's directory, dependencies and manifest settings, by name."""
    return {
        name: {
            "directory": image.directory,
            "dependencies": list(image.dependencies),
            "publish": image.manifest.publish,
            "mainline": image.manifest.mainline,
            "description": image.manifest.description,
        }
        for name, image in repo.images.items()
    }


async def fingerprints(repo: Repository, targets: Sequence[str], *, spec: bool) -> dict[str, str]:
    """Each target's fingerprint, or (``spec``) its image spec."""
    fps = await repo.fingerprints(targets)
    if spec:
        return {t: repo.options.spec(t, str(fps[t])) for t in targets}
    return {t: str(fps[t]) for t in targets}


async def describe(repo: Repository, image: str, *, transitive: bool) -> list[ImageDescription]:
    """What ``image``'s fingerprint is made of (``transitive``: and its dependencies')."""
    name = repo.image(image).name
    names = [i.name for i in repo.resolve([name])] if transitive else [name]
    await repo.fingerprints(names)
    return [await repo.describe(n) for n in names]


@dataclass(frozen=True)
class Explained:
    """``explain``'s answer: against what, and what differs (None: nothing to explain)."""

    image: str
    #: What the image was compared with, as shown (``REV (abc123...)``).
    label: str
    explanation: Explanation | None = None
    #: The working tree's fingerprint when it is the one compared with.
    same: str | None = None
    #: Why no commit could be compared with ("" when one was).
    missing: str = ""


async def explain_image(repo: Repository, image: str, against: str, search: int) -> Explained:
    """Why ``image``'s fingerprint differs from ``against``: a revision, or a spec or
    fingerprint looked for among the last ``search`` commits."""
    name = repo.image(image).name
    wanted = spec_fingerprint(against)
    if wanted is not None:
        mine = str(await repo.fingerprint(name))
        if mine == wanted:
            return Explained(name, f"{against} (the working tree)", same=mine)
        commit = await find_revision(repo, name, wanted, search)
        if commit is None:
            return Explained(
                name,
                against,
                missing=f"{name}: no commit among the last {search} has fingerprint {wanted};"
                " raise --search or compare with a revision",
            )
        label, rev = f"{against} (commit {commit[:12]})", commit
    else:
        rev = await resolve_revision(repo.root, against)
        label = f"{against} ({rev[:12]})"
    async with repository_at(repo, rev) as old:
        return Explained(name, label, await explain(repo, old, name))
