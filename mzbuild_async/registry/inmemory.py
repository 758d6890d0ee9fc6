"""A registry in memory, behind an httpx transport (as ``httpx.MockTransport`` is).

Shipped for tests and scripting: hand :meth:`MemoryRegistry.transport` to a
:class:`~.client.RegistryClient` (``transport=``) and every host it asks is
this registry. It speaks the part of the OCI distribution API the tool uses:
``GET /v2/``; ``HEAD``/``GET``/``PUT``/``DELETE`` of manifests by tag or
digest; ``HEAD``/``GET`` of blobs; monolithic blob uploads (``POST`` then
``PUT ...?digest=``); tag lists; with ``referrers_api``, the referrers API. It
keeps a count of requests by method and can answer like a registry that is
down (``unavailable``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx


def _digest(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


#: The media type of the referrers API's answer.
OCI_INDEX_TYPE = "application/vnd.oci.image.index.v1+json"


@dataclass
class _Manifest:
    media_type: str
    body: bytes

    @property
    def digest(self) -> str:
        return _digest(self.body)


@dataclass
class MemoryRegistry:
    """Repositories of manifests and blobs, by host; see the module docstring."""

    #: (host, repository) -> reference (tag or digest) -> manifest.
    manifests: dict[tuple[str, str], dict[str, _Manifest]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    #: Requests answered, by method.
    requests: Counter[str] = field(default_factory=Counter)
    #: Answer every request with 503 (a registry that is down).
    unavailable: bool = False
    #: Serve the referrers API (``GET /v2/<name>/referrers/<digest>``).
    referrers_api: bool = False

    def transport(self) -> httpx.MockTransport:
        """An httpx transport whose every host is this registry."""
        return httpx.MockTransport(self.handle)

    def tags(self, host: str, repository: str) -> list[str]:
        """The tags of one repository."""
        found = self.manifests.get((host, repository), {})
        return sorted(ref for ref in found if not ref.startswith("sha256:"))

    def manifest(self, spec: str) -> bytes | None:
        """The manifest body at ``HOST/REPOSITORY:TAG`` (None when there is none)."""
        host, _, rest = spec.partition("/")
        repository, _, tag = rest.rpartition(":")
        found = self.manifests.get((host, repository), {}).get(tag)
        return None if found is None else found.body

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request."""
        self.requests[request.method] += 1
        if self.unavailable:
            return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]})
        path = request.url.path
        if path in ("/v2/", "/v2"):
            return httpx.Response(200, json={})
        host = request.url.netloc.decode()
        for marker, handler in (
            ("/manifests/", self._manifests),
            ("/blobs/uploads/", self._uploads),
            ("/blobs/", self._blobs),
            ("/tags/list", self._tag_list),
            ("/referrers/", self._referrers),
        ):
            if marker in path:
                repository, _, rest = path.removeprefix("/v2/").partition(marker.rstrip("/"))
                return handler(request, host, repository.rstrip("/"), rest.lstrip("/"))
        return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})

    def _manifests(
        self, request: httpx.Request, host: str, repository: str, reference: str
    ) -> httpx.Response:
        store = self.manifests.setdefault((host, repository), {})
        if request.method == "PUT":
            manifest = _Manifest(request.headers.get("content-type", ""), request.content)
            store[reference] = store[manifest.digest] = manifest
            return httpx.Response(201, headers={"Docker-Content-Digest": manifest.digest})
        found = store.get(reference)
        if found is None:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        if request.method == "DELETE":
            for ref in [r for r, m in store.items() if m.digest == found.digest]:
                del store[ref]
            return httpx.Response(202)
        headers = {"Content-Type": found.media_type, "Docker-Content-Digest": found.digest}
        if request.method == "HEAD":
            headers["Content-Length"] = str(len(found.body))
            return httpx.Response(200, headers=headers)
        return httpx.Response(200, headers=headers, content=found.body)

    def _blobs(
        self, request: httpx.Request, host: str, repository: str, digest: str
    ) -> httpx.Response:
        body = self.blobs.get(digest)
        if body is None:
            return httpx.Response(404, json={"errors": [{"code": "BLOB_UNKNOWN"}]})
        headers = {"Docker-Content-Digest": digest, "Content-Length": str(len(body))}
        return httpx.Response(
            200, headers=headers, content=b"" if request.method == "HEAD" else body
        )

    def _uploads(
        self, request: httpx.Request, host: str, repository: str, upload: str
    ) -> httpx.Response:
        if request.method == "POST":
            location = f"/v2/{repository}/blobs/uploads/{uuid.uuid4().hex}"
            return httpx.Response(202, headers={"Location": location})
        digest = request.url.params.get("digest", "")
        if request.method != "PUT" or _digest(request.content) != digest:
            return httpx.Response(400, json={"errors": [{"code": "DIGEST_INVALID"}]})
        self.blobs[digest] = request.content
        return httpx.Response(201, headers={"Docker-Content-Digest": digest})

    def _referrers(
        self, request: httpx.Request, host: str, repository: str, subject: str
    ) -> httpx.Response:
        if not self.referrers_api:
            return httpx.Response(404, json={"errors": [{"code": "NAME_UNKNOWN"}]})
        listed = []
        for manifest in {
            m.digest: m for m in self.manifests.get((host, repository), {}).values()
        }.values():
            document = json.loads(manifest.body)
            if (document.get("subject") or {}).get("digest") != subject:
                continue
            listed.append(
                {
                    "mediaType": manifest.media_type,
                    "digest": manifest.digest,
                    "size": len(manifest.body),
                    "artifactType": document.get("artifactType", ""),
                }
            )
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX_TYPE, "manifests": listed}
        return httpx.Response(
            200, headers={"Content-Type": OCI_INDEX_TYPE}, content=json.dumps(body).encode()
        )

    def _tag_list(
        self, request: httpx.Request, host: str, repository: str, rest: str
    ) -> httpx.Response:
        body = {"name": repository, "tags": self.tags(host, repository)}
        return httpx.Response(200, content=json.dumps(body).encode())
