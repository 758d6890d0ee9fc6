"""Scheduler invariants with a fake worker, on hypothesis-generated DAGs.

The fake worker does no real work: each call yields to the event loop a
few times (so calls overlap as real ones do) and records what it saw. The
scheduler's clock is injected (a counter the fake advances), so outcomes
are deterministic and the suite is fast.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mzbuild_async.builds.scheduler import (
    Action,
    Job,
    OneEngine,
    Outcome,
    RunLimits,
    Scheduler,
    critical_paths,
)
from mzbuild_async.errors import BuildError, CargoBuildError
from mzbuild_async.support.events import Event
from mzbuild_async.testing import FakeClock

REGISTRIES = ("r1.test", "r2.test")


@dataclass
class FakeWorker(OneEngine):
    """Records every call and checks the scheduler's promises as it goes."""

    jobs: dict[str, Job]
    limits: RunLimits
    clock: FakeClock = field(default_factory=FakeClock)
    failing: frozenset[str] = frozenset()
    cargo_fails: bool = False
    #: Images whose artifacts land before cargo fails (with ``cargo_fails``).
    cargo_fails_after: int = 0
    #: The order cargo reports images' artifacts in (default: reversed names).
    landing: list[str] = field(default_factory=list)
    landed: list[str] = field(default_factory=list)
    #: Checkpoints each call takes (a large number keeps calls in flight).
    steps: int = 3
    #: Real seconds each call sleeps (for cancellation tests).
    sleep: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    order: list[tuple[str, str]] = field(default_factory=list)
    available: set[str] = field(default_factory=set)
    cargo_finished: bool = False
    cargo_names: list[list[str]] = field(default_factory=list)
    builds_now: int = 0
    max_builds: int = 0
    transfers_now: Counter[str] = field(default_factory=Counter)
    max_transfers: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    violations: list[str] = field(default_factory=list)

    async def _work(self) -> None:
        self.in_flight += 1
        try:
            for _ in range(self.steps):
                await anyio.sleep(self.sleep)
                self.clock.now += 1.0
        finally:
            self.in_flight -= 1

    async def cargo(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        """Report the images' artifacts one by one (in ``landing`` order, else
        reversed), working between them; fail after ``cargo_fails_after`` landed."""
        self.calls[("cargo", "")] += 1
        self.cargo_names.append(sorted(names))
        order = [n for n in self.landing if n in names] or sorted(names, reverse=True)
        for count, name in enumerate(order):
            if self.cargo_fails and count >= self.cargo_fails_after:
                break
            await self._work()
            self.landed.append(name)
            landed(name)
        await self._work()
        if self.cargo_fails:
            raise CargoBuildError("cargo build failed: crate x: error: boom")
        self.cargo_finished = True

    async def _transfer(self, kind: str, name: str) -> None:
        registry = self.jobs[name].registry
        self.transfers_now[registry] += 1
        self.max_transfers[registry] = max(
            self.max_transfers[registry], self.transfers_now[registry]
        )
        try:
            await self._work()
        finally:
            self.transfers_now[registry] -= 1

    async def pull(self, name: str, engine: str = "") -> None:
        self.calls[("pull", name)] += 1
        self.order.append(("pull", name))
        await self._transfer("pull", name)
        if name in self.failing:
            raise BuildError(f"pull of {name} failed")
        self.available.add(name)

    async def build(self, name: str, engine: str = "") -> None:
        self.calls[("build", name)] += 1
        self.order.append(("build", name))
        job = self.jobs[name]
        missing = [d for d in job.after if d not in self.available]
        if missing:
            self.violations.append(f"{name} built before {missing} were available")
        if job.cargo and name not in self.landed:
            self.violations.append(f"{name} built before its cargo artifacts landed")
        self.builds_now += 1
        self.max_builds = max(self.max_builds, self.builds_now)
        try:
            await self._work()
        finally:
            self.builds_now -= 1
        if name in self.failing:
            raise BuildError(f"build of {name} failed")
        self.available.add(name)

    async def push(self, name: str, engine: str = "") -> str:
        self.calls[("push", name)] += 1
        if name not in self.available and self.jobs[name].action is not Action.NONE:
            self.violations.append(f"{name} pushed before it was built")
        await self._transfer("push", name)
        return self.notes.get(name, "")


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Job], frozenset[str], RunLimits]:
    """A DAG of jobs, which of them fail, and limits."""
    count = draw(st.integers(1, 25))
    jobs: list[Job] = []
    for i in range(count):
        action = draw(st.sampled_from(list(Action)))
        workable = [j.name for j in jobs if j.action is not Action.NONE]
        after: tuple[str, ...] = ()
        if action is Action.BUILD and workable:
            after = tuple(draw(st.lists(st.sampled_from(workable), unique=True, max_size=3)))
        jobs.append(
            Job(
                f"img{i}",
                action,
                push=action is not Action.PULL and draw(st.booleans()),
                after=after,
                cargo=action is Action.BUILD and draw(st.booleans()),
                estimate=draw(st.floats(0.0, 100.0)),
                registry=draw(st.sampled_from(REGISTRIES)),
            )
        )
    workable = [j.name for j in jobs if j.action is not Action.NONE]
    failing = (
        frozenset(draw(st.lists(st.sampled_from(workable), unique=True)))
        if workable
        else frozenset()
    )
    limits = RunLimits(jobs=draw(st.integers(1, 4)), transfers=draw(st.integers(1, 3)))
    return jobs, failing, limits


