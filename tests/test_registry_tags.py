"""Tag listing page by page and deletion by digest, against the real docker-registry
(which ignores ``n`` and answers every tag at once: the paging is tested by a transport
that pages, below)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mzbuild_async.errors import TransferError
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.registry.tags import delete, tags
from tests.support.registry import Registry, run_registry

pytestmark = [pytest.mark.anyio, pytest.mark.real]


@pytest.fixture(scope="module")
def readonly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("reg-ro-tags"), readonly=True) as registry:
        yield registry


async def test_every_tag_comes_back_across_pages(registries: dict[str, Registry]) -> None:
    registry = registries["none"]
    repo = f"t{uuid.uuid4().hex[:8]}/img"
    wanted = {f"mzbuild-{i:03d}" for i in range(23)}
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda tag: registry.push(repo, tag), sorted(wanted)))
    async with RegistryClient() as client:
        listed = await tags(client, parse_reference(f"{registry.host}/{repo}"), page=5)
        missing = await tags(client, parse_reference(f"{registry.host}/nothing/here"))
    assert sorted(listed) == sorted(wanted)
    assert len(listed) == len(set(listed))
    assert missing == []


async def test_delete_by_digest(registries: dict[str, Registry], readonly: Registry) -> None:
    registry = registries["none"]
    repo = f"d{uuid.uuid4().hex[:8]}/img"
    digest = registry.push(repo, "mzbuild-A")
    where = parse_reference(f"{registry.host}/{repo}")
    async with RegistryClient() as client:
        assert await delete(client, where, digest) is True
        assert registry.digest(repo, "mzbuild-A") is None
        assert await delete(client, where, digest) is False  # already gone
        with pytest.raises(TransferError, match="refuses to delete manifests"):
            await delete(client, parse_reference(f"{readonly.host}/{repo}"), digest)


async def test_pages_are_followed_by_their_link() -> None:
    """A registry that pages: ``n`` tags at a time, the next page in ``Link``."""
    import httpx

    everything = [f"t{i:02d}" for i in range(23)]
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        asked.append(str(request.url))
        n = int(request.url.params["n"])
        last = request.url.params.get("last")
        start = everything.index(last) + 1 if last else 0
        page = everything[start : start + n]
        headers = {}
        if start + n < len(everything):
            headers["Link"] = f'</v2/r/tags/list?n={n}&last={page[-1]}>; rel="next"'
        return httpx.Response(200, json={"name": "r", "tags": page}, headers=headers)

    async with RegistryClient(transport=httpx.MockTransport(handle)) as client:
        listed = await tags(client, parse_reference("reg.test/r"), page=5)
    assert listed == everything
    assert len(asked) == 5  # ceil(23 / 5) pages, each asked once
