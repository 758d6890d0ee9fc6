"""Whether each engine of a run is still there: pings while it has work in flight,
a watch after a build failed on it.

An engine that goes away is noticed three ways: its connection fails (the
worker raises :class:`~mzbuild_async.errors.EngineError`), it stops answering
right after a build failed on it (:meth:`EngineHealth.gone` watches it for
``watch`` seconds, during which it takes no new builds), or, frozen with its
connections open, it gives no answer to the pings sent every ``heartbeat``
seconds while it has work in flight (:meth:`EngineHealth.on`): that work is
cancelled and the engine lost within ``heartbeat + ping`` seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

from ..errors import EngineError, MzbuildError
from .state import Lose, RunState

T = TypeVar("T")

#: Seconds to wait for a ping (an engine with work in flight, or one a build just
#: failed on) before the engine counts as gone.
PING_SECONDS = 10.0

#: Seconds between the pings of an engine with work in flight.
HEARTBEAT_SECONDS = 5.0

#: How long an engine whose build failed is watched before the failure counts as
#: the build's own: a ``dockerd`` that is shutting down still answers for a
#: moment while it kills the builds it runs.
WATCH_SECONDS = 6.0


class EngineHealth:
    """Watches the engines of one run; ``lose`` drops one, ``dispatch`` hands out the
    builds an engine no longer watched may take."""

    def __init__(
        self,
        state: RunState,
        lose: Lose,
        dispatch: Callable[[], None],
        *,
        watch: float = WATCH_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        ping: float = PING_SECONDS,
    ) -> None:
        self.state = state
        self.lose = lose
        self.dispatch = dispatch
        self.watch_seconds = watch
        self.heartbeat = heartbeat
        self.ping_seconds = ping
        self._watches: dict[str, anyio.Event] = {}
        #: Per engine: the cancel scopes of its work in flight, and whether a
        #: task pings it.
        self._inflight: dict[str, set[anyio.CancelScope]] = {}
        self._pinging: set[str] = set()
        self._idle: dict[str, anyio.Event] = {}

    def watched(self, engine: str) -> bool:
        """Whether ``engine`` is being watched after a failure (it takes no builds)."""
        return engine in self._watches

    async def gone(self, engine: str, why: str) -> bool:
        """Whether ``engine``, where a build just failed, is going away (pools only).

        While it is watched it takes no new builds; builds failing on it at the
        same time share the one watch.
        """
        live = self.state.live
        watch = self._watches.get(engine)
        if watch is None:
            watch = self._watches[engine] = anyio.Event()
            deadline = anyio.current_time() + self.watch_seconds
            try:
                while engine in live:
                    if not await self.answers(engine):
                        self.lose(engine, EngineError(f"engine {engine} stopped answering: {why}"))
                        break
                    if anyio.current_time() >= deadline:
                        break
                    await anyio.sleep(min(0.5, self.watch_seconds))
            finally:
                del self._watches[engine]
                watch.set()
                self.dispatch()
            return engine not in live
        await watch.wait()
        return engine not in live

    async def answers(self, engine: str) -> bool:
        """Whether ``engine`` still answers a ping."""
        with anyio.move_on_after(self.ping_seconds):
            try:
                return await self.state.worker.alive(engine)
            except MzbuildError:
                return False
        return False

    async def on(self, engine: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` against ``engine``, watched: if the engine stops answering pings
        meanwhile, the work is cancelled and :class:`EngineError` raised."""
        with anyio.CancelScope() as scope:
            scopes = self._inflight.setdefault(engine, set())
            scopes.add(scope)
            if engine not in self._pinging and self.state.tg is not None:
                self._pinging.add(engine)
                self.state.tg.start_soon(self._heartbeat, engine)
            try:
                return await work()
            finally:
                scopes.discard(scope)
                if not scopes and engine in self._idle:
                    self._idle[engine].set()
        raise EngineError(self.state.load[engine].lost or f"engine {engine} stopped answering")

    async def _heartbeat(self, engine: str) -> None:
        """Ping ``engine`` while it has work in flight; lose it when it stops answering."""
        live = self.state.live
        try:
            while self._inflight.get(engine) and engine in live:
                idle = self._idle[engine] = anyio.Event()
                with anyio.move_on_after(self.heartbeat):
                    await idle.wait()
                if not self._inflight.get(engine) or engine not in live:
                    return
                if not await self.answers(engine):
                    who = f"engine {engine}" if self.state.pooled else "the Docker engine"
                    error = EngineError(
                        f"{who} gave no answer to a ping in {self.ping_seconds:g} s"
                        " (frozen?); its work was stopped"
                    )
                    for scope in self._inflight.get(engine, ()):
                        scope.cancel()
                    self.lose(engine, error)
                    return
        finally:
            self._pinging.discard(engine)
            self._idle.pop(engine, None)
