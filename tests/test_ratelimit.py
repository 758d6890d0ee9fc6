"""Per-host limits on a fake clock: token bucket, host-wide pauses, Retry-After forms."""

from __future__ import annotations

import email.utils

import anyio
import pytest

from mzbuild_async.support.ratelimit import (
    HostLimiter,
    Limiters,
    Limits,
    parse_body_hint,
    parse_retry_after,
)
from mzbuild_async.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_bucket_allows_burst_then_rate() -> None:
    """`burst` requests go at once; after that one per 1/rate seconds."""
    clock = FakeClock()
    limiter = HostLimiter("h", Limits(concurrency=100, rate=10.0, burst=5), clock, clock.sleep)
    for _ in range(25):
        async with limiter:
            pass
    assert clock.now == pytest.approx(2.0)  # 20 beyond the burst at 10/s
    assert limiter.statistics.requests == 25


async def test_pause_holds_every_request_of_the_host() -> None:
    """A 429's Retry-After pauses the whole host: the next request waits it out."""
    clock = FakeClock()
    limiter = HostLimiter("h", Limits(concurrency=8, rate=1000.0, burst=100), clock, clock.sleep)
    limiter.pause(3.0)
    async with limiter:
        pass
    assert clock.now >= 3.0
    assert limiter.statistics.throttled == 1
    assert limiter.statistics.paused_seconds == pytest.approx(3.0)


async def test_concurrency_cap() -> None:
    """No more than `concurrency` requests are in flight at once."""
    limiter = HostLimiter("h", Limits(concurrency=3, rate=1e6, burst=1000))
    inside = peak = 0

    async def request() -> None:
        nonlocal inside, peak
        async with limiter:
            inside += 1
            peak = max(peak, inside)
            await anyio.sleep(0.01)
            inside -= 1

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(request)
    assert peak == 3


async def test_low_remaining_slows_down() -> None:
    """RateLimit-Remaining under a tenth of the limit lowers the rate."""
    clock = FakeClock()
    limiter = HostLimiter("h", Limits(concurrency=10, rate=10.0, burst=1), clock, clock.sleep)
    async with limiter:
        pass
    limiter.observe_remaining(remaining=1, limit=100)
    async with limiter:
        pass
    assert clock.now == pytest.approx(1.0)  # 0.1 s at full rate, 1 s at a tenth


def test_limiters_know_docker_hub_and_take_configuration() -> None:
    """Docker Hub gets conservative defaults; configured hosts their own limits."""
    limiters = Limiters(configured={"r.example": Limits(concurrency=2, rate=1.0, burst=1)})
    assert limiters("registry-1.docker.io").limits.concurrency <= 4
    assert limiters("r.example").limits.rate == 1.0
    assert limiters("r.example") is limiters("r.example")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        pytest.param("5", 5.0, id="seconds"),
        pytest.param("0.5", 0.5, id="fraction"),
        pytest.param("-3", 0.0, id="negative"),
        pytest.param("soon", None, id="garbage"),
        pytest.param(None, None, id="absent"),
    ],
)
def test_retry_after_delay(value: str | None, seconds: float | None) -> None:
    """Retry-After as delay-seconds."""
    assert parse_retry_after(value) == seconds


def test_retry_after_http_date() -> None:
    """Retry-After as an HTTP date is measured from now."""
    now = 1_700_000_000.0
    header = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(header, now=now) == pytest.approx(30.0)


@pytest.mark.parametrize(
    ("body", "seconds"),
    [
        pytest.param('{"message":"rate limited, retry-after: 10.3ms"}', 0.0103, id="ghcr-ms"),
        pytest.param("Retry after 2s", 2.0, id="seconds"),
        pytest.param("retry-after: 1m", 60.0, id="minutes"),
        pytest.param("slow down", None, id="none"),
    ],
)
def test_body_hints(body: str, seconds: float | None) -> None:
    """GHCR-style hints in a 429 body."""
    result = parse_body_hint(body)
    assert result == (pytest.approx(seconds) if seconds is not None else None)
