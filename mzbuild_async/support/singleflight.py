"""Concurrent callers asking for the same key share one call.

The first caller (the leader) runs the function; the others wait for its
result or its exception. If the leader is cancelled, one waiter takes over.
No task is spawned: waiters only wait on an event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Call(Generic[V]):
    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: V | None = None
        self.error: BaseException | None = None
        self.abandoned = False


class SingleFlight(Generic[K, V]):
    """Deduplicates concurrent calls by key."""

    def __init__(self) -> None:
        self._calls: dict[K, _Call[V]] = {}
        #: How many callers got a shared result instead of calling (for tests, stats).
        self.shared = 0

    async def do(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        """Return ``fn()``, or the result of a call for ``key`` already under way."""
        while True:
            call = self._calls.get(key)
            if call is None:
                break
            await call.done.wait()
            if call.abandoned:
                continue
            self.shared += 1
            if call.error is not None:
                raise call.error
            return call.value  # type: ignore[return-value]
        call = _Call[V]()
        self._calls[key] = call
        try:
            call.value = await fn()
            return call.value
        except Exception as exc:
            call.error = exc
            raise
        except BaseException:
            call.abandoned = True
            raise
        finally:
            del self._calls[key]
            call.done.set()
