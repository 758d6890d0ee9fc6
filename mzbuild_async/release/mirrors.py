"""Mirrors: an image is published when every registry has its tag; the missing get a copy.

``ensure`` with mirrors (``[[publish]]``, ``--mirror-registry``) asks every
registry about every image at once (:mod:`..workflow.walk`). An image the
primary lacks but a mirror has is copied to the primary, not rebuilt
(:func:`restore`); after the run, each image it publishes is copied from
the primary to every mirror that lacks it (:func:`copy_to_mirrors`), over
the registry API (:mod:`..registry.copy`), with the artifacts attached to it
(signed provenance). A mirror that could not tell is
never copied over: the image is not published there, and fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..errors import TransferError
from ..model.publication import Destination
from ..model.spec import TAG_PREFIX, fingerprint_of
from ..model.status import Status
from ..registry.copy import CopyStats, copy_image
from ..registry.names import parse_reference
from ..registry.referrers import copy_referrers
from ..registry.writer import RegistryWriter
from ..support import logs

#: Images copied at once.
CONCURRENCY = 8


def mirror_specs(name: str, spec: str, mirrors: Sequence[Destination]) -> dict[str, str]:
    """Image ``name``'s spec (``spec`` at the primary) at each mirror, by registry."""
    tag = TAG_PREFIX + fingerprint_of(spec)
    return {m.registry: m.spec(name, tag) for m in mirrors}


@dataclass
class Mirrored:
    """One image at the mirrors: each one's state (``present``, ``copied``,
    ``unknown``, ``failed``) and what failed."""

    registries: dict[str, str] = field(default_factory=dict)
    #: The image's spec at each mirror, by registry.
    references: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stats: CopyStats = field(default_factory=CopyStats)

    def to_json(self) -> dict[str, Any]:
        """The copies as JSON."""
        return {"registries": dict(self.registries), "copied": self.stats.to_json()}


async def restore(writer: RegistryWriter, source: str, target: str) -> tuple[str, int] | None:
    """Copy ``source`` (a mirror's spec) to ``target`` (the primary's); the manifest's
    digest and size, or None with one warning when the copy failed (it is then built)."""
    try:
        copied = await copy_image(writer, parse_reference(source), parse_reference(target))
        await copy_referrers(
            writer, parse_reference(source), parse_reference(target), copied.digest
        )
    except TransferError as exc:
        logs.warning(f"{target}: could not copy it from {source}: {exc}; building it")
        return None
    return copied.digest, copied.size


async def copy_to_mirrors(
    writer: RegistryWriter,
    specs: Mapping[str, str],
    mirrors: Sequence[Destination],
    answers: Mapping[str, Mapping[str, Status]],
) -> dict[str, Mirrored]:
    """Every image of ``specs`` (by name; published at the primary) at every mirror:
    copied where the mirror said absent or was not asked, never where it could not tell."""
    results = {name: Mirrored() for name in specs}
    limit = anyio.CapacityLimiter(CONCURRENCY)

    async def one(name: str, registry: str, target: str) -> None:
        state = results[name]
        state.references[registry] = target
        said = answers.get(name, {}).get(registry)
        if said is Status.PRESENT:
            state.registries[registry] = "present"
            return
        if said is Status.UNKNOWN:
            state.registries[registry] = "unknown"
            state.errors.append(
                f"{registry} could not tell whether it has {target}; nothing copied there"
            )
            return
        async with limit:
            try:
                source = parse_reference(specs[name])
                copied = await copy_image(writer, source, parse_reference(target), state.stats)
                await copy_referrers(writer, source, parse_reference(target), copied.digest)
            except TransferError as exc:
                state.registries[registry] = "failed"
                state.errors.append(f"copy to {registry} failed: {logs.redact_text(str(exc))}")
                return
        state.registries[registry] = "copied"

    async with anyio.create_task_group() as tg:
        for name, spec in specs.items():
            for registry, target in mirror_specs(name, spec, mirrors).items():
                tg.start_soon(one, name, registry, target)
    return results
