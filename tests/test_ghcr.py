"""GHCR deletions through the Packages API, against a fake transport only (nothing here
reaches GitHub): paging, the organization-then-user fallback, and one-line errors."""

from __future__ import annotations

import httpx
import pytest

from mzbuild_async.errors import TransferError
from mzbuild_async.registry.ghcr import PER_PAGE, GhcrPackages
from mzbuild_async.registry.names import parse_reference

pytestmark = pytest.mark.anyio
TOKEN = {"GITHUB_TOKEN": "ghp_secret"}


class FakeGitHub:
    """A user (not an organization) ``alice`` with package ``tools/cli``: 150 versions."""

    def __init__(self, status: int = 204) -> None:
        self.versions = [{"id": 1000 + n, "name": f"sha256:{n:064x}"} for n in range(150)]
        self.requests: list[tuple[str, str]] = []
        self.status = status

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url)))
        assert request.headers["authorization"] == "Bearer ghp_secret"
        path = request.url.raw_path.decode().split("?")[0]
        if path.startswith("/orgs/"):
            return httpx.Response(404, json={"message": "Not Found"})
        base = "/users/alice/packages/container/tools%2Fcli/versions"
        if request.method == "GET" and path == base:
            page = int(request.url.params["page"])
            per = int(request.url.params["per_page"])
            return httpx.Response(200, json=self.versions[(page - 1) * per : page * per])
        if request.method == "DELETE" and path.startswith(base + "/"):
            if self.status != 204:
                return httpx.Response(self.status, json={"message": "no"})
            version = int(path.rsplit("/", 1)[1])
            self.versions = [v for v in self.versions if v["id"] != version]
            return httpx.Response(204)
        return httpx.Response(404)


REPO = parse_reference("ghcr.io/alice/tools/cli")


async def test_a_digest_is_deleted_by_its_version_id_after_paging() -> None:
    github = FakeGitHub()
    packages = GhcrPackages(TOKEN, transport=httpx.MockTransport(github.handle))
    digest = f"sha256:{140:064x}"  # on the second page
    assert await packages.delete(REPO, digest) is True
    assert (
        "DELETE",
        "https://api.github.com/users/alice/packages/container/tools%2Fcli/versions/1140",
    ) in github.requests
    assert all(v["name"] != digest for v in github.versions)
    # The listing is asked for once per package; a digest it lacks is not there.
    listed = sum(1 for m, _ in github.requests if m == "GET")
    assert await packages.delete(REPO, f"sha256:{999:064x}") is False
    assert sum(1 for m, _ in github.requests if m == "GET") == listed
    assert listed == 1 + 2  # the organization's 404, then two pages of PER_PAGE
    assert PER_PAGE == 100


async def test_without_a_token_or_with_a_weak_one_it_is_one_line() -> None:
    github = FakeGitHub(status=403)
    with pytest.raises(TransferError, match="set GITHUB_TOKEN to a token with delete:packages"):
        await GhcrPackages({}, transport=httpx.MockTransport(github.handle)).delete(
            REPO, "sha256:x"
        )
    packages = GhcrPackages(TOKEN, transport=httpx.MockTransport(github.handle))
    with pytest.raises(TransferError) as caught:
        await packages.delete(REPO, f"sha256:{3:064x}")
    assert str(caught.value) == (
        "ghcr.io: the token may not delete packages of alice (403); it needs delete:packages"
    )
    assert "ghp_secret" not in str(caught.value)


async def test_gc_deletes_at_ghcr_through_the_packages_api_only() -> None:
    from mzbuild_async.registry.client import RegistryClient
    from mzbuild_async.registry.writer import RegistryWriter
    from mzbuild_async.retention.deletions import apply
    from mzbuild_async.retention.policy import plan
    from mzbuild_async.testing import MemoryRegistry
    from tests.test_retention import DAY, FAST, NOW, image, policy, tag_of

    registry = MemoryRegistry()
    async with RegistryClient(transport=registry.transport(), retry=FAST, deadline=10) as client:
        writer = RegistryWriter(client)
        digest = await image(writer, REPO, tag_of(1), created=NOW - 10 * DAY, layer=b"x")
        github = FakeGitHub()
        github.versions.append({"id": 7, "name": digest})
        result = await plan(writer, [REPO], policy())
        packages = GhcrPackages(TOKEN, transport=httpx.MockTransport(github.handle))
        done = await apply(writer, result, {"ghcr.io": packages})
    assert [d.outcome for d in done] == ["deleted"]
    assert (
        "DELETE",
        "https://api.github.com/users/alice/packages/container/tools%2Fcli/versions/7",
    ) in github.requests
    assert registry.requests["DELETE"] == 0
