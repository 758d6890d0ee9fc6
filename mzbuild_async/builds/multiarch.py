"""Multi-arch publishing: one OCI image index per image, over the registry API.

``publish-manifest TAG --arch x86_64 --arch aarch64`` points ``TAG`` of
each image at the per-arch fingerprint tags, with the digest, size and
platform of each read from the registry. Writing the same index again is a
no-op (``unchanged``), so the command is idempotent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ..errors import TransferError
from ..model.options import Arch
from ..registry.names import parse_reference
from ..registry.writer import Document, RegistryWriter, digest_of

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
INDEX_TYPES = frozenset({OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})
GO_ARCH = {Arch.X86_64: "amd64", Arch.AARCH64: "arm64"}
#: Images whose indexes are written at once.
CONCURRENCY = 16


@dataclass(frozen=True)
class Platform:
    """One entry of an index: a per-arch manifest and its platform."""

    arch: Arch
    spec: str
    media_type: str
    digest: str
    size: int
    os: str
    architecture: str
    variant: str | None = None

    def descriptor(self) -> dict[str, Any]:
        """The entry as an OCI descriptor."""
        platform: dict[str, str] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            platform["variant"] = self.variant
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "platform": platform,
        }


@dataclass(frozen=True)
class IndexResult:
    """What ``publish-manifest`` did for one image."""

    #: ``created``, ``updated`` or ``unchanged``.
    status: str
    target: str
    digest: str
    platforms: tuple[Platform, ...]

    def to_json(self) -> dict[str, Any]:
        """The result as JSON."""
        return {
            "status": self.status,
            "target": self.target,
            "digest": self.digest,
            "manifests": {
                str(p.arch): {"spec": p.spec, "digest": p.digest, "size": p.size}
                for p in self.platforms
            },
        }


def index_body(platforms: list[Platform]) -> bytes:
    """The index document: canonical JSON, so equal inputs give equal digests."""
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [p.descriptor() for p in platforms],
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


async def read_platform(writer: RegistryWriter, arch: Arch, spec: str) -> Platform:
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
    if architecture != GO_ARCH[arch]:
        raise TransferError(
            f"{spec}: built for {architecture}, not {GO_ARCH[arch]} as --arch {arch} says"
        )
    variant = data.get("variant")
    return Platform(
        arch,
        spec,
        manifest.media_type,
        manifest.digest,
        manifest.size,
        os_name,
        architecture,
        variant if isinstance(variant, str) else None,
    )


def target_of(spec: str, tag: str) -> str:
    """The reference ``tag`` of the repository ``spec`` is in."""
    return f"{spec.rsplit(':', 1)[0]}:{tag}"


async def publish_index(writer: RegistryWriter, tag: str, specs: Mapping[Arch, str]) -> IndexResult:
    """Write (or confirm) the index at ``tag`` over one image's per-arch specs."""
    if not specs:
        raise TransferError("no architectures given")
    platforms: list[Platform] = []
    for arch, spec in specs.items():
        platforms.append(await read_platform(writer, arch, spec))
    target = target_of(next(iter(specs.values())), tag)
    ref = parse_reference(target)
    body = index_body(platforms)
    digest = digest_of(body)
    existing = await writer.manifest(ref)
    if existing is not None and existing.digest == digest:
        return IndexResult("unchanged", target, digest, tuple(platforms))
    stored = await writer.put_manifest(ref, OCI_INDEX, body)
    status = "created" if existing is None else "updated"
    return IndexResult(status, target, stored, tuple(platforms))


async def publish_indexes(
    writer: RegistryWriter, tag: str, specs_by_image: Mapping[str, Mapping[Arch, str]]
) -> dict[str, IndexResult | Exception]:
    """Every image's index, concurrently; a failure is that image's value."""
    results: dict[str, IndexResult | Exception] = {}
    limit = anyio.CapacityLimiter(CONCURRENCY)

    async def one(name: str, specs: Mapping[Arch, str]) -> None:
        async with limit:
            try:
                results[name] = await publish_index(writer, tag, specs)
            except TransferError as exc:
                results[name] = exc

    async with anyio.create_task_group() as tg:
        for name, specs in specs_by_image.items():
            tg.start_soon(one, name, specs)
    return {name: results[name] for name in specs_by_image}
