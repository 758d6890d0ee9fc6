"""What a registry's answer about a manifest says: present (with its digest and size),
absent, or unknown and why, read in one place (:meth:`.client.RegistryClient.lookup`)."""

from __future__ import annotations

import hashlib

import httpx

from ..model.status import Probe, Status
from ..support.documents import parse_json
from .names import Reference
from .transport import leading_int

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES)


def probe_of(response: httpx.Response, method: str, host: str, ref: Reference) -> Probe:
    """The answer of ``host`` to a manifest ``HEAD`` (or ``GET``) of ``ref``."""
    status = response.status_code
    if status == 404:
        return Probe(Status.ABSENT)
    if status == 200:
        if not _is_manifest(response, method):
            kind = response.headers.get("content-type", "no content type")
            return Probe(Status.UNKNOWN, f"{host}: answered 200 with {kind}, not a manifest")
        digest, size = _descriptor(response, method)
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        media_type = kind if kind in MANIFEST_TYPES else ""
        return Probe(Status.PRESENT, digest, digest=digest, size=size, media_type=media_type)
    if status in (405, 501, 400) and method == "HEAD":
        return Probe(Status.UNKNOWN, f"{host}: HEAD answered {status}", get_may_help=True)
    if status == 403:
        return Probe(Status.UNKNOWN, f"{host}: access to {ref.repository} denied (403)")
    return Probe(Status.UNKNOWN, f"{host}: unexpected answer {status}")


def _descriptor(response: httpx.Response, method: str) -> tuple[str, int]:
    """The digest and size of the manifest a 200 answered about ("", 0: not said)."""
    if method == "GET":
        body = response.content
        return f"sha256:{hashlib.sha256(body).hexdigest()}", len(body)
    digest = response.headers.get("docker-content-digest", "")
    size = leading_int(response.headers.get("content-length", "")) or 0
    return (digest if digest.startswith("sha256:") else ""), size


def _is_manifest(response: httpx.Response, method: str) -> bool:
    """Whether a 200 really carries a manifest (not a portal's or proxy's HTML page)."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if method == "HEAD":
        # Registries send the manifest's media type, or at least its digest.
        return (
            kind in MANIFEST_TYPES
            or kind.endswith("+json")
            or ("docker-content-digest" in response.headers and not kind.startswith("text/"))
        )
    try:
        data = parse_json(response.content)
    except ValueError:
        return False
    return isinstance(data, dict) and ("schemaVersion" in data or "mediaType" in data)
