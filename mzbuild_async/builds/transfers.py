"""Images moving between the engines of a pool, through the registry.

An image one engine built and another needs goes up once (its push, or a
``send`` when it is not pushed anyway) and comes down once per engine that
needs it (a ``fetch``), each under its registry's transfer limit; concurrent
needs of one image on one engine share the one fetch. An image that was only
on an engine that was lost, and is being built again, is :class:`Rebuilt`.
"""

from __future__ import annotations

from functools import partial

import anyio

from ..errors import EngineError, MzbuildError, TransferError
from ..support.events import EventStatus, Phase
from .health import EngineHealth
from .state import Lose, RunState


class Rebuilt(TransferError):
    """A build's parent was lost with its engine and is being built again."""

    def __init__(self, image: str) -> None:
        super().__init__(f"{image} was lost with its engine and is being built again")
        self.image = image


class Copy:
    """An image on its way into the registry for other engines: pending, there, or failed."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.there = False
        self.error = ""
        self.sending = False

    def done(self, error: str = "") -> None:
        """It is there (or, with ``error``, it will not be)."""
        self.there = not error
        self.error = error
        self.event.set()


class Transfers:
    """The registry copies of one run's images and the fetches into engines; at most
    ``limit`` transfers at a time per registry."""

    def __init__(self, state: RunState, health: EngineHealth, lose: Lose, limit: int) -> None:
        self.state = state
        self.health = health
        self.lose = lose
        self.limit = limit
        self._copies: dict[str, Copy] = {}
        self._fetches: dict[tuple[str, str], anyio.Event] = {}
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    def copy(self, name: str) -> Copy:
        """The registry copy of ``name`` (made pending on first use)."""
        copy = self._copies.get(name)
        if copy is None:
            copy = self._copies[name] = Copy()
        return copy

    def fetchable(self, name: str) -> bool:
        """Whether ``name`` can be fetched from a registry now."""
        return self.copy(name).there

    def forget(self, name: str) -> None:
        """``name`` is being built again: those waiting on its old copy learn so."""
        copy = self._copies.pop(name, None)
        if copy is not None and not copy.event.is_set():
            copy.done("it is being built again")  # (a waiter finds it replaced: Rebuilt)

    def limiter(self, registry: str) -> anyio.CapacityLimiter:
        """The transfer limit of ``registry`` (pulls, pushes, sends and fetches)."""
        limiter = self._limiters.get(registry)
        if limiter is None:
            limiter = self._limiters[registry] = anyio.CapacityLimiter(self.limit)
        return limiter

    async def bring(self, image: str, engine: str, job: str) -> None:
        """Make ``image`` be on ``engine`` (through the registry), once per pair."""
        state = self.state
        key = (image, engine)
        while engine not in state.held[image]:
            pending = self._fetches.get(key)
            if pending is not None:
                await pending.wait()
                continue
            self._fetches[key] = done = anyio.Event()
            try:
                await self._in_registry(image)
                async with self.limiter(state.jobs[image].registry):
                    state.emit(job, Phase.TRANSFER, EventStatus.START, image, engine)
                    started = state.clock()
                    try:
                        moved = await self.health.on(
                            engine, partial(state.worker.fetch, image, engine)
                        )
                    except BaseException:
                        state.emit(job, Phase.TRANSFER, EventStatus.FAILED, image, engine)
                        raise
                    self.learn(engine, image, moved, started, fetched=True)
                    state.emit(job, Phase.TRANSFER, EventStatus.DONE, image, engine)
                state.held[image].add(engine)
                state.load[engine].transfers += 1
            finally:
                del self._fetches[key]
                done.set()

    async def _in_registry(self, image: str) -> None:
        """Wait until ``image`` can be fetched from the registry (sending it if need be)."""
        copy = self.copy(image)
        job = self.state.jobs[image]
        pushes_anyway = job.push and self.state.outcomes.get(image) is None
        if not copy.there and not copy.error and not pushes_anyway and not copy.sending:
            copy.sending = True
            assert self.state.tg is not None
            self.state.tg.start_soon(self._send, image)
        await copy.event.wait()
        if copy.error and self._copies.get(image) is not copy:
            raise Rebuilt(image)  # lost with its engine and being built again
        if copy.error:
            raise TransferError(f"{image} could not reach the registry: {copy.error}")

    async def _send(self, image: str) -> None:
        """Push ``image`` from an engine that has it to where the others fetch it."""
        state = self.state
        copy = self.copy(image)
        job = state.jobs[image]
        while not copy.event.is_set():
            holders = [e for e in state.live if e in state.held[image]]
            if not holders:
                copy.done(f"it was only on an engine that was lost ({state.lost_names()})")
                return
            engine = holders[0]
            async with self.limiter(job.registry):
                state.emit(image, Phase.SEND, EventStatus.START, engine=engine)
                started = state.clock()
                try:
                    moved = await self.health.on(engine, partial(state.worker.send, image, engine))
                except EngineError as exc:
                    state.emit(image, Phase.SEND, EventStatus.FAILED, str(exc), engine)
                    self.lose(engine, exc)
                    continue
                except MzbuildError as exc:
                    state.emit(image, Phase.SEND, EventStatus.FAILED, str(exc), engine)
                    copy.done(str(exc))
                    return
                state.emit(image, Phase.SEND, EventStatus.DONE, engine=engine)
                self.learn(engine, image, moved, started, fetched=False)
            copy.done()

    def learn(
        self, engine: str, image: str, moved: int | None, started: float, *, fetched: bool
    ) -> None:
        """A transfer of ``image`` over ``engine``'s link ended (a fetch into it, else a
        push or send out of it): what it teaches."""
        if moved:
            registry = self.state.jobs[image].registry
            seconds = self.state.clock() - started
            self.state.links.observe(engine, registry, image, moved, seconds, fetched=fetched)
