"""Lookups through a fault-injecting proxy in front of a real registry.

Whatever the proxy does, an answer is never a false "present", unknown is
never remembered, and nothing hangs past its deadline.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest

from mzbuild_async.lookup.lookups import Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.support.ratelimit import Limiters, Limits
from mzbuild_async.support.retry import RetryPolicy
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.registry import Registry

pytestmark = [pytest.mark.anyio, pytest.mark.real]

FAST_RETRY = RetryPolicy(attempts=6, initial_wait=0.01, max_wait=0.2, max_seconds=20)


@asynccontextmanager
async def proxied(registry: Registry, faults: Faults) -> AsyncIterator[FaultProxy]:
    """A fault proxy in front of ``registry`` (its token endpoint too) for the block."""
    token_realm = None
    if registry.issuer is not None:
        challenge = httpx.get(f"{registry.url}/v2/").headers["www-authenticate"]
        token_realm = challenge.split('realm="', 1)[1].split('"', 1)[0]
    proxy = FaultProxy(registry.url, faults, token_realm=token_realm)
    async with anyio.create_task_group() as tg:
        await tg.start(proxy.serve)
        yield proxy
        tg.cancel_scope.cancel()


def engine(**client: object) -> Lookups:
    options: dict[str, object] = {"retry": FAST_RETRY, **client}
    return Lookups.create(
        tiers=("memory", "registry", "manifest"),
        client=RegistryClient(**options),  # type: ignore[arg-type]
        owns_client=True,
    )


async def run(eng: Lookups, wanted: list[str]) -> dict[str, Status]:
    try:
        answers = await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    return {spec: a.status for spec, a in answers.items()}


def expected(wanted: list[str], pushed: set[str]) -> dict[str, Status]:
    return {s: Status.PRESENT if s in pushed else Status.ABSENT for s in wanted}


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(Faults(throttle=3, retry_after=0.2), id="429-retry-after-seconds"),
        pytest.param(Faults(throttle=3, retry_after=1.0, retry_after_form="date"), id="429-date"),
        pytest.param(
            Faults(throttle=3, retry_after=0.2, retry_after_form="body"), id="429-ghcr-body"
        ),
        pytest.param(Faults(throttle=2, retry_after_form="none"), id="429-no-hint"),
        pytest.param(Faults(errors=4), id="5xx-burst"),
        pytest.param(Faults(resets=3), id="connection-resets"),
        pytest.param(Faults(latency=0.02), id="latency"),
    ],
)
@pytest.mark.parametrize("auth", ["none", "token"])
async def test_transient_faults_still_give_correct_answers(
    registries: dict[str, Registry], faults: Faults, auth: str
) -> None:
    """429s (every hint form), 5xx bursts, resets and latency: every answer still right."""
    registry = registries[auth]
    async with proxied(registry, faults) as proxy:
        wanted, pushed = registry.push_many(8, 4, host=proxy.host)
        assert await run(engine(), wanted) == expected(wanted, pushed)


async def test_retry_after_pauses_the_whole_host(registries: dict[str, Registry]) -> None:
    """After a 429 with Retry-After, no request to that host is sent until it has passed."""
    registry = registries["none"]
    async with proxied(registry, Faults()) as proxy:
        wanted, pushed = registry.push_many(6, 3, host=proxy.host)
        eng = engine()
        await eng.client.lookup(
            __import__("mzbuild_async").registry.names.parse_reference(wanted[0])
        )
        proxy.faults.throttle = 1
        proxy.faults.retry_after = 0.5
        started = anyio.current_time()
        before = proxy.counts["requests"]
        statuses = await run(eng, wanted)
        elapsed = anyio.current_time() - started
    assert statuses == expected(wanted, pushed)
    # One request was throttled; the host's pause held every other request back,
    # so only the retries after the pause and the other lookups reached the proxy.
    assert proxy.counts["429"] == 1
    assert proxy.counts["requests"] - before <= len(wanted) + 1
    assert elapsed >= 0.45  # the pause was waited out, not skipped


async def test_stalled_answers_time_out_and_are_retried(registries: dict[str, Registry]) -> None:
    """A response that never comes hits the read timeout and the retry gets the answer."""
    registry = registries["none"]
    async with proxied(registry, Faults(stalls=2, only="/manifests/")) as proxy:
        wanted, pushed = registry.push_many(3, 2, host=proxy.host)
        statuses = await run(engine(timeout=httpx.Timeout(0.5)), wanted)
    assert statuses == expected(wanted, pushed)
    assert proxy.counts["stalls"] == 2


async def test_nothing_hangs_past_the_deadline(registries: dict[str, Registry]) -> None:
    """A registry that never answers gives unknown within the lookup deadline."""
    registry = registries["none"]
    async with proxied(registry, Faults(stalls=1000)) as proxy:
        wanted, _ = registry.push_many(2, 1, host=proxy.host)
        with anyio.fail_after(10):
            eng = engine(timeout=httpx.Timeout(30.0), deadline=1.0)
            answers = await eng.lookup_many(wanted)
            await eng.aclose()
    assert all(a.status is Status.UNKNOWN for a in answers.values())
    assert all("no answer within 1 s" in a.detail for a in answers.values())


async def test_persistent_errors_are_unknown_and_never_remembered(
    registries: dict[str, Registry],
) -> None:
    """A registry failing for good gives unknown (not present), asked again next time."""
    registry = registries["none"]
    async with proxied(registry, Faults(errors=10_000, only="/manifests/")) as proxy:
        wanted, _ = registry.push_many(2, 2, host=proxy.host)
        eng = engine()
        first = await eng.lookup_many(wanted)
        sent = proxy.counts["requests"]
        proxy.faults.errors = 0
        second = await eng.lookup_many(wanted)
        await eng.aclose()
    assert all(
        a.status is Status.UNKNOWN and "server error 503" in a.detail for a in first.values()
    )
    assert all(a.status is Status.PRESENT for a in second.values())
    assert proxy.counts["requests"] > sent  # the unknown answers were not cached


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        pytest.param(Faults(garbage=100, only="/__token__"), "not a token", id="token-html"),
        pytest.param(Faults(huge_headers=100), "bytes of headers", id="oversized-headers"),
        pytest.param(
            Faults(garbage=100, only="/manifests/"),
            "200 with text/html, not a manifest",
            id="html-200",
        ),
    ],
)
async def test_garbage_answers_are_unknown(
    registries: dict[str, Registry], faults: Faults, message: str
) -> None:
    """A token endpoint answering HTML, or oversized headers: unknown with one clear line."""
    registry = registries["token"]
    async with proxied(registry, faults) as proxy:
        wanted, _ = registry.push_many(1, 1, host=proxy.host)
        eng = engine()
        answer = await eng.lookup(wanted[0])
        await eng.aclose()
    assert answer.status is Status.UNKNOWN
    assert message in answer.detail
    assert "\n" not in answer.detail


async def test_head_refused_falls_back_to_manifest_get(registries: dict[str, Registry]) -> None:
    """A registry that refuses HEAD is asked with GET by the manifest tier."""
    registry = registries["none"]
    async with proxied(registry, Faults(refuse_head=True)) as proxy:
        wanted, pushed = registry.push_many(4, 2, host=proxy.host)
        eng = engine()
        answers = await eng.lookup_many(wanted)
        await eng.aclose()
    assert {s: a.status for s, a in answers.items()} == expected(wanted, pushed)
    assert {a.tier for a in answers.values()} == {"manifest"}


async def test_get_with_a_non_manifest_is_unknown(registries: dict[str, Registry]) -> None:
    """A 200 whose body is not a manifest is unknown, never present."""
    registry = registries["none"]
    async with proxied(registry, Faults(refuse_head=True)) as proxy:
        wanted, _ = registry.push_many(1, 1, host=proxy.host)
        eng = engine()
        await eng.client.prepare([])
        proxy.faults.garbage = 1
        proxy.faults.only = "/manifests/"
        answer = await eng.lookup(wanted[0])
        await eng.aclose()
    assert answer.status is Status.UNKNOWN
    assert "not a manifest" in answer.detail


async def test_unannounced_rate_limit_is_survived(registries: dict[str, Registry]) -> None:
    """A registry limiting to R/s without saying so: every answer right despite 429s.
    (30 lookups against 10/s with a bucket of 10: over it however slow the machine.)"""
    registry = registries["none"]
    async with proxied(registry, Faults(rate=10.0)) as proxy:
        wanted, pushed = registry.push_many(30, 15, host=proxy.host)
        limiters = Limiters(default=Limits(concurrency=32, rate=1000.0, burst=100))
        statuses = await run(
            engine(
                limiters=limiters, retry=RetryPolicy(attempts=10, initial_wait=0.05, max_wait=1.0)
            ),
            wanted,
        )
    assert statuses == expected(wanted, pushed)
    assert proxy.counts["429"] > 0


async def test_one_deadline_covers_every_phase(registries: dict[str, Registry]) -> None:
    """Token prefetch, HEAD and GET together take one deadline, not one each.

    Every request stalls: before, each of the three phases waited the whole
    deadline (3 x 2 s); now the lookup is unknown once its 2 s are spent.
    """
    registry = registries["token"]
    async with proxied(registry, Faults(stalls=10_000)) as proxy:
        wanted, _ = registry.push_many(2, 1, host=proxy.host)
        eng = engine(timeout=httpx.Timeout(30.0), deadline=2.0)
        with anyio.fail_after(4.0):
            answers = await eng.lookup_many(wanted)
        await eng.aclose()
    assert all(a.status is Status.UNKNOWN for a in answers.values())
    assert all("no answer within 2 s" in a.detail for a in answers.values())


async def test_retry_after_beyond_the_deadline_is_unknown_at_once(
    registries: dict[str, Registry],
) -> None:
    """A 429 asking for an hour answers unknown at once, saying how long the registry asked."""
    registry = registries["none"]
    async with proxied(registry, Faults()) as proxy:
        wanted, _ = registry.push_many(4, 2, host=proxy.host)
        eng = engine()
        await eng.client.prepare([])
        proxy.faults.throttle = 1
        proxy.faults.retry_after = 3600
        with anyio.fail_after(10):
            answers = await eng.lookup_many(wanted)
        await eng.aclose()
    assert all(a.status is Status.UNKNOWN for a in answers.values())
    details = {a.detail for a in answers.values()}
    assert any("asked us to wait 3600 s" in d for d in details), details
    assert proxy.counts["429"] == 1


async def test_check_command_keeps_its_deadline(
    registries: dict[str, Registry], fixture_repo: Path, tmp_path: Path
) -> None:
    """`check --deadline 2` against a registry that never answers ends with every image
    unknown "no answer within 2 s", exit 1.

    Before, the warm-up, the token prefetch, HEAD and GET each took the
    whole deadline (8 s and more).
    """
    registry = registries["token"]
    async with proxied(registry, Faults(stalls=10_000)) as proxy:
        argv = [
            sys.executable, "-m", "mzbuild_async", "check", "--all", "--json",
            "--repo", str(fixture_repo), "--image-registry", f"{proxy.host}/t",
            "--cache-dir", str(tmp_path), "--deadline", "2", "--tiers", "registry,manifest",
        ]  # fmt: skip
        # (A bound for a hang, not a timing: the in-process test above shows the one
        # deadline; here each answer saying "within 2 s" shows the flag reached it.)
        with anyio.fail_after(60.0):
            result = await anyio.run_process(argv, check=False)
    assert result.returncode == 1, result.stderr
    images = json.loads(result.stdout)["images"]
    assert images
    assert all(i["status"] == "unknown" for i in images.values())
    assert all("no answer within 2 s" in i["detail"] for i in images.values())