def expected_outcomes(jobs: list[Job], failing: frozenset[str]) -> dict[str, tuple[str, bool]]:
    """(action, pushed) each image must end with: failures skip exactly the dependents."""
    expected: dict[str, tuple[str, bool]] = {}
    for job in jobs:  # dependencies come first
        if any(expected[d][0] in ("failed", "skipped") for d in job.after):
            expected[job.name] = ("skipped", False)
        elif job.name in failing:
            expected[job.name] = ("failed", False)
        else:
            done = {Action.NONE: "none", Action.PULL: "pulled", Action.BUILD: "built"}
            expected[job.name] = (done[job.action], job.push)
    return expected


def run(scheduler: Scheduler) -> dict[str, Outcome]:
    async def main() -> dict[str, Outcome]:
        return await scheduler.run()

    return anyio.run(main)


@settings(max_examples=60, deadline=None)
@given(scenarios())
def test_invariants_hold_on_random_dags(
    scenario: tuple[list[Job], frozenset[str], RunLimits],
) -> None:
    jobs, failing, limits = scenario
    by_name = {j.name: j for j in jobs}
    worker = FakeWorker(by_name, limits, failing=failing)
    events: list[Event] = []
    outcomes = run(Scheduler(jobs, worker, limits, clock=worker.clock, listener=events.append))

    assert worker.violations == []
    assert worker.in_flight == 0
    # Each image pulled, built and pushed at most once; cargo at most once, for its images.
    assert all(n == 1 for n in worker.calls.values()), worker.calls
    cargo_jobs = sorted(j.name for j in jobs if j.cargo and j.action is Action.BUILD)
    assert worker.cargo_names == ([cargo_jobs] if cargo_jobs else [])
    # RunLimits.
    assert worker.max_builds <= limits.jobs
    assert all(n <= limits.transfers for n in worker.max_transfers.values())
    # Failures propagate exactly to the dependents; everything else is done as asked.
    expected = expected_outcomes(jobs, failing)
    assert {n: (o.action, o.pushed) for n, o in outcomes.items()} == expected
    for name, outcome in outcomes.items():
        action = outcome.action
        assert (outcome.error != "") == (action in ("failed", "skipped")), outcome
        assert worker.calls[("build", name)] == (
            1 if by_name[name].action is Action.BUILD and action in ("built", "failed") else 0
        )
        assert outcome.seconds >= 0.0
        if action == "skipped":
            assert outcome.seconds == 0.0
            # Skipped because of a failure upstream, not left waiting until the end.
            assert outcome.error.startswith("dependency "), outcome
            culprit = outcome.error.split()[1]
            assert expected[culprit][0] == "failed"
    # Every start event has one end event.
    starts = Counter((e.image, e.phase) for e in events if e.status == "start")
    ends = Counter((e.image, e.phase) for e in events if e.status in ("done", "failed"))
    assert starts == ends


def _chain(*names: str, estimate: float = 1.0) -> list[Job]:
    jobs: list[Job] = []
    for i, name in enumerate(names):
        after = (names[i - 1],) if i else ()
        jobs.append(Job(name, Action.BUILD, after=after, estimate=estimate))
    return jobs


def test_the_longest_critical_path_goes_first() -> None:
    jobs = [
        Job("short", Action.BUILD, estimate=5.0),
        Job("long", Action.BUILD, estimate=1.0),
        Job("tail", Action.BUILD, after=("long",), estimate=50.0),
    ]
    assert critical_paths({j.name: j for j in jobs}) == {"short": 5.0, "long": 51.0, "tail": 50.0}
    worker = FakeWorker({j.name: j for j in jobs}, RunLimits(jobs=1))
    run(Scheduler(jobs, worker, RunLimits(jobs=1), clock=worker.clock))
    assert worker.order == [("build", "long"), ("build", "tail"), ("build", "short")]


