"""``lock``: each image's external base images resolved to digests, in ``mzbuild.lock``.

Each external ``FROM`` of an image's Dockerfile (:mod:`..source.pins`) is
asked of its registry (a manifest ``HEAD``, the lookups' client and limits);
``lock`` writes the digests beside the image's ``mzbuild.yml``, ``lock
--check`` writes nothing and reports each image whose lock is missing,
incomplete or no longer what the registry says (drift).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..errors import UsageError
from ..model.status import Status
from ..registry.names import parse_reference
from ..source.pins import LOCK_FILE, external_bases, lock_text, mirrored, read_lock
from ..source.repository import Repository
from .settings import RegistrySettings

#: References resolved at once.
CONCURRENCY = 16


@dataclass(frozen=True)
class Locked:
    """One image: its pins as resolved now, and what its lock file said."""

    pins: Mapping[str, str]
    before: Mapping[str, str]
    #: References the registry could not resolve (with why).
    unresolved: Mapping[str, str]

    @property
    def state(self) -> str:
        """``unchanged``, ``written``/``drift`` (the file is not what the registry says),
        ``none`` (no external base) or ``failed``."""
        if self.unresolved:
            return "failed"
        if not self.pins and not self.before:
            return "none"
        return "unchanged" if dict(self.pins) == dict(self.before) else "changed"

    def drift(self) -> list[str]:
        """What differs between the lock file and the registry, a phrase each."""
        out = [f"{ref} not locked" for ref in self.pins if ref not in self.before]
        out += [
            f"{ref} moved to {digest[:19]} (locked {self.before[ref][:19]})"
            for ref, digest in self.pins.items()
            if ref in self.before and self.before[ref] != digest
        ]
        out += [f"{ref} locked but no longer a base" for ref in self.before if ref not in self.pins]
        return out


async def lock_images(
    repo: Repository,
    targets: Sequence[str],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
    check: bool = False,
    base_mirrors: Mapping[str, str] | None = None,
) -> dict[str, Locked]:
    """Resolve each target's external bases (through their registries' mirrors: a
    mirror or pull-through cache serves the same digests); write the lock files unless
    ``check``. The lock keeps the Dockerfile's own references."""
    bases = {
        name: external_bases((repo.root / repo.image(name).dockerfile).read_bytes())
        for name in targets
    }
    references = sorted({ref for refs in bases.values() for ref in refs})
    resolved: dict[str, str] = {}
    failures: dict[str, str] = {}
    limit = anyio.CapacityLimiter(CONCURRENCY)
    async with settings.session(cache_dir) as client:

        async def one(reference: str) -> None:
            async with limit:
                try:
                    ref = parse_reference(mirrored(reference, base_mirrors or {}))
                except UsageError as exc:
                    failures[reference] = str(exc)
                    return
                probe = await client.lookup(ref)
                if probe.status is Status.PRESENT and probe.digest:
                    resolved[reference] = probe.digest
                else:
                    failures[reference] = probe.detail or str(probe.status)

        async with anyio.create_task_group() as tg:
            for reference in references:
                tg.start_soon(one, reference)
    results: dict[str, Locked] = {}
    for name in targets:
        directory = repo.root / repo.image(name).directory
        locked = Locked(
            {ref: resolved[ref] for ref in bases[name] if ref in resolved},
            read_lock(directory),
            {ref: failures[ref] for ref in bases[name] if ref in failures},
        )
        if not check and locked.state == "changed":
            if locked.pins:
                (directory / LOCK_FILE).write_text(lock_text(locked.pins))
            else:
                (directory / LOCK_FILE).unlink(missing_ok=True)
        results[name] = locked
    return results
