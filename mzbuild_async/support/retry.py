"""The one retry policy: exponential backoff with jitter, bounded, injectable.

Only :class:`Transient` failures are retried (5xx, 429, timeouts, connection
errors). A 404, a refused credential or a cancellation is never retried.
``sleep`` is injected so tests run without waiting.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import tenacity

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


class Transient(Exception):
    """A failure that may succeed if tried again; ``str()`` says what happened."""

    def __init__(self, message: str, *, wait: float | None = None) -> None:
        super().__init__(message)
        #: How long the server asked us to wait (Retry-After), if it did.
        self.wait = wait


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a transient failure."""

    attempts: int = 5
    #: Give up once this much time has passed since the first attempt.
    max_seconds: float = 60.0
    initial_wait: float = 0.2
    max_wait: float = 10.0
    jitter: float = 0.2

    def retrying(self, sleep: Sleep = anyio.sleep) -> tenacity.AsyncRetrying:
        """A tenacity controller for one operation under this policy."""
        backoff = tenacity.wait_exponential_jitter(
            multiplier=self.initial_wait, max=self.max_wait, jitter=self.jitter
        )

        def wait(state: tenacity.RetryCallState) -> float:
            # A server's own Retry-After wins over our backoff.
            outcome = state.outcome
            exc = outcome.exception() if outcome is not None else None
            if isinstance(exc, Transient) and exc.wait is not None:
                return exc.wait
            return float(backoff(state))

        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.attempts)
            | tenacity.stop_after_delay(self.max_seconds),
            wait=wait,
            retry=tenacity.retry_if_exception_type(Transient),
            sleep=sleep,
            reraise=True,
        )


DEFAULT_RETRY = RetryPolicy()


async def call_with_retries(
    policy: RetryPolicy, what: Callable[[], Awaitable[T]], sleep: Sleep = anyio.sleep
) -> T:
    """``await what()``, again after each :class:`Transient` failure, as ``policy`` allows.

    The last failure is raised as it is; anything else is never retried.
    """
    async for attempt in policy.retrying(sleep):
        with attempt:
            return await what()
    raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover
