"""``promote``: release tags on the published images of this checkout.

Each architecture's specs come from fingerprinting the working tree for
that architecture (nothing is built or pulled); the tags are written
concurrently, a failure being that image's result
(:mod:`..release.promote`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..model.options import Arch
from ..model.publication import check_tag
from ..registry.writer import RegistryWriter
from ..release.promote import Promotion, promote_images
from ..source.repository import Repository
from .settings import RegistrySettings


def mainline_only(repo: Repository, names: Sequence[str]) -> list[str]:
    """``names`` without the images whose manifest says ``mainline: false`` (what the
    original's release builds promote)."""
    return [name for name in names if repo.image(name).manifest.mainline]


async def promote(
    repo: Repository,
    targets: Sequence[str],
    tag: str,
    arches: Sequence[Arch],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
    force: bool = False,
) -> Mapping[str, Promotion | Exception]:
    """Point ``tag`` of each target at its ``arches`` specs (the repository's arch
    when none is given): a retag for one arch, an index for several."""
    check_tag(tag)
    specs_by_image: dict[str, dict[Arch, str]] = {name: {} for name in targets}
    for arch in dict.fromkeys(arches or [repo.options.arch]):
        other = await Repository.open(repo.root, replace(repo.options, arch=arch))
        for name, spec in (await other.specs(list(targets))).items():
            if name in specs_by_image:
                specs_by_image[name][arch] = spec
    may_move = force or tag in settings.publication_for(repo.options).moving
    async with settings.session(cache_dir) as client:
        return await promote_images(RegistryWriter(client), tag, specs_by_image, may_move=may_move)
