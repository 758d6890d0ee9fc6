"""A clock that moves only when told (or when something sleeps on it)."""

from __future__ import annotations

import anyio.lowlevel


class FakeClock:
    """Call it for the time; :meth:`advance` moves it; :meth:`sleep` (an async
    ``sleep`` to hand to what takes one) records the wait and moves it that far."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        #: Every wait asked of :meth:`sleep`, in order.
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the time on by ``seconds``."""
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Record the wait, move the time by it, and let other tasks run once."""
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()
