"""1,000 lookups over several registry hosts at once, counted per host: each host's
requests in flight stay within its limit (a host with its own, lower limit too), the
hosts are asked side by side (one slow host does not hold the others back), and every
answer is right. The in-memory registry behind a transport that holds each request a
moment, so that requests overlap as they do over a network."""

from __future__ import annotations

from collections import Counter

import anyio
import httpx
import pytest

from mzbuild_async.lookup.lookups import Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.support.ratelimit import DEFAULT_LIMITS, Limiters, Limits
from mzbuild_async.testing import MemoryRegistry, no_wait

pytestmark = pytest.mark.anyio

HOSTS = {"a.test": 0.05, "b.test": 0.05, "slow.test": 0.03}  # host -> seconds per request
LOW = 4  # slow.test's own limit


class PerHost(httpx.AsyncBaseTransport):
    """Counts the requests handed to the HTTP client at once, per host, and holds each
    for its host's seconds before the registry answers it."""

    def __init__(self, registry: MemoryRegistry) -> None:
        self.registry = registry
        self.now: Counter[str] = Counter()
        self.most: Counter[str] = Counter()
        self.total: Counter[str] = Counter()
        self.all_at_once = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.now[host] += 1
        self.total[host] += 1
        self.most[host] = max(self.most[host], self.now[host])
        self.all_at_once = max(self.all_at_once, sum(self.now.values()))
        try:
            await anyio.sleep(HOSTS[host])
            return self.registry.handle(request)
        finally:
            self.now[host] -= 1


def _publish(registry: MemoryRegistry, spec: str) -> None:
    host, _, rest = spec.partition("/")
    repository, _, tag = rest.rpartition(":")
    body = b'{"schemaVersion": 2, "layers": []}'
    request = httpx.Request(
        "PUT",
        f"https://{host}/v2/{repository}/manifests/{tag}",
        content=body,
        headers={"content-type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert registry.handle(request).status_code == 201


async def test_a_thousand_lookups_over_three_hosts_stay_within_each_hosts_limit() -> None:
    registry = MemoryRegistry()
    specs = [f"{host}/r/img{i}:mzbuild-T{i}" for host in HOSTS for i in range(334)]
    published = set(specs[::3])
    for spec in published:
        _publish(registry, spec)
    counting = PerHost(registry)
    client = RegistryClient(
        transport=counting,
        retry=no_wait(2),
        limiters=Limiters({"slow.test": Limits(concurrency=LOW)}),
        remembered=dict.fromkeys(HOSTS),
        remembered_schemes=dict.fromkeys(HOSTS, "https"),
    )
    async with Lookups.create(tiers=("memory", "registry"), client=client) as lookups:
        answers = await lookups.lookup_many(specs)
    await client.aclose()
    assert {s: a.status for s, a in answers.items()} == {
        s: Status.PRESENT if s in published else Status.ABSENT for s in specs
    }
    assert {a.tier for a in answers.values()} == {"registry"}
    assert counting.total == dict.fromkeys(HOSTS, 334)  # (one request per lookup)
    limit = DEFAULT_LIMITS.concurrency
    for host in ("a.test", "b.test"):  # (full batches; a loaded machine may start fewer)
        assert limit // 2 <= counting.most[host] <= limit, counting.most
    assert counting.most["slow.test"] == LOW
    # Side by side: the hosts' batches were in flight together.
    assert counting.all_at_once > limit, counting.all_at_once
    assert lookups.requests == dict.fromkeys(HOSTS, 334)
