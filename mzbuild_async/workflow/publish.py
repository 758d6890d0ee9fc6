"""``publish-manifest``: one multi-arch index per image at a tag.

Each architecture's specs come from fingerprinting the working tree for
that architecture; the indexes are written concurrently, a failure being
that image's result (:mod:`..builds.multiarch`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..builds.multiarch import IndexResult, publish_indexes
from ..errors import UsageError
from ..model.options import Arch
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from .settings import RegistrySettings


async def publish_manifests(
    repo: Repository,
    targets: Sequence[str],
    tag: str,
    arches: Sequence[Arch],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
) -> Mapping[str, IndexResult | Exception]:
    """Write the index of each target at ``tag`` over its ``arches`` specs."""
    if not arches:
        raise UsageError("publish-manifest: name the architectures with --arch (repeatable)")
    specs_by_image: dict[str, dict[Arch, str]] = {name: {} for name in targets}
    for arch in dict.fromkeys(arches):
        other = await Repository.open(repo.root, replace(repo.options, arch=arch))
        for name, spec in (await other.specs(list(targets))).items():
            if name in specs_by_image:
                specs_by_image[name][arch] = spec
    async with settings.client(cache_dir) as client:
        return await publish_indexes(RegistryWriter(client), tag, specs_by_image)
