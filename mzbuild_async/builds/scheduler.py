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

Its parts: :mod:`.dispatch` (the bookkeeping: what is released to which engine,
outcomes, failures, engines lost), :mod:`.ready` (what each job waits for, the
queue), :mod:`.transfers`
(images between engines through the registry), :mod:`.health` (pings and the
watch after a failure), sharing a :class:`~.state.RunState`.
"""

from __future__ import annotations

from functools import partial
from typing import TypeVar

import anyio
import anyio.abc

from ..errors import EngineError, MzbuildError, single_error
from ..support.events import EventStatus, Phase
from .dispatch import DEFAULT_ATTEMPTS, LOCAL_ENGINE, Dispatcher
from .health import HEARTBEAT_SECONDS, PING_SECONDS, WATCH_SECONDS
from .jobs import (
    Action,
    EngineLoad,
    Job,
    OneEngine,
    Outcome,
    OutcomeKind,
    PushMeter,
    RunLimits,
    Slots,
    Worker,
    critical_paths,
)
from .placement import choose_engine, predict_placement
from .transfers import Rebuilt

__all__ = [
    "DEFAULT_ATTEMPTS",
    "HEARTBEAT_SECONDS",
    "LOCAL_ENGINE",
    "PING_SECONDS",
    "WATCH_SECONDS",
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


class Scheduler(Dispatcher):
    """Runs one set of jobs to completion (see the module docstring)."""

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

    async def _run_all(self) -> None:
        async with anyio.create_task_group() as tg:
            self.state.tg = tg
            tg.start_soon(self._cargo_when_closed)
            pending, self._pending = self._pending, []
            self._start(pending)

    async def _cargo_when_closed(self) -> None:
        """The one batched cargo build, once every job is known."""
        await self._closed.wait()
        cargo = [n for n, j in self.jobs.items() if j.cargo and j.action is Action.BUILD]
        if cargo:
            await self._cargo(cargo)

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

    async def _pull(self, job: Job) -> None:
        engine = self.home
        async with self.transfers.limiter(job.registry):
            self._started[job.name] = self.clock()
            self._where[job.name] = engine
            self._emit(job.name, Phase.PULL, EventStatus.START, engine=engine)
            try:
                await self.health.on(engine, partial(self.worker.pull, job.name, engine))
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
                    await self.transfers.bring(need, engine, name)
                elsewhere = await self.health.on(engine, partial(self.worker.build, name, engine))
            finally:
                self._free[engine] += 1
                self.load[engine].running -= 1
                self._slot_taken.pop(name, None)
                self.load[engine].busy_seconds += self.clock() - start
        except EngineError as exc:
            self._lose(engine, exc)
            self._requeue(job, engine, Phase.BUILD, str(exc))
            return
        except Rebuilt as rebuilt:
            # Released again once the parent is there (its wait was counted up).
            self.ready.drop(name)
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
            if self._cut_off(job, engine, exc):
                self._requeue(job, engine, Phase.BUILD, str(exc), moved="cannot reach its registry")
                return
            if self.pooled and await self.health.gone(engine, str(exc)):
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
            await self.transfers.bring(job.name, self.home, job.name)
        except Rebuilt:
            return  # (its new build comes home in its turn)
        except EngineError as exc:
            self._lose(self.home, exc)
            self._fail(job.name, f"the home engine {self.home} was lost: {exc}")
            return
        except MzbuildError as exc:
            self._fail(job.name, f"built, but could not reach the home engine: {exc}")
            return
        self._finish(job.name, action, pushed=pushed, note=note)

    async def _push_local(self, job: Job) -> None:
        self._started[job.name] = self.clock()
        self._where[job.name] = self.home
        await self._push(job, OutcomeKind.NONE, self.home)

    async def _push(
        self, job: Job, action: OutcomeKind, engine: str, *, finish: bool = True
    ) -> str | None:
        """Push ``job``'s image from ``engine``; its note ("" when pushed), None when
        it failed. ``finish``: record the outcome (else the caller does)."""
        async with self.transfers.limiter(job.registry):
            self._emit(job.name, Phase.PUSH, EventStatus.START, engine=engine)
            started = self.clock()
            try:
                note = await self.health.on(engine, partial(self.worker.push, job.name, engine))
            except EngineError as exc:
                self.load[engine].cut_pushes.append(job.name)
                self._lose(engine, exc)
                if job.action is Action.BUILD:
                    self._requeue(job, engine, Phase.PUSH, str(exc))
                else:
                    self._fail(job.name, f"its engine {engine} was lost: {exc}", phase=Phase.PUSH)
                return None
            except MzbuildError as exc:
                if job.action is Action.BUILD and self._cut_off(job, engine, exc):
                    # Built again elsewhere: what waits to fetch it waits for that build.
                    self.transfers.forget(job.name)
                    self.ready.gone([job.name], self._outcomes)
                    why = f"push failed: {exc}"
                    self._requeue(job, engine, Phase.PUSH, why, moved="cannot reach its registry")
                    return None
                self._finish(job.name, OutcomeKind.FAILED, error=f"push failed: {exc}")
                self._emit(job.name, Phase.PUSH, EventStatus.FAILED, str(exc), engine)
                self.transfers.copy(job.name).done(str(exc))
                if self.limits.fail_fast and self._tg is not None:
                    self._tg.cancel_scope.cancel()
                return None
        self._emit(job.name, Phase.PUSH, EventStatus.DONE, note, engine)
        if self.pooled and not note and isinstance(self.worker, PushMeter):
            moved = self.worker.pushed_bytes(job.name)
            self.transfers.learn(engine, job.name, moved, started, fetched=False)
        self.transfers.copy(job.name).done()
        if finish:
            self._finish(job.name, action, pushed=not note, note=note)
        return note
