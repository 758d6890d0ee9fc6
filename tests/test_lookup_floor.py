"""Lookups at their floor, guarded by counts rather than timings.

A plain-HTTP loopback registry whose challenge is remembered: the scheme is
learned once (at most one HTTPS attempt for the host), and a batch of lookups
is in flight at once (at least ``min(N, concurrency)`` manifest requests held
at the server together). Counted at a proxy in front of the real registry.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from mzbuild_async.lookup.lookups import Answer, Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from tests.support.demo import Cli
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.registry import Registry

pytestmark = [pytest.mark.anyio, pytest.mark.real]

CONCURRENCY = 32  # the default per-host limit


@asynccontextmanager
async def proxied(registry: Registry, faults: Faults) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy(registry.url, faults)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        yield proxy
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("count", [8, 40], ids=["under-the-limit", "over-the-limit"])
async def test_a_remembered_plain_http_host_gets_one_probe_and_a_full_batch(
    registries: dict[str, Registry], count: int
) -> None:
    registry = registries["none"]
    wanted = min(count, CONCURRENCY)
    async with proxied(registry, Faults(gate=wanted)) as proxy:
        specs, pushed = registry.push_many(count, count // 2, host=proxy.host)
        client = RegistryClient(remembered={proxy.host: None})  # no /v2/ ping this run
        async with Lookups.create(tiers=("memory", "registry"), client=client) as engine:
            answers = await engine.lookup_many(specs)
        await client.aclose()
    assert {s: a.status for s, a in answers.items()} == {
        s: Status.PRESENT if s in pushed else Status.ABSENT for s in specs
    }
    assert proxy.counts["tls-attempts"] <= 1, proxy.counts
    assert proxy.most_in_flight >= wanted, (proxy.most_in_flight, proxy.counts)


async def _look_up(
    specs: list[str], host: str, scheme: str
) -> tuple[RegistryClient, dict[str, Answer]]:
    """Every spec looked up by a client that remembers ``host``: no auth, ``scheme``."""
    client = RegistryClient(remembered={host: None}, remembered_schemes={host: scheme})
    async with Lookups.create(tiers=("memory", "registry"), client=client) as engine:
        answers = await engine.lookup_many(specs)
    await client.aclose()
    return client, answers


async def test_a_remembered_scheme_costs_no_probe(registries: dict[str, Registry]) -> None:
    registry = registries["none"]
    async with proxied(registry, Faults(gate=8)) as proxy:
        specs, pushed = registry.push_many(8, 4, host=proxy.host)
        client, answers = await _look_up(specs, proxy.host, "http")
    assert all((a.status is Status.PRESENT) == (s in pushed) for s, a in answers.items())
    assert proxy.counts["tls-attempts"] == 0
    assert proxy.counts["requests"] == 8  # the HEADs, nothing else
    assert client.schemes == {proxy.host: "http"}


async def test_a_stale_remembered_scheme_is_learned_again_once(
    registries: dict[str, Registry],
) -> None:
    """Remembered HTTPS for a host that speaks plain HTTP now: switched once, all answers
    right, and the right scheme is what is remembered next."""
    registry = registries["none"]
    async with proxied(registry, Faults()) as proxy:
        specs, pushed = registry.push_many(12, 6, host=proxy.host)
        client, answers = await _look_up(specs, proxy.host, "https")
    assert all((a.status is Status.PRESENT) == (s in pushed) for s, a in answers.items())
    assert client.schemes == {proxy.host: "http"}
    assert proxy.counts["requests"] == 12


def test_check_remembers_the_scheme_in_hosts_json(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """A first check learns the loopback registry speaks plain HTTP (one TLS attempt)
    and says so in hosts.json; the next check makes none."""
    from tests.support.faultproxy import proxy_thread
    from tests.support.pool import Sleepy, make_sleepy_repo

    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy(f"i{n}", (), 0) for n in range(6)])
    with proxy_thread(registries["none"].url) as proxy:
        cli = Cli(repo, f"{proxy.host}/scheme", tmp_path / "cache")
        first = cli.run("check", "--all", "--no-disk-cache")
        assert first.returncode == 0, first.stderr
        assert proxy.counts["tls-attempts"] == 1
        remembered = json.loads((tmp_path / "cache" / "hosts.json").read_text())["data"]
        assert remembered[proxy.host] == {"challenge": None, "transport": "http"}
        second = cli.run("check", "--all", "--no-disk-cache")
        assert second.returncode == 0, second.stderr
        assert proxy.counts["tls-attempts"] == 1


async def test_a_thousand_lookups_hand_at_most_the_limit_to_httpx(
    registries: dict[str, Registry],
) -> None:
    """1,000 lookups of one host: at most the host's limit of requests in the HTTP client
    at once (the rest wait in the limiter, not in httpcore's pool, whose queue costs
    more per request the longer it is), every answer right."""
    import httpx

    from tests.support.counting import CountingTransport

    registry = registries["none"]
    specs, pushed = registry.push_many(1000, 100)
    counting = CountingTransport(httpx.AsyncHTTPTransport())
    client = RegistryClient(
        transport=counting,
        remembered={registry.host: None},
        remembered_schemes={registry.host: "http"},
    )
    async with Lookups.create(tiers=("memory", "registry"), client=client) as engine:
        answers = await engine.lookup_many(specs)
    pools = set(client._transport._clients)  # (the transport's own: no public view of them)
    await client.aclose()
    assert {s: a.status for s, a in answers.items()} == {
        s: Status.PRESENT if s in pushed else Status.ABSENT for s in specs
    }
    assert counting.total == 1000
    assert counting.most <= CONCURRENCY, counting.most
    # Spread over small pools (httpcore's per-request work is quadratic in a pool's size):
    # every pool was used, each as big as its share.
    shards = client._transport.shards(registry.host)
    assert len(pools) == len(shards.in_flight) == CONCURRENCY // shards.pool_size
    assert shards.in_flight == [0] * len(shards.in_flight)