def test_builds_wait_for_pulls_and_cargo() -> None:
    jobs = [
        Job("base", Action.PULL),
        Job("rust", Action.BUILD, after=("base",), cargo=True),
        Job("plain", Action.BUILD, after=("base",)),
    ]
    worker = FakeWorker({j.name: j for j in jobs}, RunLimits(jobs=2), steps=5)
    outcomes = run(Scheduler(jobs, worker, RunLimits(jobs=2), clock=worker.clock))
    assert worker.violations == []
    assert {n: o.action for n, o in outcomes.items()} == {
        "base": "pulled",
        "rust": "built",
        "plain": "built",
    }
    assert worker.cargo_names == [["rust"]]


def test_a_cargo_failure_fails_its_images_and_skips_their_dependents_only() -> None:
    jobs = [
        Job("rust", Action.BUILD, cargo=True),
        Job("on-rust", Action.BUILD, after=("rust",)),
        Job("plain", Action.BUILD, push=True),
    ]
    worker = FakeWorker({j.name: j for j in jobs}, RunLimits(), cargo_fails=True)
    outcomes = run(Scheduler(jobs, worker, RunLimits(), clock=worker.clock))
    assert outcomes["rust"].action == "failed"
    assert "crate x" in outcomes["rust"].error
    assert outcomes["on-rust"].action == "skipped"
    assert outcomes["on-rust"].error == "dependency rust failed"
    assert (outcomes["plain"].action, outcomes["plain"].pushed) == ("built", True)
    assert worker.calls[("build", "rust")] == 0


def test_push_not_needed_is_reported_with_its_note() -> None:
    jobs = [Job("a", Action.BUILD, push=True), Job("b", Action.NONE, push=True)]
    worker = FakeWorker({j.name: j for j in jobs}, RunLimits())
    worker.notes = {"a": "already published (by another run)"}
    outcomes = run(Scheduler(jobs, worker, RunLimits(), clock=worker.clock))
    assert (outcomes["a"].action, outcomes["a"].pushed) == ("built", False)
    assert outcomes["a"].note == "already published (by another run)"
    assert (outcomes["b"].action, outcomes["b"].pushed) == ("none", True)


def test_fail_fast_stops_everything_and_fills_every_outcome() -> None:
    jobs = [
        Job("bad", Action.BUILD, estimate=100.0),
        *_chain("a1", "a2", "a3"),
        Job("pulled", Action.PULL),
    ]
    limits = RunLimits(jobs=2, fail_fast=True)
    worker = FakeWorker({j.name: j for j in jobs}, limits, failing=frozenset({"bad"}), steps=50)
    outcomes = run(Scheduler(jobs, worker, limits, clock=worker.clock))
    assert set(outcomes) == {j.name for j in jobs}
    assert outcomes["bad"].action == "failed"
    assert outcomes["a3"].action == "skipped"
    assert worker.in_flight == 0
    assert worker.calls[("build", "a3")] == 0


def test_cancellation_leaves_nothing_running() -> None:
    jobs = [*_chain("c1", "c2"), Job("p", Action.PULL), Job("r", Action.BUILD, cargo=True)]
    limits = RunLimits(jobs=2)
    worker = FakeWorker({j.name: j for j in jobs}, limits, sleep=0.01, steps=100)

    async def main() -> None:
        with anyio.move_on_after(0.1) as scope:
            await Scheduler(jobs, worker, limits, clock=worker.clock).run()
        assert scope.cancelled_caught
        assert worker.in_flight == 0
        calls = sum(worker.calls.values())
        await anyio.sleep(0.1)
        assert worker.in_flight == 0
        assert sum(worker.calls.values()) == calls  # nothing new started afterwards

    anyio.run(main)
    assert worker.calls[("build", "c2")] == 0


def test_a_job_waiting_for_an_image_without_work_is_refused() -> None:
    jobs = [Job("local", Action.NONE), Job("b", Action.BUILD, after=("local",))]
    worker = FakeWorker({j.name: j for j in jobs}, RunLimits())
    with pytest.raises(ValueError, match="b waits for local"):
        Scheduler(jobs, worker)


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RunLimits(jobs=0)


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.lists(st.integers(1, 5), min_size=1, max_size=25))
def test_jobs_added_while_running_keep_the_invariants(
    scenario: tuple[list[Job], frozenset[str], RunLimits], chunks: list[int]
) -> None:
    """Jobs handed over in chunks (dependencies first) while the scheduler runs, as a run
    releases decisions while lookups go on: the same outcomes as all at once; cargo
    once, after close(), for all its images; no build before what it needs."""
    jobs, failing, limits = scenario
    by_name = {j.name: j for j in jobs}
    worker = FakeWorker(by_name, limits, failing=failing)

    async def main() -> dict[str, Outcome]:
        scheduler = Scheduler([], worker, limits, clock=worker.clock, open_ended=True)
        outcomes: dict[str, Outcome] = {}

        async def run_it() -> None:
            outcomes.update(await scheduler.run())

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_it)
            rest = list(jobs)
            for size in [*chunks, len(rest)]:
                batch, rest = rest[:size], rest[size:]
                scheduler.add(batch)
                await anyio.sleep(worker.sleep)
                if not rest:
                    break
            scheduler.close()
        return outcomes

    outcomes = anyio.run(main)
    assert worker.violations == []
    assert all(n == 1 for n in worker.calls.values()), worker.calls
    cargo_jobs = sorted(j.name for j in jobs if j.cargo and j.action is Action.BUILD)
    assert worker.cargo_names == ([cargo_jobs] if cargo_jobs else [])
    assert worker.max_builds <= limits.jobs
    expected = expected_outcomes(jobs, failing)
    assert {n: (o.action, o.pushed) for n, o in outcomes.items()} == expected


