"""The scheduler over a pool of engines, with a fake worker that checks its promises.

Property tests on random DAGs and pools: builds only on engines of their
platform, never more builds on an engine than its slots, every image a
build needs is on its engine first (built there, fetched from the
registry, or there from the start), nothing fetched before it reached the
registry, ``publish: false`` images never leave their engine, and work
re-queued when an engine dies completes exactly once.
"""

from __future__ import annotations

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
    Outcome,
    RunLimits,
    Scheduler,
    Slots,
    choose_engine,
    predict_placement,
)
from mzbuild_async.errors import BuildError, EngineError
from mzbuild_async.support.events import Event


@dataclass
class PoolWorker:
    """A fake pool: what each engine holds, what the registry holds; engines that die."""

    jobs: dict[str, Job]
    engines: dict[str, Slots]
    #: Engine -> how many builds it starts before it dies mid-build (absent: never).
    dies_after: dict[str, int] = field(default_factory=dict)
    failing: frozenset[str] = frozenset()
    #: Finishing one of these builds (the first time) kills the engine it was built on.
    fatal: set[str] = field(default_factory=set)
    #: Seconds each build takes (default 2 ms).
    durations: dict[str, float] = field(default_factory=dict)
    held: dict[str, set[str]] = field(default_factory=dict)
    registry: set[str] = field(default_factory=set)
    running: Counter[str] = field(default_factory=Counter)
    started: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    placed: dict[str, str] = field(default_factory=dict)
    dead: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        home = next(iter(self.engines))
        for job in self.jobs.values():
            self.held[job.name] = {home} if job.local else set()
            if job.published:
                self.registry.add(job.name)

    def _check_alive(self, engine: str) -> None:
        if engine in self.dead:
            raise EngineError(f"engine {engine} is gone")

    async def cargo(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        await anyio.sleep(0)
        for name in names:
            landed(name)

    async def pull(self, name: str, engine: str) -> None:
        self._check_alive(engine)
        if name not in self.registry:
            self.violations.append(f"pulled {name}, which the registry lacks")
        await anyio.sleep(0.001)
        self.held[name].add(engine)

    async def build(self, name: str, engine: str) -> str:
        self._check_alive(engine)
        job = self.jobs[name]
        slots = self.engines[engine]
        if job.platform and slots.platform and job.platform != slots.platform:
            self.violations.append(f"{name} ({job.platform}) built on {engine}")
        for need in {*job.needs, *job.after}:
            if engine not in self.held[need]:
                self.violations.append(f"{name} built on {engine} without {need}")
        self.running[engine] += 1
        self.started[engine] += 1
        if self.running[engine] > slots.slots:
            self.violations.append(f"{engine} ran {self.running[engine]} builds")
        try:
            await anyio.sleep(self.durations.get(name, 0.002))
            if self.started[engine] > self.dies_after.get(engine, 10**9):
                self.dead.add(engine)
            self._check_alive(engine)
        finally:
            self.running[engine] -= 1
        if name in self.failing:
            raise BuildError(f"build of {name} failed")
        self.completed[name] += 1
        self.placed[name] = engine
        self.held[name].add(engine)
        if name in self.fatal:
            self.fatal.discard(name)
            self.dead.add(engine)
        return ""

    async def push(self, name: str, engine: str) -> str:
        self._check_alive(engine)
        if engine not in self.held[name]:
            self.violations.append(f"pushed {name} from {engine}, which lacks it")
        await anyio.sleep(0.001)
        self.registry.add(name)
        return ""

    async def send(self, name: str, engine: str) -> None:
        self._check_alive(engine)
        if not self.jobs[name].portable:
            self.violations.append(f"sent {name} (publish: false) to the registry")
        if engine not in self.held[name]:
            self.violations.append(f"sent {name} from {engine}, which lacks it")
        await anyio.sleep(0.001)
        self.registry.add(name)

    async def fetch(self, name: str, engine: str) -> None:
        self._check_alive(engine)
        if name not in self.registry:
            self.violations.append(f"fetched {name} into {engine} before it reached the registry")
        await anyio.sleep(0.001)
        self.held[name].add(engine)

    async def alive(self, engine: str) -> bool:
        return engine not in self.dead


PLATFORMS = ("linux/amd64", "linux/arm64")


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[Job], list[Slots], dict[str, int]]:
    """A pool (home first), a DAG of jobs for it, and which engines die when."""
    engines = [
        Slots(f"e{i}", draw(st.integers(1, 3)), draw(st.sampled_from(PLATFORMS)))
        for i in range(draw(st.integers(1, 4)))
    ]
    platforms = sorted({e.platform for e in engines if e.platform})
    platform = draw(st.sampled_from(platforms))
    jobs: list[Job] = []
    for i in range(draw(st.integers(1, 18))):
        action = draw(st.sampled_from([Action.BUILD, Action.BUILD, Action.PULL, Action.NONE]))
        portable = action is not Action.BUILD or draw(st.integers(0, 3)) > 0
        needs: tuple[str, ...] = ()
        after: tuple[str, ...] = ()
        if action is Action.BUILD and jobs:
            needs = tuple(
                draw(st.lists(st.sampled_from([j.name for j in jobs]), unique=True, max_size=3))
            )
            after = tuple(
                n for n in needs if next(j for j in jobs if j.name == n).action is not Action.NONE
            )
        local = action is Action.NONE and draw(st.booleans())
        jobs.append(
            Job(
                f"img{i}",
                action,
                push=action is Action.BUILD and portable and draw(st.booleans()),
                after=after,
                needs=needs,
                estimate=draw(st.floats(0.0, 50.0)),
                platform=platform,
                portable=portable,
                local=local,
                published=action is Action.PULL or (action is Action.NONE and not local),
                home=draw(st.booleans()) and portable,
            )
        )
    dies: dict[str, int] = {}
    if len(engines) > 1 and draw(st.booleans()):
        victim = draw(st.sampled_from([e.name for e in engines[1:]]))
        dies[victim] = draw(st.integers(0, 3))
    return jobs, engines, dies


