"""A repository's tags, page by page, and manifests deleted by digest.

``tags`` follows the distribution spec's pagination (``n`` and ``last``,
the ``Link`` header's next page) under the host's limits; ``delete``
removes a manifest by digest, and a registry that refuses deletions
(``405``, ``UNSUPPORTED``) is one line naming it. What may be deleted is the
caller's decision (retention: :mod:`..workflow`), never this module's.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from ..errors import TransferError
from ..support.documents import parse_json
from .client import RegistryClient, RegistryUnavailable
from .names import Reference

#: Tags asked for per page.
PAGE = 100
#: Pages followed at most (a registry whose ``Link`` never ends cannot loop us).
MAX_PAGES = 10_000
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


async def tags(client: RegistryClient, repository: Reference, *, page: int = PAGE) -> list[str]:
    """Every tag of ``repository`` (empty when the repository does not exist)."""
    found: list[str] = []
    query = f"n={page}"
    for _ in range(MAX_PAGES):
        try:
            response = await client.request(repository, "GET", f"tags/list?{query}")
        except RegistryUnavailable as exc:
            raise TransferError(f"{repository.api_host}: could not list tags: {exc}") from None
        if response.status_code == 404:
            return found
        if response.status_code != 200:
            raise TransferError(
                f"{repository.api_host}/{repository.repository}: listing tags answered"
                f" {response.status_code}"
            )
        try:
            listed = parse_json(response.content).get("tags") or []
        except (ValueError, AttributeError):
            raise TransferError(f"{repository.api_host}: a tag list that is not JSON") from None
        found += [t for t in listed if isinstance(t, str)]
        link = _NEXT.search(response.headers.get("link", ""))
        if link is None or not listed:
            return found
        last = parse_qs(urlsplit(link.group(1)).query).get("last", [found[-1]])[0]
        query = f"n={page}&last={last}"
    raise TransferError(f"{repository.api_host}: over {MAX_PAGES} pages of tags")


async def delete(client: RegistryClient, repository: Reference, digest: str) -> bool:
    """Delete the manifest ``digest`` of ``repository``; False when it was not there."""
    try:
        response = await client.request(repository, "DELETE", f"manifests/{digest}", delete=True)
    except RegistryUnavailable as exc:
        raise TransferError(f"{repository.api_host}: could not delete: {exc}") from None
    if response.status_code in (200, 202):
        return True
    if response.status_code == 404:
        return False
    if response.status_code in (405, 501) or b"UNSUPPORTED" in response.content[:500]:
        raise TransferError(
            f"{repository.api_host} refuses to delete manifests ({response.status_code}); enable"
            " deletion there, or use the registry's own clean-up"
        )
    raise TransferError(
        f"{repository.api_host}/{repository.repository}: deleting {digest[:19]} answered"
        f" {response.status_code}"
    )
