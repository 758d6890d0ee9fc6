"""The DAG executor: every build starts the moment its inputs are ready.

The scheduler is handed one :class:`Job` per image that needs work (pull,
build, and/or push) and a :class:`Worker` that does the work; it knows
nothing about Docker or cargo, so tests drive it with fakes. It runs:

- the one batched cargo build (if any job needs it) as soon as it starts;
- every pull at once, under a per-registry transfer limit;
- each build once the images it needs are local (pulled, built, or there
  already) and, for cargo images, once cargo is done; at most
  ``Limits.jobs`` builds at a time, the ready build with the longest
  remaining critical path first;
- each push right after its build, under the same per-registry limit.

A failure is a value: the failed image's dependents are skipped and
independent work goes on (or, with ``fail_fast``, everything stops).
Cancellation propagates: nothing is left running.
"""

from __future__ import annotations

import enum
import heapq
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import anyio
import anyio.abc

from ..errors import EngineError, MzbuildError, single_error
from ..model.options import DEFAULT_TRANSFERS
from ..store.history import DEFAULT_ESTIMATE
from ..support.events import Event, Listener, ignore


class Action(enum.Enum):
    """What an image needs before the result is there."""

    NONE = "none"
    PULL = "pull"
    BUILD = "build"


@dataclass(frozen=True)
class Job:
    """One image's work in a run."""

    name: str
    action: Action
    #: Push after the build (or, with ``Action.NONE``, push the local image).
    push: bool = False
    #: Images pulled or built in this run that this build needs locally first.
    after: tuple[str, ...] = ()
    #: Whether the build needs the batched cargo build's output.
    cargo: bool = False
    #: Expected build seconds, for critical-path priority.
    estimate: float = DEFAULT_ESTIMATE
    #: Registry host of the image, for the per-registry transfer limit.
    registry: str = ""


@dataclass(frozen=True)
class Limits:
    """How much runs at once."""

    jobs: int = 2
    transfers: int = DEFAULT_TRANSFERS
    fail_fast: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1 or self.transfers < 1:
            raise ValueError("limits must be at least 1")


@dataclass(frozen=True)
class Outcome:
    """What happened to one image."""

    name: str
    #: ``none``, ``pulled``, ``built``, ``built-elsewhere`` (by another process
    #: while we waited for its lock), ``skipped`` or ``failed``.
    action: str
    pushed: bool
    #: Seconds of this image's own work, from its first pull, build or push start.
    seconds: float
    error: str = ""
    #: Why nothing was pushed although a push was wanted (e.g. published meanwhile).
    note: str = ""


class Worker(Protocol):
    """Does the work; the seam between the scheduler and Docker/cargo."""

    async def cargo(self, names: Sequence[str]) -> None:
        """Build the Rust binaries of ``names`` in one batch."""
        ...

    async def pull(self, name: str) -> None:
        """Pull image ``name`` into the local daemon."""
        ...

    async def build(self, name: str) -> str | None:
        """Build image ``name`` (its dependencies are local).

        Returns "" (or None) when it built the image, else why it did not
        need to (another process built it meanwhile).
        """
        ...

    async def push(self, name: str) -> str:
        """Push image ``name``; return "" when pushed, else why it was not needed."""
        ...


def critical_paths(jobs: Mapping[str, Job]) -> dict[str, float]:
    """Per job: its estimate plus the longest chain of builds that wait on it."""
    dependents: dict[str, list[str]] = {name: [] for name in jobs}
    for job in jobs.values():
        for dep in job.after:
            dependents[dep].append(job.name)
    paths: dict[str, float] = {}
    # Depth-first from each job, memoized; the graph is a DAG.
    for start in jobs:
        if start in paths:
            continue
        stack: list[tuple[str, bool]] = [(start, False)]
        while stack:
            name, expanded = stack.pop()
            if name in paths:
                continue
            if not expanded:
                stack.append((name, True))
                stack.extend((d, False) for d in dependents[name] if d not in paths)
                continue
            own = jobs[name].estimate if jobs[name].action is Action.BUILD else 0.0
            paths[name] = own + max((paths[d] for d in dependents[name]), default=0.0)
    return paths


