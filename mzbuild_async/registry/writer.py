"""Reading manifests and blobs and writing manifests over the registry API.

A thin layer over :class:`RegistryClient` (which owns authentication,
limits and retries) for what multi-arch publishing needs. Every failure is
a :class:`TransferError` naming the reference and what the registry said.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..errors import TransferError
from ..support.documents import parse_json
from .answers import ACCEPT
from .client import RegistryClient, RegistryUnavailable
from .names import Reference
from .transport import MAX_BODY

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
#: The media types of manifests that list other manifests.
INDEX_TYPES = frozenset({OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})
#: Largest manifest or config blob we read (the client reads no more of any answer).
MAX_DOCUMENT = MAX_BODY


@dataclass(frozen=True)
class Document:
    """A manifest or blob as the registry stored it."""

    media_type: str
    digest: str
    size: int
    body: bytes

    def json(self) -> dict[str, Any]:
        """The body as a JSON object (TransferError if it is not one)."""
        try:
            data = parse_json(self.body)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise TransferError(f"{self.digest}: not a JSON object")
        return data


def digest_of(body: bytes) -> str:
    """The ``sha256:`` digest of ``body``."""
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


@dataclass
class RegistryWriter:
    """Manifests and blobs of one or more registries, through one client."""

    client: RegistryClient
    #: Where blobs were seen or put this session: (host, digest) -> a repository there
    #: that has it (a copy mounts from it instead of sending the bytes again).
    blob_homes: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Blob copies in flight, by (host, digest): a second copy of one waits for the
    #: first, then mounts it.
    blob_flights: dict[tuple[str, str], anyio.Event] = field(default_factory=dict)

    async def _get(self, ref: Reference, path: str, accept: str) -> Document | None:
        try:
            response = await self.client.request(ref, "GET", path, headers={"Accept": accept})
        except RegistryUnavailable as exc:
            raise TransferError(f"{ref}: could not ask the registry: {exc}") from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise TransferError(f"{ref}: GET {path} answered {response.status_code}")
        body = response.content
        if len(body) > MAX_DOCUMENT:
            raise TransferError(f"{ref}: {path} is over {MAX_DOCUMENT} bytes")
        digest = digest_of(body)
        announced = response.headers.get("docker-content-digest")
        if path.startswith("blobs/") and digest != path.removeprefix("blobs/"):
            raise TransferError(f"{ref}: blob {path} does not match its digest")
        if announced and announced.startswith("sha256:") and announced != digest:
            raise TransferError(f"{ref}: {path} body does not match its digest {announced}")
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        return Document(kind, digest, len(body), body)

    async def manifest(self, ref: Reference) -> Document | None:
        """The manifest ``ref`` names (None if there is none)."""
        return await self._get(ref, f"manifests/{ref.reference}", ACCEPT)

    async def blob(self, ref: Reference, digest: str) -> Document:
        """A blob of ``ref``'s repository (TransferError if missing)."""
        found = await self._get(ref, f"blobs/{digest}", "*/*")
        if found is None:
            raise TransferError(f"{ref}: blob {digest} is missing")
        return found

    async def put_manifest(self, ref: Reference, media_type: str, body: bytes) -> str:
        """Store ``body`` as ``ref``'s manifest; returns its digest.

        An answer that names no digest is no proof: a registry (or a proxy, a cache
        in front of one) may say 201 and keep nothing. Then ``ref`` is read back, as
        a pushed image is confirmed, and what it holds must be ``body``."""
        try:
            response = await self.client.request(
                ref,
                "PUT",
                f"manifests/{ref.reference}",
                headers={"Content-Type": media_type},
                content=body,
                push=True,
            )
        except RegistryUnavailable as exc:
            raise TransferError(f"{ref}: could not write the manifest: {exc}") from None
        if response.status_code not in (200, 201):
            detail = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            raise TransferError(
                f"{ref}: the registry refused the manifest ({response.status_code}"
                f"{': ' + detail if detail else ''})"
            )
        announced = response.headers.get("docker-content-digest")
        if announced:
            return str(announced)
        digest = digest_of(body)
        stored = await self.manifest(ref)
        if stored is None or stored.digest != digest:
            holds = "nothing" if stored is None else stored.digest
            raise TransferError(
                f"{ref}: the registry answered {response.status_code} to the manifest, naming"
                f" no digest, but holds {holds} there, not {digest}; nothing was stored"
            )
        return digest

    async def put_blob(self, ref: Reference, body: bytes) -> str:
        """Store ``body`` as a blob of ``ref``'s repository (once: a blob the registry
        has is not sent again); returns its digest."""
        digest = digest_of(body)
        try:
            known = await self.client.request(ref, "HEAD", f"blobs/{digest}", push=True)
            if known.status_code == 200:
                return digest
            started = await self.client.request(ref, "POST", "blobs/uploads/", push=True)
            location = started.headers.get("location", "")
            marker = f"/v2/{ref.repository}/"
            if started.status_code != 202 or marker not in location:
                raise TransferError(
                    f"{ref}: the registry refused a blob upload ({started.status_code})"
                )
            upload = location.split(marker, 1)[1]
            joiner = "&" if "?" in upload else "?"
            done = await self.client.request(
                ref,
                "PUT",
                f"{upload}{joiner}digest={digest}",
                headers={"Content-Type": "application/octet-stream"},
                content=body,
                push=True,
            )
        except RegistryUnavailable as exc:
            raise TransferError(f"{ref}: could not upload a blob: {exc}") from None
        if done.status_code not in (200, 201):
            raise TransferError(f"{ref}: the registry refused blob {digest} ({done.status_code})")
        return digest
