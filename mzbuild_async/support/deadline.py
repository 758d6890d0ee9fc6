"""One deadline per lookup, across every phase and attempt of it.

A lookup passes through token prefetch, ``HEAD``, ``GET``, retries and
rate-limit pauses; each used to get the whole deadline again. The deadline
is now an absolute time in a context variable, set where the lookup starts
and inherited by every task it starts: inner phases take what is left,
never more, and a pause longer than what is left ends the lookup at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

import anyio

#: When (on anyio's clock) the current lookup must have its answer; None: no deadline.
DEADLINE_AT: ContextVar[float | None] = ContextVar("mzbuild_async_deadline_at", default=None)


def time_left() -> float | None:
    """Seconds left before the current deadline (None when there is none)."""
    at = DEADLINE_AT.get()
    return None if at is None else at - anyio.current_time()


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Set the deadline ``seconds`` from now, or keep an earlier one already set.

    Sets no cancel scope: callers bound their own waits with :func:`within`.
    """
    at = anyio.current_time() + seconds
    outer = DEADLINE_AT.get()
    token = DEADLINE_AT.set(at if outer is None else min(outer, at))
    try:
        yield
    finally:
        DEADLINE_AT.reset(token)


@contextlib.contextmanager
def within(seconds: float) -> Iterator[anyio.CancelScope]:
    """A cancel scope that ends at :func:`deadline` ``(seconds)``: what is left of it.

    ``scope.cancelled_caught`` tells the caller the deadline passed.
    """
    with deadline(seconds):
        at = DEADLINE_AT.get()
        assert at is not None
        with anyio.CancelScope(deadline=at) as scope:
            yield scope


class BeyondDeadline(Exception):
    """Waiting as long as asked would pass the deadline (``seconds``: what was asked)."""

    def __init__(self, seconds: float, left: float) -> None:
        super().__init__(f"asked to wait {seconds:g} s with {max(0.0, left):.1f} s left")
        self.seconds = seconds
        self.left = left
