"""Retention: which tags of our repositories go, and deleting them safely.

:func:`plan` lists each repository's tags, reads every tag's manifest (and a
candidate's config blob, for its age) and gives each tag a verdict:

- ``mzbuild-<fingerprint>`` tags are kept when their spec is in the keep set
  (an image some kept commit asks for) or when younger than the age guard,
  else deleted;
- failure markers (``mzbuild-<fingerprint>.failed``) are kept only while young;
- referrers fallback tags (``sha256-<hex>``) whose artifacts are all ours go
  with their subject: kept while the subject is kept, deleted with it or when
  it is gone (orphaned);
- every other tag is not ours: never deleted, and what it points at (an
  index's platform manifests too) is protected.

A manifest some kept tag also names is never deleted, whatever tag brought
it up. The bytes a deletion frees are the unique blobs (and manifests) no
longer referenced by anything kept in the repositories scanned, each counted
once across them: the registry's own garbage collector frees them.

:mod:`.deletions` carries the plan out.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import anyio

from ..errors import MzbuildError, shorten, single_error
from ..model.spec import TAG_PREFIX
from ..registry.names import Reference, is_tag
from ..registry.referrers import from_api
from ..registry.tags import tags as list_tags
from ..registry.writer import INDEX_TYPES, Document, RegistryWriter
from ..support.documents import parse_json

_FINGERPRINT = r"[A-Z2-7]{32}"
IMAGE_TAG = re.compile(rf"{TAG_PREFIX}{_FINGERPRINT}")
MARKER_TAG = re.compile(rf"{TAG_PREFIX}{_FINGERPRINT}\.failed")
REFERRERS_TAG = re.compile(r"sha256-[0-9a-f]{64}")
#: Manifests read at once (each request also passes the host's limiter).
CONCURRENCY = 32


class Kind(enum.StrEnum):
    """What a tag is to us."""

    IMAGE = "image"
    MARKER = "marker"
    REFERRERS = "referrers"
    FOREIGN = "foreign"


def kind_of(tag: str) -> Kind:
    """The kind of ``tag`` by its name (a ``sha256-`` tag is ours only if its
    artifacts are: the plan decides)."""
    if IMAGE_TAG.fullmatch(tag):
        return Kind.IMAGE
    if MARKER_TAG.fullmatch(tag):
        return Kind.MARKER
    if REFERRERS_TAG.fullmatch(tag):
        return Kind.REFERRERS
    return Kind.FOREIGN


@dataclass(frozen=True)
class Policy:
    """What to keep."""

    #: Every spec a kept commit asks for (``registry/repository:mzbuild-FP``).
    keep_specs: frozenset[str]
    #: Seconds: anything younger is kept (markers only while younger).
    keep_younger: float
    #: The time the ages are measured from (seconds since the epoch).
    now: float
    #: The artifact types of our attestations: a referrers tag listing only these is ours.
    ours: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    """One tag of one repository and what becomes of it."""

    repository: str
    tag: str
    kind: Kind
    digest: str
    delete: bool
    reason: str
    #: Seconds since the epoch the image (or marker) was made, where known.
    created: float | None = None
    #: Artifact manifests deleted with a referrers tag.
    artifacts: tuple[str, ...] = ()
    #: Bytes this deletion frees (each blob counted for the first tag that frees it).
    freed: int = 0

    def to_json(self) -> dict[str, Any]:
        """This verdict in ``gc --json``."""
        return {
            "tag": self.tag,
            "kind": str(self.kind),
            "digest": self.digest,
            "action": "delete" if self.delete else "keep",
            "reason": self.reason,
            "created": _iso(self.created),
            "artifacts": list(self.artifacts),
            "freed_bytes": self.freed,
        }


@dataclass
class RepositoryPlan:
    """The verdicts of one repository (or why it could not be read)."""

    ref: Reference
    verdicts: list[Verdict] = field(default_factory=list)
    error: str = ""
    #: Tags as listed, by name -> digest (what :func:`apply` compares against).
    listed: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``host/repository``."""
        return f"{self.ref.domain}/{self.ref.repository}"


