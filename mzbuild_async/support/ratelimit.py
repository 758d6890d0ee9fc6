"""Per-registry request limits: a concurrency cap and a token bucket.

Every request to a host (token requests included) passes through its
:class:`HostLimiter`. A ``429`` pauses the whole host, not just the one
request, until the time the registry asked for (``Retry-After`` as delay
seconds or an HTTP date, or a GHCR-style ``retry-after: 10.3ms`` hint in
the body); a low ``RateLimit-Remaining`` slows the bucket down.

Time is injected (``clock``, ``sleep``) so tests run on a fake clock.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Self

import anyio

from .deadline import BeyondDeadline, time_left

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

#: A cap on how long one Retry-After can pause a host.
MAX_PAUSE_SECONDS = 300.0
#: On an unannounced limit: the rate is multiplied by this per 429 event...
AIMD_DECREASE = 0.5
#: ...at most once per this many seconds (a burst of 429s is one event)...
AIMD_WINDOW = 0.2
#: ...never below this share of the configured rate...
AIMD_FLOOR = 0.01
#: ...and each success adds this many requests per second back.
AIMD_INCREASE = 0.5


@dataclass(frozen=True)
class Limits:
    """How hard we may use one registry host."""

    #: Requests in flight at once.
    concurrency: int = 32
    #: Sustained requests per second. The default suits private registries;
    #: public ones get their own below, and a 429 without a hint adapts it.
    rate: float = 1000.0
    #: Requests that may be sent at once after an idle spell.
    burst: int = 200

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.rate <= 0 or self.burst < 1:
            raise ValueError(f"invalid limits {self}: all must be positive")


DEFAULT_LIMITS = Limits()
#: Docker Hub allows anonymous clients 100 manifest pulls per 6 hours; be gentle.
DOCKER_HUB_LIMITS = Limits(concurrency=4, rate=5.0, burst=10)
#: Known hosts and their default limits; a config file or flags override these.
KNOWN_HOST_LIMITS: Mapping[str, Limits] = {
    "registry-1.docker.io": DOCKER_HUB_LIMITS,
    "auth.docker.io": DOCKER_HUB_LIMITS,
    "ghcr.io": Limits(concurrency=16, rate=50.0, burst=50),
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


_BODY_HINT = re.compile(r"retry[- ]after[\":\s]+([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m)?\b", re.I)


def parse_body_hint(body: str) -> float | None:
    """Seconds to wait from a hint in an error body (GHCR: ``retry-after: 10.3ms``)."""
    match = _BODY_HINT.search(body[:4096])
    if match is None:
        return None
    number = float(match.group(1))
    unit = (match.group(2) or "s").lower()
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


@dataclass
class LimiterStatistics:
    """What a host's limiter has seen."""

    requests: int = 0
    throttled: int = 0
    paused_seconds: float = 0.0


@dataclass
class HostLimiter:
    """The concurrency cap, token bucket and pause state of one host."""

    host: str
    limits: Limits = DEFAULT_LIMITS
    clock: Clock = time.monotonic
    sleep: Sleep = anyio.sleep
    statistics: LimiterStatistics = field(default_factory=LimiterStatistics)

    def __post_init__(self) -> None:
        self._slots = anyio.Semaphore(self.limits.concurrency)
        self._tokens = float(self.limits.burst)
        self._updated = self.clock()
        self._paused_until = 0.0
        self.asked = 0.0
        #: A factor (0, 1] on the rate, lowered when the registry says we are close.
        self._slowdown = 1.0
        #: A factor (0, 1] on the rate, learned from 429s that came without a hint.
        self._aimd = 1.0
        self._last_cut = -math.inf
        self._bucket_lock = anyio.Lock()

    @property
    def paused_until(self) -> float:
        """Clock time before which no request to this host starts."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        """Hold every request to this host for ``seconds`` (a 429's Retry-After)."""
        #: What the registry asked for, uncapped (for messages).
        self.asked = seconds
        seconds = min(max(0.0, seconds), MAX_PAUSE_SECONDS)
        until = self.clock() + seconds
        self._paused_until = max(self._paused_until, until)
        self.statistics.throttled += 1

    def throttled_without_hint(self) -> None:
        """A 429 that did not say when to retry: the registry has a limit we were not told.

        Additive increase, multiplicative decrease (as TCP does): cut this
        host's rate by :data:`AIMD_DECREASE` (at most once per
        :data:`AIMD_WINDOW` seconds, since a burst of 429s is one event) and
        empty the bucket; each later success raises the rate a little.
        """
        self.statistics.throttled += 1
        now = self.clock()
        if now - self._last_cut >= AIMD_WINDOW:
            self._last_cut = now
            self._aimd = max(AIMD_FLOOR, self._aimd * AIMD_DECREASE)
            self._tokens = 0.0
            self._updated = now

    def succeeded(self) -> None:
        """A request was not throttled: probe for more rate (+0.5 request/s)."""
        if self._aimd < 1.0:
            self._aimd = min(1.0, self._aimd + AIMD_INCREASE / self.limits.rate)

    def observe_remaining(self, remaining: int | None, limit: int | None) -> None:
        """Slow down when ``RateLimit-Remaining`` runs low (under 10 % of the limit)."""
        if remaining is None:
            return
        if limit and remaining < max(1, limit // 10):
            self._slowdown = max(0.1, remaining / max(1, limit // 10))
        else:
            self._slowdown = 1.0

    async def _take_token(self) -> None:
        async with self._bucket_lock:
            while True:
                now = self.clock()
                if now < self._paused_until:
                    wait = self._paused_until - now
                    left = time_left()
                    if left is not None and wait > left:
                        raise BeyondDeadline(max(wait, self.asked), left)
                    self.statistics.paused_seconds += wait
                    await self.sleep(wait)
                    continue
                rate = self.limits.rate * self._slowdown * self._aimd
                self._tokens = min(
                    float(self.limits.burst), self._tokens + (now - self._updated) * rate
                )
                self._updated = now
                # A tolerance: float sums like 0.1 * 10 may land just below 1.
                if self._tokens >= 1.0 - 1e-9:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return
                await self.sleep(max(1e-6, (1.0 - self._tokens) / rate))

    async def __aenter__(self) -> Self:
        await self._slots.acquire()
        try:
            await self._take_token()
        except BaseException:
            self._slots.release()
            raise
        self.statistics.requests += 1
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


@dataclass
class Limiters:
    """The limiter of every host, created on first use with its configured limits."""

    configured: Mapping[str, Limits] = field(default_factory=dict)
    default: Limits = DEFAULT_LIMITS
    clock: Clock = time.monotonic
    sleep: Sleep = anyio.sleep
    _hosts: dict[str, HostLimiter] = field(default_factory=dict)

    def limits_for(self, host: str) -> Limits:
        """The limits of ``host``: configured, else known defaults, else the default."""
        return self.configured.get(host) or KNOWN_HOST_LIMITS.get(host) or self.default

    def __call__(self, host: str) -> HostLimiter:
        limiter = self._hosts.get(host)
        if limiter is None:
            limiter = HostLimiter(host, self.limits_for(host), self.clock, self.sleep)
            self._hosts[host] = limiter
        return limiter

    @property
    def hosts(self) -> Mapping[str, HostLimiter]:
        """Every host used so far."""
        return self._hosts
