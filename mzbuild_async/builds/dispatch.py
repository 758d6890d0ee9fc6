"""The scheduler's bookkeeping: jobs registered, builds released to engines as they
become ready, outcomes and events, failures and their dependents, engines lost.

:class:`Dispatcher` is the half of :class:`~.scheduler.Scheduler` that decides
and records; the scheduler does the work (cargo, pulls, builds, pushes) and
reports back through it. It shares a :class:`~.state.RunState` with the
transfers and the engines' health.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import anyio
import anyio.abc

from ..errors import EngineError, MzbuildError, TransferError
from ..support import logs
from ..support.events import Event, EventStatus, Listener, Phase, ignore
from .health import HEARTBEAT_SECONDS, PING_SECONDS, WATCH_SECONDS, EngineHealth
from .jobs import Action, EngineLoad, Job, Outcome, OutcomeKind, RunLimits, Slots, Worker
from .links import Links
from .placement import Placement
from .ready import ReadyQueue
from .state import RunState
from .transfers import Transfers

#: Outcomes after which an image is not there for its dependents.
GONE = (OutcomeKind.FAILED, OutcomeKind.SKIPPED)

#: Engines a build may be lost with before it is given up.
DEFAULT_ATTEMPTS = 3

#: The name of the one engine of a run without a pool.
LOCAL_ENGINE = "local"


def _left(estimate: float, elapsed: float) -> float:
    """Expected seconds left of a build ``elapsed`` seconds in (as long again, past its
    ``estimate``)."""
    return estimate - elapsed if elapsed < estimate else elapsed


class Dispatcher:
    """Decides and records a run's jobs (see the module docstring); the work it
    starts is :class:`~.scheduler.Scheduler`'s."""

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
        links: Links | None = None,
    ) -> None:
        """``engines``: the pool, home engine first (default: one engine with
        ``limits.jobs`` slots); ``attempts``: engines a build may be lost with;
        ``watch``: seconds an engine is watched after a build failed on it;
        ``heartbeat``/``ping``: an engine with work in flight is pinged every
        ``heartbeat`` seconds and lost when a ping gets no answer in ``ping``.
        ``open_ended``: more jobs come with :meth:`add` while it runs, until
        :meth:`close`. ``links``: link rates and image bytes known before the run
        (it learns more from its transfers)."""
        self.worker = worker
        self.limits = limits or RunLimits()
        self.engines = list(engines) if engines else [Slots(LOCAL_ENGINE, self.limits.jobs)]
        if len({e.name for e in self.engines}) != len(self.engines):
            raise ValueError("engine names must be unique")
        self.home = self.engines[0].name
        self.attempts = attempts
        self.clock = clock
        self.listener = listener
        #: What the transfers and the engines' health share with the scheduler.
        self.state = RunState(
            worker,
            self._emit,
            load={e.name: EngineLoad() for e in self.engines},
            live=[e.name for e in self.engines],
            links=links or Links(),
            clock=clock,
        )
        self.jobs = self.state.jobs
        self.load = self.state.load
        self._live = self.state.live
        self._held = self.state.held
        self._outcomes = self.state.outcomes
        self.health = EngineHealth(
            self.state, self._lose, self._dispatch, watch=watch, heartbeat=heartbeat, ping=ping
        )
        self.transfers = Transfers(self.state, self.health, self._lose, self.limits.transfers)
        self._slots = {e.name: e for e in self.engines}
        self._free = {e.name: e.slots for e in self.engines}
        self._tries: dict[str, int] = {}
        self._where: dict[str, str] = {}
        #: Where builds may go and go (``publish: false`` groups pinned there).
        self.placement = Placement(
            self.jobs,
            self._slots,
            self._live,
            self._held,
            self.transfers.fetchable,
            self.home,
            links=self.state.links,
        )
        #: The builds holding a slot now: their engine, and since when.
        self._slot_taken: dict[str, tuple[str, float]] = {}
        self.ready = ReadyQueue(self.jobs)
        #: Cargo images whose artifacts have landed, and when.
        self._landed: dict[str, float] = {}
        self._started: dict[str, float] = {}
        self._origin = 0.0
        self._closed = anyio.Event()
        self._stopped = False
        self._pending: list[Job] = self._register(list(jobs))
        if not open_ended:
            self._closed.set()

    @property
    def priority(self) -> dict[str, float]:
        """Each job's remaining critical path (ready builds start longest first)."""
        return self.ready.priority

    @property
    def pooled(self) -> bool:
        """Whether work is spread over more than one engine."""
        return len(self.engines) > 1

    @property
    def _tg(self) -> anyio.abc.TaskGroup | None:
        return self.state.tg

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
            self._held[job.name] = {self.home} if job.local else set()
            if job.published:
                self.transfers.copy(job.name).done()
        self.ready.add(jobs)
        for job in jobs:
            self.placement.join([n for n in (job.name, *job.needs) if not known[n].portable])
        return jobs

    def outcomes(self) -> dict[str, Outcome]:
        """Every job's outcome, in the jobs' order (after the run: what never started
        was skipped, since the run stopped early)."""
        for name in self.jobs:
            if name not in self._outcomes:
                self._finish(
                    name, OutcomeKind.SKIPPED, error="not started: the run stopped (--fail-fast)"
                )
        return {name: self._outcomes[name] for name in self.jobs}

    def _start(self, jobs: list[Job]) -> None:
        """Start what the new jobs can start now (pulls, local pushes, ready builds)."""
        assert self._tg is not None
        for job in sorted(jobs, key=lambda j: -self.priority[j.name]):
            name = job.name
            failed = [
                d
                for d in job.after
                if d not in self.ready.there
                and d in self._outcomes
                and self._outcomes[d].action in GONE
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
            elif self.ready.waiting[name] == 0 and self._cargo_ready(job):
                self.ready.push(name)
        self._dispatch()

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
        copy = self.transfers.copy(name)
        if action in GONE and not copy.event.is_set():
            copy.done(error or action.value)  # (builds waiting to fetch it learn it won't come)

    def _dispatch(self) -> None:
        assert self._tg is not None
        deferred: list[tuple[float, int, str]] = []
        queued: dict[str, float] = {}  # (per engine: seconds of builds deferred to it)
        while self.ready and any(self._free[e] > 0 for e in self._open_engines()):
            item = self.ready.pop()
            name = item[2]
            if name in self._outcomes:
                continue
            if self.ready.waiting[name] > 0:  # a parent is built again: released with it
                self.ready.drop(name)
                continue
            job = self.jobs[name]
            usable = self.placement.usable(job)
            if not usable:
                self._fail(name, self.placement.why_not(job))
                continue
            free = [e for e in usable if self._free[e] > 0 and not self.health.watched(e)]
            busy = {
                e: self._expected_wait(e) + queued.get(e, 0.0)
                for e in usable
                if self._free[e] == 0 and not self.health.watched(e)
            }
            waits_for = self.placement.worth_waiting(job, free, busy)
            if not free or waits_for is not None:
                if waits_for is not None:
                    slots = self._slots[waits_for].slots  # (at least 1: Slots checks)
                    queued[waits_for] = queued.get(waits_for, 0.0) + job.estimate / slots
                deferred.append(item)
                continue
            engine = self.placement.choose(job, free, self._free)
            self._free[engine] -= 1
            self.load[engine].running += 1
            self._slot_taken[name] = (engine, self.clock())
            self._tg.start_soon(self._build, job, engine)
        self.ready.put_back(deferred)

    def _expected_wait(self, engine: str) -> float:
        """Seconds until a slot of ``engine`` is expected free: the soonest expected end
        of its builds (a build past its estimate is expected to take as long again)."""
        now = self.clock()
        left = [
            _left(self.jobs[name].estimate, now - since)
            for name, (where, since) in self._slot_taken.items()
            if where == engine
        ]
        return min(left, default=0.0)

    def _open_engines(self) -> list[str]:
        """Live engines taking builds (not being watched after a failure)."""
        return [e for e in self._live if not self.health.watched(e)]

    def _available(self, name: str) -> None:
        """``name`` is there for its dependents: release the builds waiting for it."""
        free = self.ready.arrived(name)
        if free is None:  # (built again: its engine was lost, or cannot reach the registry)
            self._dispatch()  # (its slot is free: what waited for one may start)
            return
        for dependent in free:  # (one in the outcomes was skipped: another dependency failed)
            if dependent not in self._outcomes and self._cargo_ready(self.jobs[dependent]):
                self.ready.push(dependent)
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
        stack = list(self.ready.dependents[name])
        while stack:
            dependent = stack.pop()
            if dependent in self._outcomes:
                continue
            self._finish(dependent, OutcomeKind.SKIPPED, error=why)
            self._emit(dependent, Phase.BUILD, EventStatus.SKIPPED, why)
            stack.extend(self.ready.dependents[dependent])

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

    def _cut_off(self, job: Job, engine: str, exc: MzbuildError) -> bool:
        """Whether ``exc`` says ``engine`` cannot reach ``job``'s registry while the pool
        has others: it then takes no more work for that registry (said once), and the
        job may move."""
        if not (self.pooled and isinstance(exc, TransferError) and exc.unreachable):
            return False
        cut = self.placement.cut.setdefault(engine, {})
        if job.registry not in cut:
            cut[job.registry] = str(exc)
            logs.warning(
                f"engine {engine} cannot reach the registry {job.registry}; its work for it"
                f" goes to the other engines ({exc})"
            )
        return True

    def _rebuild_lost(self, engine: str) -> None:
        """Build again what this run built and lost with ``engine``: images on no live
        engine and not in the registry (``publish: false`` ones, or ones not sent yet)
        that something still to come needs. Cheaper than failing what needs them."""
        lost = [
            name
            for name, job in self.jobs.items()
            if job.action is Action.BUILD
            and name in self.ready.there
            and not self._held[name]
            and not self.transfers.copy(name).there
            and any(d not in self._outcomes for d in self.ready.dependents[name])
            and self._tries.get(name, 0) + 1 < self.attempts
        ]
        for name in lost:
            self._tries[name] = self._tries.get(name, 0) + 1
            self._outcomes.pop(name, None)
            self.transfers.forget(name)  # (waiters on the old one learn it is rebuilt)
            self._where.pop(name, None)
        self.ready.gone(lost, self._outcomes)
        for name in lost:
            self._emit(
                name, Phase.BUILD, EventStatus.REQUEUED, f"it was only on engine {engine}, now lost"
            )
            if self.ready.waiting[name] == 0:
                self.ready.push(name)
        if lost:
            self._dispatch()

    def _requeue(
        self, job: Job, engine: str, phase: Phase, why: str, *, moved: str = "lost"
    ) -> None:
        """``job``'s build went with a lost engine (or one that ``moved`` says cannot do
        it): run it elsewhere, a bounded number of times."""
        name = job.name
        self._tries[name] = tries = self._tries.get(name, 0) + 1
        self._where.pop(name, None)
        if tries >= self.attempts:
            self._fail(name, f"{why} (moved from {tries} engines; gave up)", phase=phase)
            return
        self._emit(name, phase, EventStatus.REQUEUED, f"engine {engine} {moved}: {why}", engine)
        self.ready.drop(name)
        self.ready.push(name)
        self._dispatch()

    def _artifacts_landed(self, name: str) -> None:
        """Cargo has built what ``name`` needs: its build may start (once)."""
        if name in self._landed or name not in self.jobs:
            return
        self._landed[name] = self.clock() - self._origin
        self._emit(None, Phase.CARGO, EventStatus.LANDED, name)
        if self.ready.waiting[name] == 0 and name not in self._outcomes:
            self.ready.push(name)
        self._dispatch()

    # -- the work (the scheduler's) ------------------------------------------

    async def _pull(self, job: Job) -> None:
        raise NotImplementedError

    async def _build(self, job: Job, engine: str) -> None:
        raise NotImplementedError

    async def _push_local(self, job: Job) -> None:
        raise NotImplementedError
