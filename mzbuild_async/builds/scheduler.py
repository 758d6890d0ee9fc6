"""The DAG executor: every build starts the moment its inputs are ready.

The scheduler is handed one :class:`Job` per image that needs work (pull,
build, and/or push) and a :class:`Worker` that does the work; it knows
nothing about Docker or cargo, so tests drive it with fakes. It runs:

- the one batched cargo build (if any job needs it) as soon as it starts;
- every pull at once, under a per-registry transfer limit;
- each build once the images it needs are local (pulled, built, or there
  already) and, for cargo images, once cargo has reported every artifact
  the image needs (its binaries land while cargo goes on); at most
  ``RunLimits.jobs`` builds at a time (per engine of a pool: its slots), the
  ready build with the longest remaining critical path first;
- each push right after its build, under the same per-registry limit.

Over a pool of engines (:class:`Slots`, the home engine first) the one
ready queue stays critical path first; each build goes to an engine of its
platform with a free slot, the one holding most of what it builds on
first (:func:`choose_engine`). An image it needs from another engine comes
through the registry (its push, or a ``send``, then a ``fetch``);
``publish: false`` images stay on their engine. An engine that goes away
is dropped and its builds run elsewhere, a bounded number of times: its
connection fails, it stops answering right after a build failed on it, or
(a frozen engine, whose connections stay open) it gives no answer to the
pings sent every ``heartbeat`` seconds while it has work in flight: its
work is then cancelled and re-queued within ``heartbeat + ping`` seconds
(15 s by default). Without a pool, that ends the run with one line.

A failure is a value: the failed image's dependents are skipped and
independent work goes on (or, with ``fail_fast``, everything stops).
Cancellation propagates: nothing is left running.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import TypeVar

import anyio
import anyio.abc

from ..errors import EngineError, MzbuildError, TransferError, single_error
from ..support.events import Event, EventStatus, Listener, Phase, ignore
from .jobs import (
    Action,
    EngineLoad,
    Job,
    OneEngine,
    Outcome,
    OutcomeKind,
    RunLimits,
    Slots,
    Worker,
    critical_paths,
)
from .placement import Placement, choose_engine, predict_placement

__all__ = [
    "Action",
    "EngineLoad",
    "Job",
    "OneEngine",
    "Outcome",
    "OutcomeKind",
    "RunLimits",
    "Scheduler",
    "Slots",
    "Worker",
    "choose_engine",
    "critical_paths",
    "predict_placement",
]

T = TypeVar("T")


#: Outcomes after which an image is not there for its dependents.
_GONE = (OutcomeKind.FAILED, OutcomeKind.SKIPPED)

#: Engines a build may be lost with before it is given up.
DEFAULT_ATTEMPTS = 3

#: The name of the one engine of a run without a pool.
LOCAL_ENGINE = "local"

#: Seconds to wait for a ping (an engine with work in flight, or one a build just
#: failed on) before the engine counts as gone.
PING_SECONDS = 10.0

#: Seconds between the pings of an engine with work in flight.
HEARTBEAT_SECONDS = 5.0

#: How long an engine whose build failed is watched before the failure counts as
#: the build's own: a ``dockerd`` that is shutting down still answers for a
#: moment while it kills the builds it runs.
WATCH_SECONDS = 6.0


class _Rebuilt(TransferError):
    """A build's parent was lost with its engine and is being built again."""

    def __init__(self, image: str) -> None:
        super().__init__(f"{image} was lost with its engine and is being built again")
        self.image = image


