"""``promote``: release tags on the published images of this checkout.

Each architecture's specs come from fingerprinting the working tree for
that architecture (nothing is built or pulled). The tag is written at the
primary and at every mirror, and with ``--to`` at other registries: each
image is copied to those first, then tagged there too. The tags
are written concurrently, a failure being that image's (and registry's)
result (:mod:`..release.promote`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..model.options import Arch
from ..model.publication import Destination, check_release_tag
from ..model.spec import TAG_PREFIX, fingerprint_of
from ..registry.writer import RegistryWriter
from ..release.promote import Promotion, promote_everywhere
from ..source.repository import Repository
from .settings import RegistrySettings

#: Per image, per registry (the primary first): what was done, or why not.
Promotions = Mapping[str, Mapping[str, Promotion | Exception]]


def mainline_only(repo: Repository, names: Sequence[str]) -> list[str]:
    """``names`` without the images whose manifest says ``mainline: false`` (what the
    original's release builds promote)."""
    return [name for name in names if repo.image(name).manifest.mainline]


def destinations(
    settings: RegistrySettings, repo: Repository, to: Sequence[str]
) -> list[Destination]:
    """The primary, the mirrors (``[[publish]]``, ``--mirror-registry``), then each
    ``--to`` registry (with a mirror's prefix where it is one, else the primary's)."""
    publication = settings.publication_for(repo.options)
    known = {m.registry: m for m in publication.mirrors}
    primary = publication.primary
    chosen = list(publication.destinations)
    for name in to:
        registry = name.rstrip("/")
        destination = known.get(registry) or Destination(registry, primary.prefix).check("--to")
        if destination not in chosen:
            chosen.append(destination)
    return chosen


async def promote(
    repo: Repository,
    targets: Sequence[str],
    tag: str,
    arches: Sequence[Arch],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
    force: bool = False,
    to: Sequence[str] = (),
) -> Promotions:
    """Point ``tag`` of each target at its ``arches`` specs (the repository's arch
    when none is given): a retag for one arch, an index for several; at the
    primary registry and at each ``to`` registry."""
    check_release_tag(tag)
    where = destinations(settings, repo, to)
    specs: dict[str, dict[str, dict[Arch, str]]] = {
        name: {d.registry: {} for d in where} for name in targets
    }
    for arch in dict.fromkeys(arches or [repo.options.arch]):
        other = await Repository.open(repo.root, replace(repo.options, arch=arch))
        for name, spec in (await other.specs(list(targets))).items():
            if name not in specs:
                continue
            fingerprint_tag = TAG_PREFIX + fingerprint_of(spec)
            for destination in where:
                at = spec if destination is where[0] else destination.spec(name, fingerprint_tag)
                specs[name][destination.registry][arch] = at
    may_move = force or tag in settings.publication_for(repo.options).moving
    async with settings.session(cache_dir) as client:
        return await promote_everywhere(RegistryWriter(client), tag, specs, may_move=may_move)