@dataclass
class Plan:
    """Every repository's verdicts and the bytes the deletions would free."""

    repositories: list[RepositoryPlan]
    freed: int = 0

    @property
    def deletions(self) -> list[Verdict]:
        """Every verdict that deletes."""
        return [v for r in self.repositories for v in r.verdicts if v.delete]


@dataclass
class _Manifest:
    """What we read of one manifest."""

    document: Document
    #: Blobs it references (config and layers): digest -> size.
    blobs: dict[str, int]
    #: An index's manifests: digest -> artifactType.
    children: dict[str, str]
    annotations: dict[str, str]
    #: An image's config blob (None for an index or a manifest without one).
    config: str | None = None


def _parse(document: Document) -> _Manifest:
    try:
        body = parse_json(document.body)
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    blobs: dict[str, int] = {}
    children: dict[str, str] = {}
    config = body.get("config")
    config_digest = config.get("digest") if isinstance(config, dict) else None
    layers = body.get("layers")
    for item in [body.get("config"), *(layers if isinstance(layers, list) else [])]:
        if isinstance(item, dict) and isinstance(item.get("digest"), str):
            blobs[item["digest"]] = int(item.get("size") or 0)
    for item in body.get("manifests") or []:
        if isinstance(item, dict) and isinstance(item.get("digest"), str):
            children[item["digest"]] = str(item.get("artifactType", ""))
    notes = body.get("annotations")
    annotations = {str(k): str(v) for k, v in notes.items()} if isinstance(notes, dict) else {}
    return _Manifest(
        document,
        blobs,
        children,
        annotations,
        config_digest if isinstance(config_digest, str) else None,
    )


def children(document: Document) -> dict[str, str]:
    """The manifests an index lists: digest -> artifactType (empty for others)."""
    return _parse(document).children


def _timestamp(text: object) -> float | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return datetime.fromtimestamp(when).astimezone().isoformat(timespec="seconds")


def at(repository: Reference, reference: str) -> Reference:
    """``repository`` at a tag or digest."""
    if reference.startswith("sha256:"):
        return replace(repository, tag=None, digest=reference)
    return replace(repository, tag=reference, digest=None)


class _Reader:
    """Manifests and ages of one repository, each asked for once."""

    def __init__(self, writer: RegistryWriter, repository: Reference) -> None:
        self.writer = writer
        self.repository = repository
        self.manifests: dict[str, _Manifest] = {}
        self._limit = anyio.Semaphore(CONCURRENCY)

    async def manifest(self, reference: str) -> _Manifest | None:
        async with self._limit:
            document = await self.writer.manifest(at(self.repository, reference))
        if document is None:
            return None
        found = _parse(document)
        self.manifests[document.digest] = found
        return found

    async def created(self, manifest: _Manifest) -> float | None:
        """When an image was made (its config's ``created``); a marker's time."""
        if "io.mzbuild.failed-at" in manifest.annotations:
            try:
                return float(manifest.annotations["io.mzbuild.failed-at"])
            except ValueError:
                return None
        digest = manifest.config
        if digest is None:
            return None
        async with self._limit:
            config = await self.writer.blob(self.repository, digest)
        try:
            return _timestamp(parse_json(config.body).get("created"))
        except (ValueError, AttributeError):
            return None


async def _read_repository(
    writer: RegistryWriter, repository: Reference
) -> tuple[RepositoryPlan, _Reader, dict[str, _Manifest]]:
    """Every tag's manifest (and the platform manifests of indexes); a tag that is
    listed but cannot be read is unknown, and makes the whole repository an error
    (what it protects cannot be known)."""
    reader = _Reader(writer, repository)
    result = RepositoryPlan(repository)
    by_tag: dict[str, _Manifest] = {}
    unreadable: list[str] = []
    try:
        names = await list_tags(writer.client, repository)
        invalid = [t for t in names if not is_tag(t)]
        if invalid:
            result.error = (
                f"it lists {shorten(repr(invalid[0]))}, which is no valid tag name, and what"
                " that tag protects cannot be read"
            )
            return result, reader, by_tag

        async def read(tag: str) -> None:
            found = await reader.manifest(tag)
            if found is None:
                unreadable.append(tag)
            else:
                by_tag[tag] = found

        with single_error():
            async with anyio.create_task_group() as tg:
                for tag in names:
                    tg.start_soon(read, tag)
        if unreadable:
            result.error = (
                f"tag {sorted(unreadable)[0]} is listed but its manifest is not found (404)"
                + (f", and {len(unreadable) - 1} more" if len(unreadable) > 1 else "")
            )
            return result, reader, by_tag
        # Platform manifests of indexes not under a tag of their own.
        missing = {
            child
            for m in by_tag.values()
            if m.document.media_type in INDEX_TYPES
            for child in m.children
            if child not in reader.manifests
        }
        with single_error():
            async with anyio.create_task_group() as tg:
                for child in sorted(missing):
                    tg.start_soon(reader.manifest, child)
    except MzbuildError as exc:
        result.error = str(exc)
    result.listed = {tag: m.document.digest for tag, m in sorted(by_tag.items())}
    return result, reader, by_tag


