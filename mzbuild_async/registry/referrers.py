"""Artifacts attached to an image, the OCI 1.1 way: a manifest whose ``subject`` is it.

:func:`attach` pushes the artifact (an empty config, the payload as its one
layer, ``artifactType`` saying what it is) by digest. A registry with the
referrers API answers with ``OCI-Subject``; for one without it (Debian's
``docker-registry``, many others) the referrers tag schema of the
distribution spec is kept instead: an index at the tag ``sha256-<hex>`` of
the subject lists its referrers. :func:`referrers` reads either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import TransferError
from ..support.documents import parse_json
from .client import RegistryUnavailable
from .names import Reference
from .writer import OCI_INDEX, Document, RegistryWriter, digest_of

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY = b"{}"


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what, which digest, how big."""

    media_type: str
    digest: str
    size: int
    artifact_type: str = ""
    annotations: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The OCI descriptor."""
        document: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.artifact_type:
            document["artifactType"] = self.artifact_type
        if self.annotations:
            document["annotations"] = dict(self.annotations)
        return document

    @classmethod
    def of(cls, document: Document) -> Descriptor:
        """The descriptor of a manifest as the registry stored it."""
        return cls(document.media_type, document.digest, document.size)


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag of ``digest`` (``sha256-<hex>``)."""
    return digest.replace(":", "-", 1)


def attestation_tag(digest: str) -> str:
    """cosign's tag of the attestations of image ``digest`` (``sha256-<hex>.att``,
    :mod:`.cosign`)."""
    return fallback_tag(digest) + ".att"


def _at(ref: Reference, reference: str) -> Reference:
    return Reference(ref.domain, ref.repository, tag=reference)


async def attach(
    writer: RegistryWriter,
    repository: Reference,
    subject: Descriptor,
    artifact_type: str,
    payload_type: str,
    payload: bytes,
    annotations: dict[str, str] | None = None,
) -> Descriptor:
    """Push ``payload`` as an artifact of ``subject`` (in ``repository``); its manifest's
    descriptor. Attaching the same payload again changes nothing."""
    await writer.put_blob(repository, EMPTY)
    layer = await writer.put_blob(repository, payload)
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": EMPTY_TYPE, "digest": digest_of(EMPTY), "size": len(EMPTY)},
        "layers": [{"mediaType": payload_type, "digest": layer, "size": len(payload)}],
        "subject": subject.to_json(),
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    body = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
    digest = digest_of(body)
    response_digest, indexed = await _put_referrer(writer, _at(repository, digest), body)
    if response_digest != digest:
        raise TransferError(f"{repository}: the registry stored {response_digest}, not {digest}")
    descriptor = Descriptor(
        OCI_MANIFEST, digest, len(body), artifact_type, tuple(sorted((annotations or {}).items()))
    )
    if not indexed:
        await _add_to_fallback(writer, repository, subject.digest, descriptor)
    return descriptor


async def _put_referrer(writer: RegistryWriter, ref: Reference, body: bytes) -> tuple[str, bool]:
    """PUT the artifact manifest; its digest and whether the registry indexed its subject."""
    try:
        response = await writer.client.request(
            ref,
            "PUT",
            f"manifests/{ref.reference}",
            headers={"Content-Type": OCI_MANIFEST},
            content=body,
            push=True,
        )
    except RegistryUnavailable as exc:
        raise TransferError(f"{ref}: could not write the artifact: {exc}") from None
    if response.status_code not in (200, 201):
        raise TransferError(f"{ref}: the registry refused the artifact ({response.status_code})")
    stored = response.headers.get("docker-content-digest") or digest_of(body)
    return stored, bool(response.headers.get("oci-subject"))


async def _add_to_fallback(
    writer: RegistryWriter, repository: Reference, subject: str, descriptor: Descriptor
) -> None:
    """Add ``descriptor`` to the subject's ``sha256-<hex>`` index (made when missing)."""
    tag = _at(repository, fallback_tag(subject))
    existing = await writer.manifest(tag)
    manifests: list[dict[str, Any]] = []
    if existing is not None:
        found = existing.json().get("manifests")
        manifests = [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []
    if any(m.get("digest") == descriptor.digest for m in manifests):
        return
    manifests.append(descriptor.to_json())
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    body = json.dumps(index, separators=(",", ":"), sort_keys=True).encode()
    await writer.put_manifest(tag, OCI_INDEX, body)


async def referrers(
    writer: RegistryWriter, repository: Reference, subject: str, artifact_type: str = ""
) -> list[Descriptor]:
    """The artifacts attached to ``subject`` (of ``artifact_type``, when given): from
    the referrers API, else from the fallback tag."""
    listed = await from_api(writer, repository, subject)
    if listed is None:
        index = await writer.manifest(_at(repository, fallback_tag(subject)))
        listed = index.json().get("manifests") if index is not None else []
    found: list[Descriptor] = []
    for item in listed if isinstance(listed, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("digest"), str):
            continue
        kind = item.get("artifactType", "")
        if artifact_type and kind != artifact_type:
            continue
        notes = item.get("annotations")
        if not isinstance(notes, dict):
            notes = {}
        found.append(
            Descriptor(
                str(item.get("mediaType", OCI_MANIFEST)),
                item["digest"],
                int(item.get("size", 0)),
                str(kind),
                tuple(sorted((str(k), str(v)) for k, v in notes.items())),
            )
        )
    return found


async def copy_referrers(
    writer: RegistryWriter, source: Reference, target: Reference, subject: str
) -> int:
    """Copy the artifacts attached to ``subject`` in ``source``'s repository to
    ``target``'s (same digests; the fallback index kept where the target has no
    referrers API), and cosign's ``.att`` tag where it has one; how many were copied."""
    from .copy import copy_image  # (copy knows nothing of referrers)

    source_repo = _at(source, subject)
    count = 0
    for descriptor in await referrers(writer, source_repo, subject):
        copied = await copy_image(
            writer, _at(source, descriptor.digest), _at(target, descriptor.digest)
        )
        if await from_api(writer, target, subject) is None:
            await _add_to_fallback(
                writer,
                target,
                subject,
                Descriptor(
                    copied.media_type,
                    copied.digest,
                    copied.size,
                    descriptor.artifact_type,
                    descriptor.annotations,
                ),
            )
        count += 1
    att = attestation_tag(subject)  # (cosign's layout: one tag, copied as an image)
    if await writer.manifest(_at(source, att)) is not None:
        await copy_image(writer, _at(source, att), _at(target, att))
        count += 1
    return count


async def from_api(writer: RegistryWriter, repository: Reference, subject: str) -> Any:
    """What the referrers API lists for ``subject`` (None: the registry has no such API)."""
    try:
        response = await writer.client.request(
            repository, "GET", f"referrers/{subject}", headers={"Accept": OCI_INDEX}
        )
    except RegistryUnavailable as exc:
        raise TransferError(f"{repository}: could not list referrers: {exc}") from None
    if response.status_code != 200 or not response.headers.get("content-type", "").startswith(
        OCI_INDEX
    ):
        return None
    try:
        listed = parse_json(response.content).get("manifests")
    except (ValueError, AttributeError):
        return None
    return listed if isinstance(listed, list) else []