def run_pool(
    jobs: list[Job], engines: list[Slots], worker: PoolWorker, events: list[Event]
) -> dict[str, Outcome]:
    async def main() -> dict[str, Outcome]:
        scheduler = Scheduler(
            jobs, worker, RunLimits(), engines=engines, listener=events.append, watch=0.05
        )
        return await scheduler.run()

    return anyio.run(main)


@settings(max_examples=80, deadline=None)
@given(pools())
def test_pool_invariants_on_random_dags(
    pool: tuple[list[Job], list[Slots], dict[str, int]],
) -> None:
    jobs, engines, dies = pool
    by_name = {j.name: j for j in jobs}
    worker = PoolWorker(by_name, {e.name: e for e in engines}, dies_after=dies)
    events: list[Event] = []
    outcomes = run_pool(jobs, engines, worker, events)

    assert worker.violations == []
    # Work re-queued after an engine died completes once; nothing is built twice but
    # what was lost with an engine while something still needed it.
    rebuilt = Counter(e.image for e in events if "now lost" in e.detail)
    assert all(n <= 1 + rebuilt[name] for name, n in worker.completed.items()), worker.completed
    usable = [e for e in engines if e.platform == jobs[0].platform]
    for name, outcome in outcomes.items():
        job = by_name[name]
        if job.action is Action.BUILD and outcome.action == "built":
            assert 1 <= worker.completed[name] <= 1 + rebuilt[name]
            assert outcome.engine == worker.placed[name]
            if job.home:  # acquire's targets end in the home engine
                assert engines[0].name in worker.held[name]
        if not dies and usable and outcome.action in ("failed", "skipped"):
            # Without a loss, only a pool with no engine for the platform fails.
            assert engines[0].name in dies or not usable, outcome
    if not dies and usable:
        assert all(o.action not in ("failed", "skipped") for o in outcomes.values()), outcomes
    lost = [e for e in events if e.phase == "engine" and e.status == "lost"]
    assert {e.engine for e in lost} <= set(dies)
    # publish: false images stayed where they were built.
    for name, job in by_name.items():
        if not job.portable:
            assert name not in worker.registry or job.published


def test_a_build_goes_to_the_engine_that_holds_its_parents() -> None:
    """Locality: with free slots on every engine, the child follows its parent."""
    engines = [Slots("a", 2), Slots("b", 2), Slots("c", 2)]
    base = Job("base", Action.BUILD, estimate=1.0)
    child = Job("child", Action.BUILD, after=("base",), needs=("base",), estimate=1.0)
    worker = PoolWorker({"base": base, "child": child}, {e.name: e for e in engines})
    outcomes = run_pool([base, child], engines, worker, [])
    assert outcomes["child"].engine == outcomes["base"].engine
    assert worker.registry == set()  # nothing had to travel

    held = {"p": {"b"}, "q": {"b", "c"}}
    job = Job("j", Action.BUILD, needs=("p", "q"))
    assert choose_engine(job, ["a", "b", "c"], held, {"a": 3, "b": 1, "c": 2}) == "b"
    assert choose_engine(job, ["a", "c"], held, {"a": 3, "c": 2}) == "c"


def test_work_spreads_over_the_pool_and_parents_travel_through_the_registry() -> None:
    engines = [Slots("a", 1), Slots("b", 1), Slots("c", 1)]
    base = Job("base", Action.BUILD, push=True, estimate=1.0)
    leaves = [
        Job(f"leaf{i}", Action.BUILD, after=("base",), needs=("base",), estimate=5.0)
        for i in range(6)
    ]
    jobs = [base, *leaves]
    worker = PoolWorker({j.name: j for j in jobs}, {e.name: e for e in engines})
    events: list[Event] = []
    outcomes = run_pool(jobs, engines, worker, events)
    assert worker.violations == []
    assert {o.engine for o in outcomes.values()} == {"a", "b", "c"}
    fetches = [e for e in events if e.phase == "transfer" and e.status == "done"]
    assert {(e.detail, e.engine) for e in fetches} == {
        ("base", e) for e in ("a", "b", "c") if e != outcomes["base"].engine
    }
    assert predict_placement(jobs, engines).engines["base"] == "a"
    assert set(predict_placement(jobs, engines).engines.values()) == {"a", "b", "c"}