class _Copy:
    """An image on its way into the registry for other engines: pending, there, or failed."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.there = False
        self.error = ""
        self.sending = False

    def done(self, error: str = "") -> None:
        self.there = not error
        self.error = error
        self.event.set()


class Scheduler:
    """Runs one set of jobs to completion (see the module docstring)."""

    def __init__(
        self,
        jobs: Iterable[Job],
        worker: Worker,
        limits: RunLimits | None = None,
        *,
        engines: Sequence[Slots] | None = None,
        attempts: int = DEFAULT_ATTEMPTS,
        watch: float = WATCH_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
        ping: float = PING_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
        listener: Listener = ignore,
        open_ended: bool = False,
    ) -> None:
        """``engines``: the pool, home engine first (default: one engine with
        ``limits.jobs`` slots); ``attempts``: engines a build may be lost with;
        ``watch``: seconds an engine is watched after a build failed on it;
        ``heartbeat``/``ping``: an engine with work in flight is pinged every
        ``heartbeat`` seconds and lost when a ping gets no answer in ``ping``.
        ``open_ended``: more jobs come with :meth:`add` while it runs, until
        :meth:`close`."""
        self.jobs: dict[str, Job] = {}
        self.worker = worker
        self.limits = limits or RunLimits()
        self.engines = list(engines) if engines else [Slots(LOCAL_ENGINE, self.limits.jobs)]
        if len({e.name for e in self.engines}) != len(self.engines):
            raise ValueError("engine names must be unique")
        self.home = self.engines[0].name
        self.attempts = attempts
        self.clock = clock
        self.listener = listener
        self.load = {e.name: EngineLoad() for e in self.engines}
        self._live = [e.name for e in self.engines]
        self._slots = {e.name: e for e in self.engines}
        self._free = {e.name: e.slots for e in self.engines}
        self._held: dict[str, set[str]] = {}
        self._copies: dict[str, _Copy] = {}
        self._fetches: dict[tuple[str, str], anyio.Event] = {}
        self._tries: dict[str, int] = {}
        self._queued: set[str] = set()
        self._watches: dict[str, anyio.Event] = {}
        self.watch_seconds = watch
        self.heartbeat = heartbeat
        self.ping_seconds = ping
        #: Per engine: the cancel scopes of its work in flight, and whether a
        #: task pings it.
        self._inflight: dict[str, set[anyio.CancelScope]] = {}
        self._pinging: set[str] = set()
        self._idle: dict[str, anyio.Event] = {}
        self._where: dict[str, str] = {}
        #: Where builds may go and go (``publish: false`` groups pinned there).
        self.placement = Placement(
            self.jobs, self._slots, self._live, self._held, self._fetchable, self.home
        )
        self._dependents: dict[str, list[str]] = {}
        self._waiting: dict[str, int] = {}
        self.priority: dict[str, float] = {}
        #: Cargo images whose artifacts have landed, and when.
        self._landed: dict[str, float] = {}
        self._ready: list[tuple[float, int, str]] = []
        self._sequence = 0
        self._outcomes: dict[str, Outcome] = {}
        self._started: dict[str, float] = {}
        self._available_now: set[str] = set()
        self._limiters: dict[str, anyio.CapacityLimiter] = {}
        self._origin = 0.0
        self._tg: anyio.abc.TaskGroup | None = None
        self._closed = anyio.Event()
        self._stopped = False
        self._pending: list[Job] = self._register(list(jobs))
        if not open_ended:
            self._closed.set()

    @property
    def pooled(self) -> bool:
        """Whether work is spread over more than one engine."""
        return len(self.engines) > 1

    @property
    def running_builds(self) -> int:
        """Builds in progress right now."""
        return sum(load.running for load in self.load.values())

    def add(self, jobs: Iterable[Job]) -> None:
        """More jobs (open-ended runs). A job's ``after`` must name jobs already added
        or added with it."""
        if self._closed.is_set():
            raise RuntimeError("add() after close()")
        new = self._register(list(jobs))
        if self._stopped:  # --fail-fast stopped the run: nothing more starts
            self.outcomes()
        elif self._tg is not None:
            self._start(new)
        else:
            self._pending += new

    def close(self) -> None:
        """No more jobs: the batched cargo build can start, and the run can end."""
        self._closed.set()

    def _register(self, jobs: list[Job]) -> list[Job]:
        known = {**self.jobs, **{job.name: job for job in jobs}}
        seen: set[str] = set()
        for job in jobs:  # checked before anything changes
            if job.name in self.jobs or job.name in seen:
                raise ValueError(f"{job.name} was added twice")
            seen.add(job.name)
            for dep in job.after:
                if dep not in known or known[dep].action is Action.NONE:
                    raise ValueError(f"{job.name} waits for {dep}, which has no pull or build")
            for dep in job.needs:
                if dep not in known:
                    raise ValueError(f"{job.name} needs {dep}, which is not in the run")
        for job in jobs:
            self.jobs[job.name] = job
            self._dependents[job.name] = []
            self._held[job.name] = {self.home} if job.local else set()
            if job.published:
                self._copy(job.name).done()
        for job in jobs:
            for dep in job.after:
                self._dependents[dep].append(job.name)
            self._waiting[job.name] = sum(d not in self._available_now for d in job.after)
            self.placement.join([n for n in (job.name, *job.needs) if not known[n].portable])
        self.priority = critical_paths(self.jobs)
        return jobs

    async def run(self) -> dict[str, Outcome]:
        """Run every job (until :meth:`close`, if open-ended); outcomes in the jobs' order."""
        self._origin = self.clock()
        # An engine that went away stops the whole run with its one clear error
        # (in a pool: the last engine).
        try:
            with single_error():
                await self._run_all()
        finally:
            self._stopped = True
        return self.outcomes()

    def outcomes(self) -> dict[str, Outcome]:
        """Every job's outcome, in the jobs' order (after the run: what never started
        was skipped, since the run stopped early)."""
        for name in self.jobs:
            if name not in self._outcomes:
                self._finish(
                    name, OutcomeKind.SKIPPED, error="not started: the run stopped (--fail-fast)"
                )
        return {name: self._outcomes[name] for name in self.jobs}

    async def _run_all(self) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._cargo_when_closed)
            pending, self._pending = self._pending, []
            self._start(pending)

    def _start(self, jobs: list[Job]) -> None:
        """Start what the new jobs can start now (pulls, local pushes, ready builds)."""
        assert self._tg is not None
        for job in sorted(jobs, key=lambda j: -self.priority[j.name]):
            name = job.name
            failed = [
                d
                for d in job.after
                if d not in self._available_now
                and d in self._outcomes
                and self._outcomes[d].action in _GONE
            ]
            if failed:
                why = f"dependency {failed[0]} failed"
                self._finish(name, OutcomeKind.SKIPPED, error=why)
                self._emit(name, Phase.BUILD, EventStatus.SKIPPED, why)
            elif job.action is Action.PULL and self.pooled and not job.home:
                # In a pool, each engine that builds on it fetches it (the
                # registry has it); nothing goes to the home engine for it.
                self._finish(
                    name, OutcomeKind.PULLED, note="fetched by the engines that build on it"
                )
                self._available(name)
            elif job.action is Action.PULL:
                self._tg.start_soon(self._pull, job)
            elif job.action is Action.NONE:
                if job.push:
                    self._tg.start_soon(self._push_local, job)
                else:
                    self._finish(name, OutcomeKind.NONE)
            elif self._waiting[name] == 0 and self._cargo_ready(job):
                self._enqueue(name)
        self._dispatch()

    async def _cargo_when_closed(self) -> None:
        """The one batched cargo build, once every job is known."""
        await self._closed.wait()
        cargo = [n for n, j in self.jobs.items() if j.cargo and j.action is Action.BUILD]
        if cargo:
            await self._cargo(cargo)

    def _cargo_ready(self, job: Job) -> bool:
        """Whether cargo has built what ``job`` needs (always, for other images)."""
        return not job.cargo or job.name in self._landed

    # -- bookkeeping -----------------------------------------------------

    def _emit(
        self,
        image: str | None,
        phase: Phase,
        status: EventStatus,
        detail: str = "",
        engine: str = "",
    ) -> None:
        self.listener(Event(self.clock() - self._origin, image, phase, status, detail, engine))

    def _finish(
        self,
        name: str,
        action: OutcomeKind,
        *,
        pushed: bool = False,
        error: str = "",
        note: str = "",
    ) -> None:
        started = self._started.get(name)
        seconds = 0.0 if started is None else self.clock() - started
        engine = self._where.get(name, "")
        landed = self._landed.get(name)
        self._outcomes[name] = Outcome(name, action, pushed, seconds, error, note, engine, landed)

    def _enqueue(self, name: str) -> None:
        if name in self._queued:
            return  # (released twice: by _start and by a dependency made available)
        self._queued.add(name)
        self._sequence += 1
        heapq.heappush(self._ready, (-self.priority[name], self._sequence, name))

    def _copy(self, name: str) -> _Copy:
        copy = self._copies.get(name)
        if copy is None:
            copy = self._copies[name] = _Copy()
        return copy

    def _fetchable(self, name: str) -> bool:
        """Whether ``name`` can be fetched from a registry now."""
        return self._copy(name).there

    def _dispatch(self) -> None:
        assert self._tg is not None
        deferred: list[tuple[float, int, str]] = []
        while self._ready and any(self._free[e] > 0 for e in self._open_engines()):
            item = heapq.heappop(self._ready)
            name = item[2]
            if name in self._outcomes:
                continue
            if self._waiting[name] > 0:  # a parent is being built again: released with it
                self._queued.discard(name)
                continue
            job = self.jobs[name]
            usable = self.placement.usable(job)
            if not usable:
                self._fail(name, self.placement.why_not(job))
                continue
            free = [e for e in usable if self._free[e] > 0 and e not in self._watches]
            if not free:
                deferred.append(item)
                continue
            engine = self.placement.choose(job, free, self._free)
            self._free[engine] -= 1
            self.load[engine].running += 1
            self._tg.start_soon(self._build, job, engine)
        for item in deferred:
            heapq.heappush(self._ready, item)

    def _open_engines(self) -> list[str]:
        """Live engines taking builds (not being watched after a failure)."""
        return [e for e in self._live if e not in self._watches]

    def _limiter(self, registry: str) -> anyio.CapacityLimiter:
        limiter = self._limiters.get(registry)
        if limiter is None:
            limiter = self._limiters[registry] = anyio.CapacityLimiter(self.limits.transfers)
        return limiter

    def _available(self, name: str) -> None:
        """``name`` is there for its dependents: release the builds waiting for it."""
        if name in self._available_now:
            return  # (rebuilt after its engine was lost)
        self._available_now.add(name)
        for dependent in self._dependents[name]:
            self._waiting[dependent] -= 1
            if dependent in self._outcomes:
                continue  # skipped: another of its dependencies failed
            if self._waiting[dependent] == 0 and self._cargo_ready(self.jobs[dependent]):
                self._enqueue(dependent)
        self._dispatch()

    def _fail(
        self,
        name: str,
        error: str,
        *,
        action: OutcomeKind = OutcomeKind.FAILED,
        phase: Phase | None = None,
    ) -> None:
        self._finish(name, action, error=error)
        self._emit(name, phase or Phase.BUILD, EventStatus.FAILED, error, self._where.get(name, ""))
        if self.limits.fail_fast and self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._skip_dependents(name, f"dependency {name} failed")

    def _skip_dependents(self, name: str, why: str) -> None:
        stack = list(self._dependents[name])
        while stack:
            dependent = stack.pop()
            if dependent in self._outcomes:
                continue
            self._finish(dependent, OutcomeKind.SKIPPED, error=why)
            self._emit(dependent, Phase.BUILD, EventStatus.SKIPPED, why)
            stack.extend(self._dependents[dependent])

    # -- engines that go away ------------------------------------------------

    def _lose(self, engine: str, error: EngineError) -> None:
        """Drop ``engine`` from the run; raise when it was the last one."""
        if not self.pooled:
            raise error
        if engine not in self._live:
            return
        self._live.remove(engine)
        self.load[engine].lost = str(error)
        for holders in self._held.values():
            holders.discard(engine)
        self._emit(None, Phase.ENGINE, EventStatus.LOST, str(error), engine)
        if not self._live:
            raise EngineError(f"every engine of the pool was lost; the last: {error}")
        if engine == self.home:  # what must end in the home engine goes to the next one
            self.home = self.placement.home = self._live[0]
            self._emit(
                None,
                Phase.ENGINE,
                EventStatus.HOME,
                f"{engine} lost; {self.home} is home now",
                engine,
            )
        self._rebuild_lost(engine)

    def _rebuild_lost(self, engine: str) -> None:
        """Build again what this run built and lost with ``engine``: images on no live
        engine and not in the registry (``publish: false`` ones, or ones not sent yet)
        that something still to come needs. Cheaper than failing what needs them."""
        lost = [
            name
            for name, job in self.jobs.items()
            if job.action is Action.BUILD
            and name in self._available_now
            and not self._held[name]
            and not self._copy(name).there
            and any(d not in self._outcomes for d in self._dependents[name])
            and self._tries.get(name, 0) + 1 < self.attempts
        ]
        for name in lost:
            self._tries[name] = self._tries.get(name, 0) + 1
            self._available_now.discard(name)
            self._outcomes.pop(name, None)
            self._copies.pop(name, None)  # (waiters on the old one learn it is rebuilt)
            self._where.pop(name, None)
        for name in lost:
            for dependent in self._dependents[name]:
                if dependent not in self._outcomes:
                    self._waiting[dependent] += 1
        for name in lost:
            self._waiting[name] = sum(d not in self._available_now for d in self.jobs[name].after)
            self._emit(
                name, Phase.BUILD, EventStatus.REQUEUED, f"it was only on engine {engine}, now lost"
            )
            self._queued.discard(name)
            if self._waiting[name] == 0:
                self._enqueue(name)
        if lost:
            self._dispatch()

    async def _gone(self, engine: str, why: str) -> bool:
        """Whether ``engine``, where a build just failed, is going away (pools only).

        While it is watched it takes no new builds; builds failing on it at the
        same time share the one watch.
        """
        watch = self._watches.get(engine)
        if watch is None:
            watch = self._watches[engine] = anyio.Event()
            deadline = anyio.current_time() + self.watch_seconds
            try:
                while engine in self._live:
                    if not await self._answers(engine):
                        self._lose(engine, EngineError(f"engine {engine} stopped answering: {why}"))
                        break
                    if anyio.current_time() >= deadline:
                        break
                    await anyio.sleep(min(0.5, self.watch_seconds))
            finally:
                del self._watches[engine]
                watch.set()
                self._dispatch()
            return engine not in self._live
        await watch.wait()
        return engine not in self._live

    async def _answers(self, engine: str) -> bool:
        """Whether ``engine`` still answers a ping."""
        with anyio.move_on_after(self.ping_seconds):
            try:
                return await self.worker.alive(engine)
            except MzbuildError:
                return False
        return False

    async def _on(self, engine: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()`` against ``engine``, watched: if the engine stops answering pings
        meanwhile, the work is cancelled and :class:`EngineError` raised."""
        with anyio.CancelScope() as scope:
            scopes = self._inflight.setdefault(engine, set())
            scopes.add(scope)
            if engine not in self._pinging and self._tg is not None:
                self._pinging.add(engine)
                self._tg.start_soon(self._heartbeat, engine)
            try:
                return await work()
            finally:
                scopes.discard(scope)
                if not scopes and engine in self._idle:
                    self._idle[engine].set()
        raise EngineError(self.load[engine].lost or f"engine {engine} stopped answering")

    async def _heartbeat(self, engine: str) -> None:
        """Ping ``engine`` while it has work in flight; lose it when it stops answering."""
        try:
            while self._inflight.get(engine) and engine in self._live:
                idle = self._idle[engine] = anyio.Event()
                with anyio.move_on_after(self.heartbeat):
                    await idle.wait()
                if not self._inflight.get(engine) or engine not in self._live:
                    return
                if not await self._answers(engine):
                    who = f"engine {engine}" if self.pooled else "the Docker engine"
                    error = EngineError(
                        f"{who} gave no answer to a ping in {self.ping_seconds:g} s"
                        " (frozen?); its work was stopped"
                    )
                    for scope in self._inflight.get(engine, ()):
                        scope.cancel()
                    self._lose(engine, error)
                    return
        finally:
            self._pinging.discard(engine)
            self._idle.pop(engine, None)

    def _requeue(self, job: Job, engine: str, phase: Phase, why: str) -> None:
        """``job``'s build went with a lost engine: run it elsewhere, a bounded number of times."""
        name = job.name
        self._tries[name] = tries = self._tries.get(name, 0) + 1
        self._where.pop(name, None)
        if tries >= self.attempts:
            self._fail(name, f"{why} (its engine was lost {tries} times; gave up)", phase=phase)
            return
        self._emit(name, phase, EventStatus.REQUEUED, f"engine {engine} lost: {why}", engine)
        self._queued.discard(name)
        self._enqueue(name)
        self._dispatch()

    # -- the work ----------------------------------------------------------

    async def _cargo(self, names: list[str]) -> None:
        self._emit(None, Phase.CARGO, EventStatus.START, ", ".join(names))
        try:
            await self.worker.cargo(names, self._artifacts_landed)
        except EngineError:
            raise
        except MzbuildError as exc:
            # Images whose artifacts landed go on; the others never get them.
            self._emit(None, Phase.CARGO, EventStatus.FAILED, str(exc))
            for name in names:
                if name not in self._outcomes and name not in self._landed:
                    self._fail(name, str(exc), phase=Phase.CARGO)
            return
        self._emit(None, Phase.CARGO, EventStatus.DONE)
        for name in names:  # (one not reported: its build says what is missing)
            self._artifacts_landed(name)

    def _artifacts_landed(self, name: str) -> None:
        """Cargo has built what ``name`` needs: its build may start (once)."""
        if name in self._landed or name not in self.jobs:
            return
        self._landed[name] = self.clock() - self._origin
        self._emit(None, Phase.CARGO, EventStatus.LANDED, name)
        if self._waiting[name] == 0 and name not in self._outcomes:
            self._enqueue(name)
        self._dispatch()

    async def _pull(self, job: Job) -> None:
        engine = self.home
        async with self._limiter(job.registry):
            self._started[job.name] = self.clock()
            self._where[job.name] = engine
            self._emit(job.name, Phase.PULL, EventStatus.START, engine=engine)
            try:
                await self._on(engine, partial(self.worker.pull, job.name, engine))
            except EngineError as exc:
                self._lose(engine, exc)
                self._fail(job.name, f"the home engine {engine} was lost: {exc}", phase=Phase.PULL)
                return
            except MzbuildError as exc:
                self._fail(job.name, str(exc), phase=Phase.PULL)
                return
        self._held[job.name].add(engine)
        self._emit(job.name, Phase.PULL, EventStatus.DONE, engine=engine)
        self._finish(job.name, OutcomeKind.PULLED)
        self._available(job.name)

    async def _build(self, job: Job, engine: str) -> None:
        name = job.name
        start = self.clock()
        self._started.setdefault(name, start)
        self._where[name] = engine
        self._emit(name, Phase.BUILD, EventStatus.START, engine=engine)
        try:
            try:
                for need in sorted({*job.needs, *job.after}):
                    await self._bring(need, engine, name)
                elsewhere = await self._on(engine, partial(self.worker.build, name, engine))
            finally:
                self._free[engine] += 1
                self.load[engine].running -= 1
                self.load[engine].busy_seconds += self.clock() - start
        except EngineError as exc:
            self._lose(engine, exc)
            self._requeue(job, engine, Phase.BUILD, str(exc))
            return
        except _Rebuilt as rebuilt:
            # Released again once the parent is there (its wait was counted up).
            self._queued.discard(name)
            self._emit(
                name,
                Phase.BUILD,
                EventStatus.REQUEUED,
                f"{rebuilt.image} is being built again",
                engine,
            )
            self._dispatch()
            return
        except MzbuildError as exc:
            if self.pooled and await self._gone(engine, str(exc)):
                self._requeue(job, engine, Phase.BUILD, str(exc))
                return
            self._fail(name, str(exc))
            self._dispatch()
            return
        if not elsewhere:
            self.load[engine].builds += 1
        self._held[name].add(engine)
        self._emit(name, Phase.BUILD, EventStatus.DONE, elsewhere or "", engine)
        action = OutcomeKind.BUILT_ELSEWHERE if elsewhere else OutcomeKind.BUILT
        home = job.home and engine != self.home
        if not job.push and not home:
            self._finish(name, action, note=elsewhere or "")
        self._available(name)
        if job.push:
            pushed = await self._push(job, action, engine, finish=not home)
            if pushed is not None and home:
                await self._come_home(job, action, pushed, pushed=not pushed)
        elif home:
            await self._come_home(job, action, elsewhere or "")

    async def _come_home(
        self, job: Job, action: OutcomeKind, note: str, *, pushed: bool = False
    ) -> None:
        """Bring a target built on another engine into the home engine."""
        try:
            await self._bring(job.name, self.home, job.name)
        except _Rebuilt:
            return  # (its new build comes home in its turn)
        except EngineError as exc:
            self._lose(self.home, exc)
            self._fail(job.name, f"the home engine {self.home} was lost: {exc}")
            return
        except MzbuildError as exc:
            self._fail(job.name, f"built, but could not reach the home engine: {exc}")
            return
        self._finish(job.name, action, pushed=pushed, note=note)

    async def _bring(self, image: str, engine: str, job: str) -> None:
        """Make ``image`` be on ``engine`` (through the registry), once per pair."""
        key = (image, engine)
        while engine not in self._held[image]:
            pending = self._fetches.get(key)
            if pending is not None:
                await pending.wait()
                continue
            self._fetches[key] = done = anyio.Event()
            try:
                await self._in_registry(image)
                async with self._limiter(self.jobs[image].registry):
                    self._emit(job, Phase.TRANSFER, EventStatus.START, image, engine)
                    try:
                        await self._on(engine, partial(self.worker.fetch, image, engine))
                    except BaseException:
                        self._emit(job, Phase.TRANSFER, EventStatus.FAILED, image, engine)
                        raise
                    self._emit(job, Phase.TRANSFER, EventStatus.DONE, image, engine)
                self._held[image].add(engine)
                self.load[engine].transfers += 1
            finally:
                del self._fetches[key]
                done.set()

    async def _in_registry(self, image: str) -> None:
        """Wait until ``image`` can be fetched from the registry (sending it if need be)."""
        copy = self._copy(image)
        job = self.jobs[image]
        pushes_anyway = job.push and self._outcomes.get(image) is None
        if not copy.there and not copy.error and not pushes_anyway and not copy.sending:
            copy.sending = True
            assert self._tg is not None
            self._tg.start_soon(self._send, image)
        await copy.event.wait()
        if copy.error and self._copies.get(image) is not copy:
            raise _Rebuilt(image)  # lost with its engine and being built again
        if copy.error:
            raise TransferError(f"{image} could not reach the registry: {copy.error}")

    async def _send(self, image: str) -> None:
        """Push ``image`` from an engine that has it to where the others fetch it."""
        copy = self._copy(image)
        job = self.jobs[image]
        while not copy.event.is_set():
            holders = [e for e in self._live if e in self._held[image]]
            if not holders:
                copy.done(f"it was only on an engine that was lost ({self._lost_names()})")
                return
            engine = holders[0]
            async with self._limiter(job.registry):
                self._emit(image, Phase.SEND, EventStatus.START, engine=engine)
                try:
                    await self._on(engine, partial(self.worker.send, image, engine))
                except EngineError as exc:
                    self._emit(image, Phase.SEND, EventStatus.FAILED, str(exc), engine)
                    self._lose(engine, exc)
                    continue
                except MzbuildError as exc:
                    self._emit(image, Phase.SEND, EventStatus.FAILED, str(exc), engine)
                    copy.done(str(exc))
                    return
                self._emit(image, Phase.SEND, EventStatus.DONE, engine=engine)
            copy.done()

    def _lost_names(self) -> str:
        return ", ".join(name for name, load in self.load.items() if load.lost)

    async def _push_local(self, job: Job) -> None:
        self._started[job.name] = self.clock()
        self._where[job.name] = self.home
        await self._push(job, OutcomeKind.NONE, self.home)

    async def _push(
        self, job: Job, action: OutcomeKind, engine: str, *, finish: bool = True
    ) -> str | None:
        """Push ``job``'s image from ``engine``; its note ("" when pushed), None when
        it failed. ``finish``: record the outcome (else the caller does)."""
        async with self._limiter(job.registry):
            self._emit(job.name, Phase.PUSH, EventStatus.START, engine=engine)
            try:
                note = await self._on(engine, partial(self.worker.push, job.name, engine))
            except EngineError as exc:
                self._lose(engine, exc)
                if job.action is Action.BUILD:
                    self._requeue(job, engine, Phase.PUSH, str(exc))
                else:
                    self._fail(job.name, f"its engine {engine} was lost: {exc}", phase=Phase.PUSH)
                return None
            except MzbuildError as exc:
                self._finish(job.name, OutcomeKind.FAILED, error=f"push failed: {exc}")
                self._emit(job.name, Phase.PUSH, EventStatus.FAILED, str(exc), engine)
                self._copy(job.name).done(str(exc))
                if self.limits.fail_fast and self._tg is not None:
                    self._tg.cancel_scope.cancel()
                return None
        self._emit(job.name, Phase.PUSH, EventStatus.DONE, note, engine)
        self._copy(job.name).done()
        if finish:
            self._finish(job.name, action, pushed=not note, note=note)
        return note