def _closure(digests: Iterable[str], manifests: Mapping[str, _Manifest]) -> set[str]:
    """``digests`` and every manifest they reach through indexes."""
    seen: set[str] = set()
    todo = list(digests)
    while todo:
        digest = todo.pop()
        if digest in seen:
            continue
        seen.add(digest)
        found = manifests.get(digest)
        if found is not None:
            todo += list(found.children)
    return seen


async def _decide(
    result: RepositoryPlan, reader: _Reader, by_tag: Mapping[str, _Manifest], policy: Policy
) -> None:
    """Give every tag of one repository its verdict."""
    ref = result.ref
    name = f"{ref.domain}/{ref.repository}"
    kinds = {tag: kind_of(tag) for tag in by_tag}
    for tag, manifest in by_tag.items():
        if kinds[tag] is Kind.REFERRERS and (
            not manifest.children or any(t not in policy.ours for t in manifest.children.values())
        ):
            kinds[tag] = Kind.FOREIGN  # cosign's, ORAS's, someone's: not ours to judge
    created: dict[str, float | None] = {}

    async def age(tag: str) -> None:
        created[tag] = await reader.created(by_tag[tag])

    out_of_policy = [
        t
        for t, k in kinds.items()
        if k is Kind.MARKER or (k is Kind.IMAGE and f"{name}:{t}" not in policy.keep_specs)
    ]
    async with anyio.create_task_group() as tg:
        for tag in out_of_policy:
            tg.start_soon(age, tag)

    verdicts = {
        tag: _verdict(name, tag, kinds[tag], by_tag[tag].document.digest, created, policy)
        for tag in by_tag
        if kinds[tag] is not Kind.REFERRERS
    }
    # A manifest a kept tag reaches is never deleted, whichever tag brought it up.
    kept = _closure(
        (by_tag[t].document.digest for t, v in verdicts.items() if not v.delete), reader.manifests
    )
    for tag, verdict in list(verdicts.items()):
        if verdict.delete and verdict.digest in kept:
            verdicts[tag] = replace(
                verdict, delete=False, reason="its manifest is also a kept tag's"
            )
    _referrers(name, verdicts, kinds, by_tag)
    await _attached(reader, verdicts, policy)
    result.verdicts = [verdicts[t] for t in sorted(verdicts)]


async def _attached(reader: _Reader, verdicts: dict[str, Verdict], policy: Policy) -> None:
    """Our attestations of each deleted image, where the registry has the referrers
    API (they are under no tag there): deleted with it. One question tells whether
    the registry has the API at all."""
    doomed = [t for t, v in verdicts.items() if v.delete and v.kind is Kind.IMAGE]
    if not doomed:
        return
    first = verdicts[doomed[0]]
    if await from_api(reader.writer, reader.repository, first.digest) is None:
        return  # no API: attestations hang off fallback tags, judged above

    async def one(tag: str) -> None:
        verdict = verdicts[tag]
        listed = await from_api(reader.writer, reader.repository, verdict.digest) or []
        ours = tuple(
            sorted(
                item["digest"]
                for item in listed
                if isinstance(item, dict)
                and isinstance(item.get("digest"), str)
                and item.get("artifactType") in policy.ours
            )
        )
        for digest in ours:  # (read for the bytes they free)
            await reader.manifest(digest)
        verdicts[tag] = replace(verdict, artifacts=ours)

    async with anyio.create_task_group() as tg:
        for tag in doomed:
            tg.start_soon(one, tag)