def test_publish_false_chains_stay_on_one_engine() -> None:
    engines = [Slots("a", 2), Slots("b", 2)]
    jobs = [
        Job("p1", Action.BUILD, portable=False),
        Job("p2", Action.BUILD, portable=False),
        Job("both", Action.BUILD, after=("p1", "p2"), needs=("p1", "p2"), portable=False),
        Job("top", Action.BUILD, after=("both",), needs=("both",), push=True),
    ]
    worker = PoolWorker({j.name: j for j in jobs}, {e.name: e for e in engines})
    outcomes = run_pool(jobs, engines, worker, [])
    assert worker.violations == []
    assert len({o.engine for o in outcomes.values()}) == 1
    assert worker.registry == {"top"}


def test_a_lost_engine_requeues_its_build_and_the_run_finishes() -> None:
    engines = [Slots("a", 1), Slots("b", 1)]
    jobs = [Job(f"i{n}", Action.BUILD, push=True, estimate=1.0) for n in range(4)]
    worker = PoolWorker(
        {j.name: j for j in jobs}, {e.name: e for e in engines}, dies_after={"b": 0}
    )
    events: list[Event] = []
    outcomes = run_pool(jobs, engines, worker, events)
    assert all(o.action == "built" and o.engine == "a" for o in outcomes.values()), outcomes
    assert [(e.engine, e.status) for e in events if e.phase == "engine"] == [("b", "lost")]
    requeued = [e for e in events if e.status == "requeued"]
    assert len(requeued) == 1
    assert requeued[0].engine == "b"
    assert worker.completed == Counter({j.name: 1 for j in jobs})


def test_a_build_that_fails_on_a_live_engine_is_not_retried() -> None:
    engines = [Slots("a", 1), Slots("b", 1)]
    jobs = [Job("bad", Action.BUILD), Job("good", Action.BUILD)]
    worker = PoolWorker(
        {j.name: j for j in jobs}, {e.name: e for e in engines}, failing=frozenset({"bad"})
    )
    outcomes = run_pool(jobs, engines, worker, [])
    assert outcomes["bad"].action == "failed"
    assert sum(worker.started.values()) == 2  # no second try elsewhere


def test_losing_every_engine_stops_the_run_with_one_error() -> None:
    engines = [Slots("a", 1), Slots("b", 1)]
    jobs = [Job(f"i{n}", Action.BUILD) for n in range(3)]
    worker = PoolWorker(
        {j.name: j for j in jobs}, {e.name: e for e in engines}, dies_after={"a": 0, "b": 0}
    )
    with pytest.raises(EngineError, match="every engine of the pool was lost"):
        run_pool(jobs, engines, worker, [])


@pytest.mark.parametrize("portable", [False, True], ids=["publish-false", "not-yet-sent"])
def test_a_lost_parent_is_built_again_on_a_live_engine(portable: bool) -> None:
    """The only copy of a parent goes with its engine (a publish: false one, or with a
    transfer registry one not sent yet): it is built again where its child can use
    it, and the child is released again then, instead of failing."""
    engines = [Slots("a", 1), Slots("b", 1)]
    jobs = [
        Job("x", Action.BUILD, push=True, estimate=10.0),
        Job("p", Action.BUILD, portable=portable, estimate=1.0),
        Job("c", Action.BUILD, after=("p",), needs=("p",), push=True, estimate=1.0),
    ]
    worker = PoolWorker(
        {j.name: j for j in jobs},
        {e.name: e for e in engines},
        fatal={"p"},
        durations={"x": 0.05},
    )
    events: list[Event] = []
    outcomes = run_pool(jobs, engines, worker, events)
    assert worker.violations == []
    assert {n: (o.action, o.engine) for n, o in outcomes.items()} == {
        "x": ("built", "a"),
        "p": ("built", "a"),
        "c": ("built", "a"),
    }
    assert worker.completed == Counter({"x": 1, "p": 2, "c": 1})
    assert [e.detail for e in events if e.image == "p" and e.status == "requeued"] == [
        "it was only on engine b, now lost"
    ]


def test_plan_predicts_the_run_s_placement_of_publish_false_groups() -> None:
    """The prediction uses the run's rule: publish: false parents a build needs together
    share an engine (their group is pinned), in the prediction as in the run."""
    engines = [Slots("a", 1), Slots("b", 1)]
    jobs = [
        Job("p1", Action.BUILD, portable=False, estimate=5.0),
        Job("p2", Action.BUILD, portable=False, estimate=5.0),
        Job("both", Action.BUILD, after=("p1", "p2"), needs=("p1", "p2"), portable=False),
        Job("free1", Action.BUILD, estimate=1.0),
    ]
    predicted = predict_placement(jobs, engines).engines
    assert predicted["p1"] == predicted["p2"] == predicted["both"]
    worker = PoolWorker({j.name: j for j in jobs}, {e.name: e for e in engines})
    outcomes = run_pool(jobs, engines, worker, [])
    assert outcomes["p1"].engine == outcomes["p2"].engine == outcomes["both"].engine