#: Outcomes after which an image is not there for its dependents.
_GONE = ("failed", "skipped")


class Scheduler:
    """Runs one set of jobs to completion (see the module docstring)."""

    def __init__(
        self,
        jobs: Iterable[Job],
        worker: Worker,
        limits: Limits | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        listener: Listener = ignore,
        open_ended: bool = False,
    ) -> None:
        """``open_ended``: more jobs come with :meth:`add` while it runs, until :meth:`close`."""
        self.jobs: dict[str, Job] = {}
        self.worker = worker
        self.limits = limits or Limits()
        self.clock = clock
        self.listener = listener
        self._dependents: dict[str, list[str]] = {}
        self._waiting: dict[str, int] = {}
        self.priority: dict[str, float] = {}
        self._cargo_done = False
        self._ready: list[tuple[float, int, str]] = []
        self._sequence = 0
        self._running = 0
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
    def running_builds(self) -> int:
        """Builds in progress right now."""
        return self._running

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
        for i, job in enumerate(jobs):  # checked before anything changes
            if job.name in self.jobs or any(j.name == job.name for j in jobs[:i]):
                raise ValueError(f"{job.name} was added twice")
            for dep in job.after:
                if dep not in known or known[dep].action is Action.NONE:
                    raise ValueError(f"{job.name} waits for {dep}, which has no pull or build")
        for job in jobs:
            self.jobs[job.name] = job
            self._dependents[job.name] = []
        for job in jobs:
            for dep in job.after:
                self._dependents[dep].append(job.name)
            self._waiting[job.name] = sum(d not in self._available_now for d in job.after)
        self.priority = critical_paths(self.jobs)
        return jobs

    async def run(self) -> dict[str, Outcome]:
        """Run every job (until :meth:`close`, if open-ended); outcomes in the jobs' order."""
        self._origin = self.clock()
        # An engine that went away stops the whole run with its one clear error.
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
                self._finish(name, "skipped", error="not started: the run stopped (--fail-fast)")
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
                self._finish(name, "skipped", error=why)
                self._emit(name, "build", "skipped", why)
            elif job.action is Action.PULL:
                self._tg.start_soon(self._pull, job)
            elif job.action is Action.NONE:
                if job.push:
                    self._tg.start_soon(self._push_local, job)
                else:
                    self._finish(name, "none")
            elif self._waiting[name] == 0 and (self._cargo_done or not job.cargo):
                self._enqueue(name)
        self._dispatch()

    async def _cargo_when_closed(self) -> None:
        """The one batched cargo build, once every job is known."""
        await self._closed.wait()
        cargo = [n for n, j in self.jobs.items() if j.cargo and j.action is Action.BUILD]
        if cargo:
            await self._cargo(cargo)
        else:
            self._cargo_done = True

    # -- bookkeeping -----------------------------------------------------

    def _emit(self, image: str | None, phase: str, status: str, detail: str = "") -> None:
        self.listener(Event(self.clock() - self._origin, image, phase, status, detail))

    def _finish(
        self, name: str, action: str, *, pushed: bool = False, error: str = "", note: str = ""
    ) -> None:
        started = self._started.get(name)
        seconds = 0.0 if started is None else self.clock() - started
        self._outcomes[name] = Outcome(name, action, pushed, seconds, error, note)

    def _enqueue(self, name: str) -> None:
        self._sequence += 1
        heapq.heappush(self._ready, (-self.priority[name], self._sequence, name))

    def _dispatch(self) -> None:
        assert self._tg is not None
        while self._ready and self._running < self.limits.jobs:
            _, _, name = heapq.heappop(self._ready)
            if name in self._outcomes:
                continue
            self._running += 1
            self._tg.start_soon(self._build, self.jobs[name])

    def _limiter(self, registry: str) -> anyio.CapacityLimiter:
        limiter = self._limiters.get(registry)
        if limiter is None:
            limiter = self._limiters[registry] = anyio.CapacityLimiter(self.limits.transfers)
        return limiter

    def _available(self, name: str) -> None:
        """``name`` is in the local daemon: release the builds waiting for it."""
        self._available_now.add(name)
        for dependent in self._dependents[name]:
            self._waiting[dependent] -= 1
            if dependent in self._outcomes:
                continue  # skipped: another of its dependencies failed
            if self._waiting[dependent] == 0 and (
                self._cargo_done or not self.jobs[dependent].cargo
            ):
                self._enqueue(dependent)
        self._dispatch()

    def _fail(self, name: str, error: str, *, action: str = "failed", phase: str = "") -> None:
        self._finish(name, action, error=error)
        self._emit(name, phase or "build", "failed", error)
        if self.limits.fail_fast and self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._skip_dependents(name, f"dependency {name} failed")

    def _skip_dependents(self, name: str, why: str) -> None:
        stack = list(self._dependents[name])
        while stack:
            dependent = stack.pop()
            if dependent in self._outcomes:
                continue
            self._finish(dependent, "skipped", error=why)
            self._emit(dependent, "build", "skipped", why)
            stack.extend(self._dependents[dependent])

    # -- the work ----------------------------------------------------------

    async def _cargo(self, names: list[str]) -> None:
        self._emit(None, "cargo", "start", ", ".join(names))
        try:
            await self.worker.cargo(names)
        except EngineError:
            raise
        except MzbuildError as exc:
            self._emit(None, "cargo", "failed", str(exc))
            for name in names:
                if name not in self._outcomes:
                    self._fail(name, str(exc), phase="cargo")
            return
        self._emit(None, "cargo", "done")
        self._cargo_done = True
        for name in names:
            if self._waiting[name] == 0 and name not in self._outcomes:
                self._enqueue(name)
        self._dispatch()

    async def _pull(self, job: Job) -> None:
        async with self._limiter(job.registry):
            self._started[job.name] = self.clock()
            self._emit(job.name, "pull", "start")
            try:
                await self.worker.pull(job.name)
            except EngineError:
                raise
            except MzbuildError as exc:
                self._fail(job.name, str(exc), phase="pull")
                return
        self._emit(job.name, "pull", "done")
        self._finish(job.name, "pulled")
        self._available(job.name)

    async def _build(self, job: Job) -> None:
        self._started[job.name] = self.clock()
        self._emit(job.name, "build", "start")
        try:
            elsewhere = await self.worker.build(job.name)
        except EngineError:
            raise
        except MzbuildError as exc:
            self._running -= 1
            self._fail(job.name, str(exc))
            self._dispatch()
            return
        except BaseException:
            self._running -= 1
            raise
        self._running -= 1
        self._emit(job.name, "build", "done", elsewhere or "")
        action = "built-elsewhere" if elsewhere else "built"
        if not job.push:
            self._finish(job.name, action, note=elsewhere or "")
        self._available(job.name)
        if job.push:
            await self._push(job, action)

    async def _push_local(self, job: Job) -> None:
        self._started[job.name] = self.clock()
        await self._push(job, "none")

    async def _push(self, job: Job, action: str) -> None:
        async with self._limiter(job.registry):
            self._emit(job.name, "push", "start")
            try:
                note = await self.worker.push(job.name)
            except EngineError:
                raise
            except MzbuildError as exc:
                self._finish(job.name, "failed", error=f"push failed: {exc}")
                self._emit(job.name, "push", "failed", str(exc))
                if self.limits.fail_fast and self._tg is not None:
                    self._tg.cancel_scope.cancel()
                return
        self._emit(job.name, "push", "done", note)
        self._finish(job.name, action, pushed=not note, note=note)