def _verdict(
    name: str,
    tag: str,
    kind: Kind,
    digest: str,
    created: Mapping[str, float | None],
    policy: Policy,
) -> Verdict:
    """The verdict on an image tag, a marker or a foreign tag (on its own)."""
    if kind is Kind.FOREIGN:
        return Verdict(name, tag, kind, digest, False, "not ours")
    if kind is Kind.IMAGE and tag not in created:
        return Verdict(name, tag, kind, digest, False, "a kept commit's image")
    when = created.get(tag)
    # Unknown age counts as young (a cache may make a run faster, never wrong).
    if when is None:
        return Verdict(name, tag, kind, digest, False, "age unknown")
    if policy.now - when < policy.keep_younger:
        return Verdict(name, tag, kind, digest, False, "younger than the age guard", when)
    why = "no kept commit asks for it" if kind is Kind.IMAGE else "an old failure marker"
    return Verdict(name, tag, kind, digest, True, why, when)


def _referrers(
    name: str,
    verdicts: dict[str, Verdict],
    kinds: Mapping[str, Kind],
    by_tag: Mapping[str, _Manifest],
) -> None:
    """Referrers tags go with their subject: kept with it, deleted with it or when
    it is gone."""
    alive = {v.digest for v in verdicts.values() if not v.delete}
    for tag, manifest in by_tag.items():
        if kinds[tag] is not Kind.REFERRERS:
            continue
        subject = "sha256:" + tag.removeprefix("sha256-")
        artifacts = tuple(sorted(manifest.children))
        digest = manifest.document.digest
        if subject in alive:
            verdicts[tag] = Verdict(name, tag, Kind.REFERRERS, digest, False, "its image is kept")
        else:
            gone = subject not in {m.document.digest for m in by_tag.values()}
            why = "its image is gone" if gone else "its image is deleted"
            verdicts[tag] = Verdict(name, tag, Kind.REFERRERS, digest, True, why, None, artifacts)


def _account(plan: Plan, readers: Sequence[_Reader]) -> None:
    """Bytes freed: blobs and manifests only deleted things reference, each once."""
    manifests: dict[str, _Manifest] = {}
    for reader in readers:
        manifests.update(reader.manifests)
    kept_roots = [v.digest for r in plan.repositories for v in r.verdicts if not v.delete]
    kept = _closure(kept_roots, manifests)
    kept_blobs = {b for d in kept if d in manifests for b in manifests[d].blobs}
    counted: set[str] = set(kept) | kept_blobs
    total = 0
    for repository in plan.repositories:
        for i, verdict in enumerate(repository.verdicts):
            if not verdict.delete:
                continue
            freed = 0
            for digest in (verdict.digest, *verdict.artifacts):
                found = manifests.get(digest)
                if digest not in counted:
                    counted.add(digest)
                    freed += found.document.size if found else 0
                for blob, size in (found.blobs if found else {}).items():
                    if blob not in counted:
                        counted.add(blob)
                        freed += size
            repository.verdicts[i] = replace(verdict, freed=freed)
            total += freed
    plan.freed = total


async def plan(writer: RegistryWriter, repositories: Sequence[Reference], policy: Policy) -> Plan:
    """The verdict on every tag of ``repositories`` under ``policy`` (nothing deleted)."""
    read: list[tuple[RepositoryPlan, _Reader, dict[str, _Manifest]]] = []

    async def one(repository: Reference) -> None:
        found = await _read_repository(writer, repository)
        if not found[0].error:
            try:
                with single_error():
                    await _decide(found[0], found[1], found[2], policy)
            except MzbuildError as exc:  # an age or the referrers API could not be read
                found[0].error = str(exc)
                found[0].verdicts = []
        read.append(found)

    async with anyio.create_task_group() as tg:
        for repository in repositories:
            tg.start_soon(one, repository)
    read.sort(key=lambda r: r[0].name)
    result = Plan([r[0] for r in read])
    _account(result, [r[1] for r in read])
    return result
