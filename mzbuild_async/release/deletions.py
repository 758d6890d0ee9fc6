"""Carrying out a retention plan: deleting by digest, safely.

:func:`apply` deletes repository by repository, and first checks that nothing
moved since the plan: the tags are listed again (a tag that appeared since,
pointing at a digest to delete, protects it) and each candidate tag is asked
for with a ``HEAD`` (one that names another digest now protects the old one
too). Deletion goes through a :class:`Deleter`: the distribution API's
``DELETE`` by default, a registry's own API where it refuses that one (GHCR).
A registry that refuses deletions is one line, asked once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import anyio

from ..errors import TransferError
from ..model.status import Status
from ..registry.names import Reference
from ..registry.tags import delete, tags
from ..registry.writer import RegistryWriter
from .retention import Plan, RepositoryPlan, Verdict, at


class Deleter(Protocol):
    """Deletes one manifest by digest (the distribution API, or a registry's own)."""

    async def delete(self, repository: Reference, digest: str) -> bool:
        """Delete ``digest``; False when it was already gone."""
        ...


@dataclass(frozen=True)
class Deletion:
    """What :func:`apply` did with one verdict."""

    verdict: Verdict
    #: ``deleted``, ``gone`` (already), ``skipped`` (changed since the plan), ``failed``.
    outcome: str
    detail: str = ""


async def apply(
    writer: RegistryWriter, plan: Plan, deleter_for: Mapping[str, Deleter] | None = None
) -> list[Deletion]:
    """Delete the plan's deletions (``deleter_for`` by host; the standard API else)."""
    done: list[Deletion] = []

    async def one(repository: RepositoryPlan) -> None:
        deleter = (deleter_for or {}).get(repository.ref.domain) or _Standard(writer)
        done.extend(await _apply_repository(writer, repository, deleter))

    async with anyio.create_task_group() as tg:
        for repository in plan.repositories:
            if any(v.delete for v in repository.verdicts):
                tg.start_soon(one, repository)
    return done


@dataclass(frozen=True)
class _Standard:
    writer: RegistryWriter

    async def delete(self, repository: Reference, digest: str) -> bool:
        return await delete(self.writer.client, repository, digest)


async def _apply_repository(
    writer: RegistryWriter, repository: RepositoryPlan, deleter: Deleter
) -> list[Deletion]:
    ref = repository.ref
    deletions = [v for v in repository.verdicts if v.delete]
    try:
        now = await tags(writer.client, ref)
    except TransferError as exc:
        return [Deletion(v, "failed", str(exc)) for v in deletions]
    protected = {v.digest for v in repository.verdicts if not v.delete}
    # Tags that appeared since the plan, and candidates asked again: what they name now.
    asked = [t for t in now if t not in repository.listed] + [v.tag for v in deletions]
    current: dict[str, str] = {}

    async def head(tag: str) -> None:
        probe = await writer.client.lookup(at(ref, tag))
        if probe.status is Status.PRESENT:
            current[tag] = probe.digest
        elif probe.status is Status.UNKNOWN:
            current[tag] = "unknown"

    async with anyio.create_task_group() as tg:
        for tag in asked:
            tg.start_soon(head, tag)
    moved = {v.digest for v in deletions if current.get(v.tag, v.digest) != v.digest}
    appeared = {d for t, d in current.items() if t not in repository.listed}
    if "unknown" in appeared:  # a new tag we could not ask about may name any of them
        detail = "a tag made since the plan could not be asked about"
        return [Deletion(v, "skipped", detail) for v in deletions]
    protected |= appeared
    results: list[Deletion] = []
    deleted: set[str] = set()
    refused = ""
    for verdict in deletions:
        if verdict.digest in deleted:  # another tag of the same manifest: gone with it
            results.append(Deletion(verdict, "deleted"))
            continue
        if verdict.digest in protected:
            results.append(Deletion(verdict, "skipped", "a tag made since the plan names it"))
            continue
        if verdict.digest in moved:
            results.append(Deletion(verdict, "skipped", "one of its tags changed since the plan"))
            continue
        if refused:
            results.append(Deletion(verdict, "failed", refused))
            continue
        try:
            there = await deleter.delete(ref, verdict.digest)
            deleted.add(verdict.digest)
            for artifact in verdict.artifacts:  # the referrers index first, then its artifacts
                await deleter.delete(ref, artifact)
            results.append(Deletion(verdict, "deleted" if there else "gone"))
        except TransferError as exc:
            refused = str(exc)
            results.append(Deletion(verdict, "failed", refused))
    return results
