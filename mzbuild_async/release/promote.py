"""``promote``: release tags on published images, without rebuilding them.

One arch: the tag gets the exact manifest bytes of the fingerprint tag (a
retag: the digest, and so any signature made on it, is kept). Several
arches: the tag gets an OCI image index over the per-arch manifests, with
the digest, size and platform of each read from the registry (canonical
JSON: equal inputs give an equal digest).

Tags are immutable unless they are moving ones (``latest``, ``unstable``)
or forced: a tag that names other content is refused with both digests,
and nothing is written. The same content is ``unchanged``. Per image, every
read comes before the one write, so a failure leaves no half-written tag;
the tag is read back after it (a concurrent promote of other content may
have written it too: the one whose content it does not hold fails, naming
both digests). The tool's own tag names are never release tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ..errors import TransferError
from ..model.options import Arch
from ..model.publication import check_release_tag
from ..registry.copy import copy_image
from ..registry.names import parse_reference
from ..registry.referrers import copy_referrers
from ..registry.writer import INDEX_TYPES, OCI_INDEX, Document, RegistryWriter, digest_of

#: Images promoted at once.
CONCURRENCY = 16


class TagMoved(TransferError):
    """A tag that is not a moving one already names other content."""


class TagRaced(TransferError):
    """Right after we wrote a tag, it named other content: someone else wrote it too."""


@dataclass(frozen=True)
class Platform:
    """One arch's manifest: where it is, what it is, its platform."""

    arch: Arch
    spec: str
    media_type: str
    digest: str
    size: int
    os: str
    architecture: str
    variant: str | None = None

    def descriptor(self) -> dict[str, Any]:
        """The manifest as an OCI descriptor, for an index."""
        platform: dict[str, str] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            platform["variant"] = self.variant
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "platform": platform,
        }

    @property
    def platform(self) -> str:
        """``os/architecture[/variant]``."""
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Promotion:
    """What ``promote`` did for one image at one registry."""

    #: ``created``, ``updated`` (a moving tag moved) or ``unchanged``.
    status: str
    target: str
    digest: str
    media_type: str
    size: int
    platforms: tuple[Platform, ...]

    @property
    def kind(self) -> str:
        """``tag`` (the arch's manifest itself) or ``index`` (over several arches)."""
        return "index" if self.media_type in INDEX_TYPES and len(self.platforms) > 1 else "tag"

    def to_json(self) -> dict[str, Any]:
        """The result as JSON."""
        return {
            "status": self.status,
            "kind": self.kind,
            "target": self.target,
            "digest": self.digest,
            "media_type": self.media_type,
            "size": self.size,
            "manifests": {
                str(p.arch): {
                    "spec": p.spec,
                    "digest": p.digest,
                    "size": p.size,
                    "platform": p.platform,
                }
                for p in self.platforms
            },
        }


#: (Kept for scripts written against ``publish-manifest``.)
IndexResult = Promotion


