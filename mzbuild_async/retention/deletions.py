"""Carrying out a retention plan: deleting by digest, safely.

:func:`apply` deletes repository by repository, and first checks that nothing
moved since the plan: the tags are listed again and every one of them, the
protecting tags as well as the doomed ones, is asked for with a ``HEAD``. A
tag made or moved since protects what it names (through an index, read
afresh); a doomed tag that names another digest now keeps the old one too; a
tag that cannot be asked about, or is listed yet not found, means nothing is
deleted in that repository. Deletion goes through a :class:`Deleter`: the distribution API's
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
from ..registry.names import Reference, is_tag
from ..registry.tags import delete, tags
from ..registry.writer import INDEX_TYPES, RegistryWriter
from .policy import CONCURRENCY, Plan, RepositoryPlan, Verdict, at, children


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
        protected = await _protected_now(writer, repository, now)
    except _Unsure as exc:
        return [Deletion(v, "skipped", str(exc)) for v in deletions]
    except TransferError as exc:
        return [Deletion(v, "failed", str(exc)) for v in deletions]
    moved = {v.digest for v in deletions if protected.current.get(v.tag, v.digest) != v.digest}
    results: list[Deletion] = []
    deleted: set[str] = set()
    refused = ""
    for verdict in deletions:
        if verdict.digest in deleted:  # another tag of the same manifest: gone with it
            results.append(Deletion(verdict, "deleted"))
            continue
        if verdict.digest in protected.digests:
            results.append(
                Deletion(verdict, "skipped", "a tag made or moved since the plan names it")
            )
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


class _Unsure(Exception):
    """What a repository's tags protect right now could not be read: delete nothing."""


@dataclass(frozen=True)
class _Protected:
    #: Tag -> the digest it names right now (every tag listed now, and every doomed one).
    current: dict[str, str]
    #: Digests the plan kept, and what a tag made or moved since reaches now (indexes
    #: followed).
    digests: frozenset[str]


async def _protected_now(
    writer: RegistryWriter, repository: RepositoryPlan, now: list[str]
) -> _Protected:
    """Every tag listed now and every doomed one, asked again with a ``HEAD``: the
    protecting tags too, since one moved since the plan may name a manifest to be
    deleted (or an index over one). A tag that cannot be asked is _Unsure."""
    ref = repository.ref
    invalid = [t for t in now if not is_tag(t)]
    if invalid:
        raise _Unsure(f"a tag listed right before deleting is no valid tag name: {invalid[0]!r}")
    doomed = {v.tag for v in repository.verdicts if v.delete}
    current: dict[str, str] = {}
    unknown: list[str] = []
    listed = set(now)
    limit = anyio.Semaphore(CONCURRENCY)

    async def head(tag: str) -> None:
        async with limit:
            probe = await writer.client.lookup(at(ref, tag))
        if probe.status is Status.PRESENT:
            current[tag] = probe.digest
        elif probe.status is Status.UNKNOWN or tag in listed:  # listed, yet not found
            unknown.append(tag)

    async with anyio.create_task_group() as tg:
        for tag in sorted(set(now) | doomed):
            tg.start_soon(head, tag)
    if unknown:
        raise _Unsure(f"tag {sorted(unknown)[0]} could not be asked about right before deleting")
    # A protecting tag that names what it named at the plan protects what the plan
    # said (the same digest reaches the same manifests); one made or moved since is
    # followed through its index afresh.
    fresh = {d for t, d in current.items() if t not in doomed and repository.listed.get(t) != d}
    reached: set[str] = set()
    while fresh:
        digest = fresh.pop()
        reached.add(digest)
        try:
            document = await writer.manifest(at(ref, digest))
        except TransferError as exc:
            raise _Unsure(f"{digest[:19]}, named by a tag made since the plan: {exc}") from None
        if document is None:
            continue  # gone since the HEAD: it protects nothing
        if document.media_type in INDEX_TYPES:
            fresh |= set(children(document)) - reached
    kept = {v.digest for v in repository.verdicts if not v.delete}
    return _Protected(current, frozenset(reached | kept))