def test_add_checks_what_a_job_waits_for() -> None:
    """A job may only wait for jobs added before or with it, and names are unique."""
    worker = FakeWorker({}, RunLimits())
    scheduler = Scheduler([], worker, RunLimits(), open_ended=True)
    with pytest.raises(ValueError, match="waits for base"):
        scheduler.add([Job("app", Action.BUILD, after=("base",))])
    scheduler.add([Job("base", Action.BUILD)])
    with pytest.raises(ValueError, match="added twice"):
        scheduler.add([Job("base", Action.PULL)])
    scheduler.close()
    with pytest.raises(RuntimeError):
        scheduler.add([Job("late", Action.BUILD)])


def test_jobs_added_after_a_fail_fast_stop_are_skipped() -> None:
    """With --fail-fast, a failure stops the run; jobs that arrive later never start."""
    first = Job("first", Action.BUILD)
    late = Job("late", Action.BUILD)
    limits = RunLimits(jobs=1, fail_fast=True)
    worker = FakeWorker({"first": first, "late": late}, limits, failing=frozenset({"first"}))

    async def main() -> dict[str, Outcome]:
        scheduler = Scheduler([first], worker, limits, clock=worker.clock, open_ended=True)
        async with anyio.create_task_group() as tg:
            tg.start_soon(scheduler.run)
            while not scheduler._stopped:
                await anyio.sleep(0.001)
            scheduler.add([late])
            scheduler.close()
        return scheduler.outcomes()

    outcomes = anyio.run(main)
    assert outcomes["first"].action == "failed"
    assert outcomes["late"].action == "skipped"
    assert worker.calls[("build", "late")] == 0


@settings(max_examples=60, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False), st.booleans(), st.integers(0, 25))
def test_cargo_images_start_as_their_artifacts_land(
    scenario: tuple[list[Job], frozenset[str], RunLimits],
    rng: random.Random,
    fails: bool,
    fails_after: int,
) -> None:
    """Cargo reports images' artifacts in any order, maybe failing part way: no cargo
    image starts before its artifacts landed, each is released once, those that
    landed go on after a cargo failure and the others fail with it."""
    jobs, _failing, limits = scenario
    by_name = {j.name: j for j in jobs}
    cargo = [j.name for j in jobs if j.cargo and j.action is Action.BUILD]
    landing = rng.sample(cargo, len(cargo))
    worker = FakeWorker(
        by_name, limits, cargo_fails=fails, cargo_fails_after=fails_after, landing=landing
    )
    events: list[Event] = []
    outcomes = run(Scheduler(jobs, worker, limits, clock=worker.clock, listener=events.append))
    assert worker.violations == []
    released = [e.detail for e in events if e.phase == "cargo" and e.status == "landed"]
    assert len(released) == len(set(released))
    landed = set(landing[:fails_after]) if fails else set(cargo)
    assert set(released) == landed
    for name in cargo:
        outcome = outcomes[name]
        if name in landed:
            assert outcome.landed is not None
            assert outcome.action in ("built", "skipped"), outcome
        elif outcome.action != "skipped":  # (skipped: something it builds on failed)
            assert outcome.action == "failed"
            assert "crate x" in outcome.error
    # Dependents of what failed are skipped, everything else is done.
    for outcome in outcomes.values():
        if outcome.action == "skipped":
            assert outcome.error.startswith("dependency ")


def test_a_cargo_image_builds_while_cargo_goes_on() -> None:
    """The first image whose artifacts land is built before cargo ends."""
    jobs = [Job("fast", Action.BUILD, cargo=True), Job("slow", Action.BUILD, cargo=True)]
    limits = RunLimits(jobs=2)
    worker = FakeWorker({j.name: j for j in jobs}, limits, landing=["fast", "slow"], steps=5)
    events: list[Event] = []
    outcomes = run(Scheduler(jobs, worker, limits, clock=worker.clock, listener=events.append))
    assert {n: o.action for n, o in outcomes.items()} == {"fast": "built", "slow": "built"}
    done = [
        (e.image, str(e.phase), str(e.status)) for e in events if e.status in ("done", "landed")
    ]
    assert done.index(("fast", "build", "done")) < done.index((None, "cargo", "done"))