def index_body(platforms: list[Platform]) -> bytes:
    """The index document: canonical JSON, so equal inputs give equal digests."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [p.descriptor() for p in platforms],
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


async def read_platform(writer: RegistryWriter, arch: Arch, spec: str) -> tuple[Platform, Document]:
    """The manifest of ``spec`` with its platform read from its config blob."""
    ref = parse_reference(spec)
    manifest = await writer.manifest(ref)
    if manifest is None:
        raise TransferError(f"{spec} is not published; run `ensure --arch {arch}` for it first")
    if manifest.media_type in INDEX_TYPES:
        raise TransferError(f"{spec} is already a multi-arch index, not one image")
    config = manifest.json().get("config")
    if not isinstance(config, dict) or not isinstance(config.get("digest"), str):
        raise TransferError(f"{spec}: its manifest names no config blob")
    blob: Document = await writer.blob(ref, config["digest"])
    data = blob.json()
    os_name, architecture = data.get("os"), data.get("architecture")
    if not isinstance(os_name, str) or not isinstance(architecture, str):
        raise TransferError(f"{spec}: its config records no os/architecture")
    if architecture != arch.go:
        raise TransferError(
            f"{spec}: built for {architecture}, not {arch.go} as --arch {arch} says"
        )
    variant = data.get("variant")
    platform = Platform(
        arch,
        spec,
        manifest.media_type,
        manifest.digest,
        manifest.size,
        os_name,
        architecture,
        variant if isinstance(variant, str) else None,
    )
    return platform, manifest


def target_of(spec: str, tag: str) -> str:
    """The reference ``tag`` of the repository ``spec`` is in."""
    return f"{spec.rsplit(':', 1)[0]}:{tag}"


async def promote_image(
    writer: RegistryWriter, tag: str, specs: Mapping[Arch, str], *, may_move: bool = False
) -> Promotion:
    """Point ``tag`` at one image's per-arch specs (the manifest itself for one arch,
    an index for several); ``may_move``: the tag may already name other content."""
    check_release_tag(tag)
    if not specs:
        raise TransferError("no architectures given")
    read = [await read_platform(writer, arch, spec) for arch, spec in specs.items()]
    platforms = [platform for platform, _ in read]
    if len(read) == 1:
        media_type, body = read[0][1].media_type, read[0][1].body
    else:
        media_type, body = OCI_INDEX, index_body(platforms)
    digest = digest_of(body)
    target = target_of(next(iter(specs.values())), tag)
    ref = parse_reference(target)
    existing = await writer.manifest(ref)
    if existing is not None and existing.digest == digest:
        return Promotion("unchanged", target, digest, media_type, len(body), tuple(platforms))
    if existing is not None and not may_move:
        raise TagMoved(
            f"{target} already names {existing.digest}, not {digest}; a release tag never"
            " moves (a moving tag is one of [promote] moving; --force moves it anyway)"
        )
    stored = await writer.put_manifest(ref, media_type, body)
    if stored != digest:
        raise TransferError(f"{target}: the registry stored {stored}, not {digest}")
    # Registries have no conditional write: two promotes may both have found the tag
    # free. Read it back; whoever's content it does not hold has lost.
    holds = await writer.manifest(ref)
    if holds is None or holds.digest != digest:
        now = holds.digest if holds is not None else "nothing"
        raise TagRaced(
            f"{target} was moved by someone else: right after this promote wrote {digest}"
            f" there, it names {now}; check who else promotes {tag}"
        )
    status = "created" if existing is None else "updated"
    return Promotion(status, target, digest, media_type, len(body), tuple(platforms))


async def promote_images(
    writer: RegistryWriter,
    tag: str,
    specs_by_image: Mapping[str, Mapping[Arch, str]],
    *,
    may_move: bool = False,
) -> dict[str, Promotion | Exception]:
    """Every image's promotion, concurrently; a failure is that image's value."""
    check_release_tag(tag)
    results: dict[str, Promotion | Exception] = {}
    limit = anyio.CapacityLimiter(CONCURRENCY)

    async def one(name: str, specs: Mapping[Arch, str]) -> None:
        async with limit:
            try:
                results[name] = await promote_image(writer, tag, specs, may_move=may_move)
            except TransferError as exc:
                results[name] = exc

    async with anyio.create_task_group() as tg:
        for name, specs in specs_by_image.items():
            tg.start_soon(one, name, specs)
    return {name: results[name] for name in specs_by_image}


async def promote_at(
    writer: RegistryWriter,
    tag: str,
    specs_by_registry: Mapping[str, Mapping[Arch, str]],
    *,
    may_move: bool = False,
) -> dict[str, Promotion | Exception]:
    """One image promoted at several registries: the first (the primary) as it is,
    each other one after the image is copied there from the first (a mount on the
    same host, else a stream; nothing that is there is sent again)."""
    registries = list(specs_by_registry)
    primary = specs_by_registry[registries[0]]
    results: dict[str, Promotion | Exception] = {}
    for registry in registries:
        specs = specs_by_registry[registry]
        try:
            if registry != registries[0]:
                for arch, spec in specs.items():
                    source, target = parse_reference(primary[arch]), parse_reference(spec)
                    copied = await copy_image(writer, source, target)
                    await copy_referrers(writer, source, target, copied.digest)
            results[registry] = await promote_image(writer, tag, specs, may_move=may_move)
        except TransferError as exc:
            results[registry] = exc
    return results


async def promote_everywhere(
    writer: RegistryWriter,
    tag: str,
    specs: Mapping[str, Mapping[str, Mapping[Arch, str]]],
    *,
    may_move: bool = False,
) -> dict[str, dict[str, Promotion | Exception]]:
    """Every image (name -> registry -> arch -> spec, the primary first) promoted at
    each of its registries, images concurrently."""
    check_release_tag(tag)
    results: dict[str, dict[str, Promotion | Exception]] = {}
    limit = anyio.CapacityLimiter(CONCURRENCY)

    async def one(name: str) -> None:
        async with limit:
            results[name] = await promote_at(writer, tag, specs[name], may_move=may_move)

    async with anyio.create_task_group() as tg:
        for name in specs:
            tg.start_soon(one, name)
    return {name: results[name] for name in specs}


async def publish_indexes(
    writer: RegistryWriter, tag: str, specs_by_image: Mapping[str, Mapping[Arch, str]]
) -> dict[str, Promotion | Exception]:
    """:func:`promote_images` as ``publish-manifest`` did it (the tag may move)."""
    return await promote_images(writer, tag, specs_by_image, may_move=True)
