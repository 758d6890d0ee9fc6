"""Deleting from GitHub's container registry, which refuses the standard ``DELETE``.

GHCR deletes through the Packages API instead: a package's versions are
listed (``GET /orgs|users/OWNER/packages/container/PACKAGE/versions``, page by
page), the version whose ``name`` is the manifest digest is found, and it is
deleted by id. The package is the repository path without its owner
(``ghcr.io/acme/tools/cli`` is package ``tools/cli`` of ``acme``); an owner is
tried as an organization, then as a user. The token is ``GITHUB_TOKEN`` (or
``GH_TOKEN``) and needs ``delete:packages``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx

from ..errors import TransferError, reason
from ..support.documents import parse_json
from .names import Reference

HOST = "ghcr.io"
API = "https://api.github.com"
#: Versions asked for per page, and pages followed at most.
PER_PAGE, MAX_PAGES = 100, 1000


@dataclass
class GhcrPackages:
    """Deletes GHCR manifests by digest through the Packages API."""

    environ: Mapping[str, str]
    transport: httpx.AsyncBaseTransport | None = None
    api: str = API
    #: (owner, package) -> digest -> version id, listed once per run.
    _versions: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    #: owner -> "orgs" or "users".
    _kinds: dict[str, str] = field(default_factory=dict)

    def _client(self) -> httpx.AsyncClient:
        token = self.environ.get("GITHUB_TOKEN") or self.environ.get("GH_TOKEN")
        if not token:
            raise TransferError(
                f"{HOST} deletes through GitHub's Packages API: set GITHUB_TOKEN to a token"
                " with delete:packages"
            )
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        return httpx.AsyncClient(
            base_url=self.api, headers=headers, transport=self.transport, timeout=30
        )

    async def delete(self, repository: Reference, digest: str) -> bool:
        """Delete the version of ``repository``'s package named ``digest``; False when
        there is none."""
        owner, _, package = repository.repository.partition("/")
        if not package:
            raise TransferError(f"{HOST}/{owner}: not a package path (ghcr.io/OWNER/PACKAGE)")
        async with self._client() as client:
            versions = await self._list(client, owner, package)
            version = versions.get(digest)
            if version is None:
                return False
            path = f"{self._base(owner, package)}/versions/{version}"
            response = await self._send(client, "DELETE", path, owner)
            if response.status_code == 404:
                return False
            if response.status_code != 204:
                raise TransferError(
                    f"{HOST}/{owner}/{package}: deleting version {version} answered"
                    f" {response.status_code}"
                )
            del versions[digest]
            return True

    def _base(self, owner: str, package: str) -> str:
        return f"/{self._kinds[owner]}/{quote(owner)}/packages/container/{quote(package, safe='')}"

    async def _send(
        self, client: httpx.AsyncClient, method: str, path: str, owner: str
    ) -> httpx.Response:
        try:
            response = await client.request(method, path)
        except httpx.HTTPError as exc:
            raise TransferError(
                f"{HOST}: the Packages API could not be reached: {reason(exc)}"
            ) from None
        if response.status_code in (401, 403):
            raise TransferError(
                f"{HOST}: the token may not delete packages of {owner}"
                f" ({response.status_code}); it needs delete:packages"
            )
        return response

    async def _list(self, client: httpx.AsyncClient, owner: str, package: str) -> dict[str, int]:
        known = self._versions.get((owner, package))
        if known is not None:
            return known
        kinds = [self._kinds[owner]] if owner in self._kinds else ["orgs", "users"]
        for kind in kinds:
            self._kinds[owner] = kind
            found = await self._pages(client, owner, package)
            if found is not None:
                self._versions[(owner, package)] = found
                return found
        raise TransferError(f"{HOST}: no package {package} of {owner} (as organization or user)")

    async def _pages(
        self, client: httpx.AsyncClient, owner: str, package: str
    ) -> dict[str, int] | None:
        found: dict[str, int] = {}
        for page in range(1, MAX_PAGES + 1):
            path = f"{self._base(owner, package)}/versions?per_page={PER_PAGE}&page={page}"
            response = await self._send(client, "GET", path, owner)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise TransferError(
                    f"{HOST}/{owner}/{package}: listing versions answered {response.status_code}"
                )
            try:
                listed = parse_json(response.content)
            except ValueError:
                listed = None
            if not isinstance(listed, list):
                raise TransferError(f"{HOST}/{owner}/{package}: a version list that is not JSON")
            for item in listed:
                if isinstance(item, dict) and isinstance(item.get("id"), int):
                    found[str(item.get("name"))] = item["id"]
            if len(listed) < PER_PAGE:
                return found
        raise TransferError(f"{HOST}/{owner}/{package}: over {MAX_PAGES} pages of versions")
