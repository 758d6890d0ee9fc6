"""Attestations in cosign's tag layout, which ``cosign verify-attestation`` and
``cosign download attestation`` look up by default.

Next to image ``R@sha256:<hex>``, the tag ``R:sha256-<hex>.att`` names an OCI image
manifest whose layers are DSSE envelopes (``application/vnd.dsse.envelope.v1+json``),
one per statement, each annotated with its ``predicateType`` and the empty
``dev.cosignproject.cosign/signature`` cosign requires on every layer; the config is
an image config listing the layers as its ``diff_ids`` (cosign ignores it). Writing
again replaces the layers of the same predicate types and keeps the others (another
tool's attestations stay), as ``cosign attest --replace`` does.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import TransferError
from .names import Reference
from .referrers import OCI_MANIFEST, attestation_tag
from .writer import RegistryWriter, digest_of

DSSE_LAYER = "application/vnd.dsse.envelope.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: cosign reads every layer's signature from this annotation ("" for attestations).
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_TYPE_ANNOTATION = "predicateType"
#: The zero time cosign's static images carry.
_EPOCH = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class Layer:
    """One attestation of the layout: its statement's predicate type and where its
    envelope is."""

    predicate_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """The layer's descriptor."""
        return {
            "mediaType": DSSE_LAYER,
            "digest": self.digest,
            "size": self.size,
            "annotations": {
                PREDICATE_TYPE_ANNOTATION: self.predicate_type,
                SIGNATURE_ANNOTATION: "",
            },
        }


def _tagged(repository: Reference, subject: str) -> Reference:
    return Reference(repository.domain, repository.repository, tag=attestation_tag(subject))


async def cosign_layers(
    writer: RegistryWriter, repository: Reference, subject: str
) -> list[Layer] | None:
    """The attestations at ``subject``'s ``.att`` tag (None: there is no such tag;
    layers that are not DSSE envelopes are left out)."""
    found = await writer.manifest(_tagged(repository, subject))
    if found is None:
        return None
    layers = found.json().get("layers")
    listed: list[Layer] = []
    for item in layers if isinstance(layers, list) else []:
        if not isinstance(item, dict) or item.get("mediaType") != DSSE_LAYER:
            continue
        notes = item.get("annotations")
        predicate = notes.get(PREDICATE_TYPE_ANNOTATION) if isinstance(notes, dict) else None
        digest, size = item.get("digest"), item.get("size")
        if isinstance(digest, str) and isinstance(size, int):
            listed.append(Layer(str(predicate or ""), digest, size))
    return listed


async def attach_cosign(
    writer: RegistryWriter,
    repository: Reference,
    subject: str,
    envelopes: Sequence[tuple[str, bytes]],
) -> str:
    """Write ``envelopes`` ((predicate type, signed DSSE envelope) each) at
    ``subject``'s ``.att`` tag in ``repository``, replacing the layers of the same
    predicate types; the manifest's digest."""
    replaced = {predicate for predicate, _ in envelopes}
    kept = [
        layer
        for layer in await cosign_layers(writer, repository, subject) or []
        if layer.predicate_type not in replaced
    ]
    added = [
        Layer(predicate, await writer.put_blob(repository, envelope), len(envelope))
        for predicate, envelope in envelopes
    ]
    layers = [*kept, *added]
    config = json.dumps(
        {
            "architecture": "",
            "config": {},
            "created": _EPOCH,
            "history": [{"created": _EPOCH} for _ in layers],
            "os": "",
            "rootfs": {"type": "layers", "diff_ids": [layer.digest for layer in layers]},
        },
        separators=(",", ":"),
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": OCI_CONFIG,
            "digest": await writer.put_blob(repository, config),
            "size": len(config),
        },
        "layers": [layer.to_json() for layer in layers],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    stored = await writer.put_manifest(_tagged(repository, subject), OCI_MANIFEST, body)
    if stored != digest_of(body):
        raise TransferError(f"{repository}: the registry stored {stored}, not {digest_of(body)}")
    return stored
