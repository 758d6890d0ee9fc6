"""Placement by bytes over links (builds/links, builds/placement, store/links): what
transfers teach, what is kept across runs, and where builds go, on a fake pool whose
links have simulated rates (a fetch sleeps its bytes over its engine's rate)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest
import structlog

from mzbuild_async.builds.decisions import Workflow
from mzbuild_async.builds.jobs import Action, Job, Outcome, Slots
from mzbuild_async.builds.links import DEFAULT_BYTES, DEFAULT_RATE, MIN_BYTES, Links, link
from mzbuild_async.builds.placement import Placement, choose_engine, predict_placement
from mzbuild_async.builds.scheduler import Scheduler
from mzbuild_async.engine.endpoints import Endpoint
from mzbuild_async.model.options import Arch, BuildOptions
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.report.plan import plan_text
from mzbuild_async.source.repository import Repository
from mzbuild_async.store.history import BuildHistory
from mzbuild_async.store.integrity import write_json
from mzbuild_async.store.layout import HISTORY, LINKS
from mzbuild_async.store.links import LinkHistory
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
from mzbuild_async.workflow.options import RunOptions
from mzbuild_async.workflow.plan import plan_workflow
from mzbuild_async.workflow.results import RunPlan, RunResult
from mzbuild_async.workflow.run import run_workflow
from tests.conftest import MakeRepo

MB = 1_000_000
REG = "reg.test"


def test_a_transfer_teaches_its_links_rate_and_its_images_bytes() -> None:
    links = Links()
    assert links.rate("a", REG) == DEFAULT_RATE
    assert links.size("x") == DEFAULT_BYTES
    links.observe("a", REG, "x", 4 * MB, 2.0)
    assert links.rate("a", REG) == 2 * MB
    assert links.size("x") == 4 * MB
    links.observe("a", REG, "y", 2 * MB, 0.5)  # (this run's transfers summed: 6 MB in 2.5 s)
    assert links.rate("a", REG) == pytest.approx(2.4 * MB)
    # An engine not measured yet is as fast as the fastest measured; an image of
    # unknown size is the middle size known.
    assert links.rate("b", REG) == pytest.approx(2.4 * MB)
    assert links.size("z") == 3 * MB
    # A small transfer teaches the image's bytes, not the rate (round trips, not bytes).
    links.observe("b", REG, "tiny", MIN_BYTES - 1, 10.0)
    assert link("b", REG) not in links.rates
    # An image's bytes are its latest fetch's (the engine had some of its layers); a
    # push teaches the rate only.
    links.observe("a", REG, "x", MIN_BYTES, 0.1)
    assert links.size("x") == MIN_BYTES
    links.observe("a", REG, "x", 8 * MB, 0.1, fetched=False)
    assert links.size("x") == MIN_BYTES
    assert links.sizes["tiny"] == MIN_BYTES - 1
    # What earlier runs learned weighs half against this run's transfers.
    kept = Links({link("a", REG): 10 * MB})
    kept.observe("a", REG, "x", 2 * MB, 1.0)
    assert kept.rate("a", REG) == pytest.approx(6 * MB)


def test_what_was_learned_is_kept_and_bad_entries_are_one_warning(tmp_path: Path) -> None:
    kept = LinkHistory.load(tmp_path)
    assert (kept.rates, kept.sizes) == ({}, {})
    kept.save({link("a", REG): 2e6}, {"x": 5})
    again = LinkHistory.load(tmp_path)
    assert (again.rates, again.sizes) == ({link("a", REG): 2e6}, {"x": 5})
    bad_entries = {"rates": {"a": -1, "b": 3.0, "c": "fast"}, "sizes": {"x": 1.5, "y": 7}}
    write_json(kept.path, bad_entries)  # (a sound file: its entries are checked one by one)
    with structlog.testing.capture_logs() as logged:
        bad = LinkHistory.load(tmp_path)
    assert (bad.rates, bad.sizes) == ({"b": 3.0}, {"y": 7})
    warnings = [e["event"] for e in logged if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert str(kept.path) in warnings[0]
    kept.path.write_text("{not json")
    with structlog.testing.capture_logs() as logged:
        assert LinkHistory.load(tmp_path).rates == {}
    assert len([e for e in logged if e["log_level"] == "warning"]) == 1


def test_a_rate_not_measured_for_a_week_is_forgotten(tmp_path: Path) -> None:
    """Each kept rate carries when it was last measured: one measured again keeps the
    new time, one not measured keeps its own, and past a week a rate is forgotten (the
    link, once kept out of the work for being slow, is tried again). A file of rates
    without times counts them as measured when it is read."""
    day = 24 * 3600.0
    slow, fast = link("slow", REG), link("fast", REG)
    LinkHistory.load(tmp_path, now=0.0).save({slow: 1e5, fast: 1e8}, {}, [slow, fast], now=1.0)
    kept = LinkHistory.load(tmp_path, now=2 * day)
    assert kept.rates == {slow: 1e5, fast: 1e8}
    kept.save({slow: 1e5, fast: 2e8}, {}, [fast], now=3 * day)  # (only fast measured)
    assert LinkHistory.load(tmp_path, now=7 * day).rates == {slow: 1e5, fast: 2e8}
    later = LinkHistory.load(tmp_path, now=8 * day)
    assert later.rates == {fast: 2e8}
    assert later.measured == {fast: 3 * day}
    assert LinkHistory.load(tmp_path, now=11 * day).rates == {}
    write_json(later.path, {"rates": {slow: 1e5}, "sizes": {}})  # (before times were kept)
    old = LinkHistory.load(tmp_path, now=20 * day)
    assert old.rates == {slow: 1e5}
    assert old.measured == {slow: 20 * day}


def _jobs(*jobs: Job) -> dict[str, Job]:
    return {job.name: job for job in jobs}


def test_the_engine_chosen_is_the_one_quickest_to_bring_the_inputs_to() -> None:
    """Bytes over rates, not counts: ``a`` holds one of the two inputs but lacks the
    big one; ``b`` lacks only the small one."""
    jobs = _jobs(
        Job("big", Action.NONE, registry=REG, published=True),
        Job("small", Action.NONE, registry=REG, published=True),
        Job("app", Action.BUILD, needs=("big", "small"), registry=REG),
    )
    held = {"big": {"b"}, "small": {"a"}, "app": set()}
    links = Links({link("a", REG): 1 * MB, link("b", REG): 1 * MB}, {"big": 50 * MB, "small": MB})
    placement = Placement(jobs, {}, ["a", "b"], held, lambda n: True, "a", links=links)
    assert placement.choose(jobs["app"], ["a", "b"], {"a": 1, "b": 1}) == "b"
    # Counting held images alone ties them (the first would win).
    assert choose_engine(jobs["app"], ["a", "b"], held, {"a": 1, "b": 1}) == "a"
    # A slow link can outweigh the bytes: b's link carries 10 kB/s (1 MB: 100 s).
    links.rates[link("b", REG)] = 0.01 * MB
    assert placement.choose(jobs["app"], ["a", "b"], {"a": 1, "b": 1}) == "a"


def test_a_build_waits_for_a_busy_engine_when_that_is_sooner_than_a_slow_link() -> None:
    jobs = _jobs(
        Job("base", Action.NONE, registry=REG, published=True),
        Job("app", Action.BUILD, needs=("base",), registry=REG),
    )
    held = {"base": {"fast"}, "app": set()}
    links = Links({link("slow", REG): 0.5 * MB}, {"base": 10 * MB})  # 20 s over slow's link
    placement = Placement(jobs, {}, ["fast", "slow"], held, lambda n: True, "fast", links=links)
    app = jobs["app"]
    assert placement.worth_waiting(app, ["slow"], {"fast": 3.0}) == "fast"
    # Not when the wait is longer than the transfer, nor when it saves under a second.
    assert placement.worth_waiting(app, ["slow"], {"fast": 25.0}) is None
    links.rates[link("slow", REG)] = 20 * MB  # (0.5 s)
    assert placement.worth_waiting(app, ["slow"], {"fast": 0.1}) is None
    assert placement.worth_waiting(app, ["slow"], {}) is None


def test_plan_forecasts_the_bytes_over_each_link() -> None:
    jobs = [
        Job("base", Action.BUILD, push=True, registry=REG, estimate=5.0),
        Job("a1", Action.BUILD, push=True, after=("base",), needs=("base",), registry=REG),
        Job("a2", Action.BUILD, push=True, after=("base",), needs=("base",), registry=REG),
    ]
    links = Links({link("e1", REG): 2 * MB}, {"base": 8 * MB, "a1": MB, "a2": MB})
    forecast = predict_placement(jobs, [Slots("e1", 1), Slots("e2", 1)], links)
    assert forecast.engines["base"] == "e1"
    # The dependents go one to each engine (both free): e2 fetches base once; each
    # engine pushes what it built.
    assert sorted(forecast.engines.values()) == ["e1", "e1", "e2"]
    e1, e2 = forecast.links[link("e1", REG)], forecast.links[link("e2", REG)]
    assert (e1.images, e1.bytes, e1.rate) == (2, 9 * MB, 2 * MB)
    assert (e2.images, e2.bytes, e2.rate) == (2, 9 * MB, None)  # (base in, its own out)
    assert e1.unsized == e2.unsized == 0
    unknown = predict_placement(jobs, [Slots("e1", 1), Slots("e2", 1)], Links())
    assert unknown.links[link("e2", REG)].unsized == 2  # (nothing moved yet: guessed)
    assert e1.seconds == pytest.approx(4.5)
    assert e2.seconds == pytest.approx(4.5)  # (unmeasured: as fast as the fastest known)


# -- a pool whose links have rates ---------------------------------------------------------


@dataclass
class LinkedPool:
    """A fake pool: each engine's link carries ``rates[engine]`` bytes per second; a
    fetch of an image moves its ``sizes`` (and takes that long)."""

    rates: dict[str, float]
    sizes: dict[str, int]
    build_seconds: float = 0.05
    fetched: list[tuple[str, str]] = field(default_factory=list)
    built: dict[str, str] = field(default_factory=dict)

    async def cargo(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        for name in names:
            landed(name)

    async def pull(self, name: str, engine: str) -> None:
        await anyio.sleep(0)

    async def build(self, name: str, engine: str) -> str:
        await anyio.sleep(self.build_seconds)
        self.built[name] = engine
        return ""

    async def push(self, name: str, engine: str) -> str:
        await anyio.sleep(self.sizes.get(name, 0) / self.rates[engine])
        return ""

    def pushed_bytes(self, name: str) -> int | None:
        return self.sizes.get(name)

    async def send(self, name: str, engine: str) -> int | None:
        await anyio.sleep(self.sizes.get(name, 0) / self.rates[engine])
        return self.sizes.get(name, 0)

    async def fetch(self, name: str, engine: str) -> int | None:
        self.fetched.append((name, engine))
        await anyio.sleep(self.sizes.get(name, 0) / self.rates[engine])
        return self.sizes.get(name, 0)

    async def alive(self, engine: str) -> bool:
        return True


def _leaves(n: int) -> list[Job]:
    """A published base and ``n`` builds that need it, none of them held anywhere."""
    return [
        Job("base", Action.NONE, registry=REG, published=True),
        *(Job(f"leaf{i}", Action.BUILD, needs=("base",), registry=REG, estimate=0.05)
          for i in range(n)),
    ]  # fmt: skip


def _run(pool: LinkedPool, jobs: list[Job], links: Links | None = None) -> Scheduler:
    scheduler = Scheduler(
        jobs, pool, engines=[Slots("fast", 1), Slots("slow", 1)], links=links, heartbeat=60
    )

    async def main() -> dict[str, Outcome]:
        return await scheduler.run()

    outcomes = anyio.run(main)
    assert all(o.action.value in ("built", "none", "pulled") for o in outcomes.values()), outcomes
    return scheduler


def test_the_pool_learns_each_links_rate_from_its_fetches() -> None:
    """Both engines fetch the base (neither holds it): each link's rate is what its
    fetch measured; the base's bytes are what moved."""
    pool = LinkedPool({"fast": 100 * MB, "slow": 2 * MB}, {"base": MB})
    links = _run(pool, _leaves(2)).state.links
    assert sorted(pool.fetched) == [("base", "fast"), ("base", "slow")]
    assert links.sizes == {"base": MB}
    assert 1.2 * MB < links.rates[link("slow", REG)] <= 2 * MB
    assert links.rates[link("fast", REG)] > 5 * links.rates[link("slow", REG)]


def test_pushes_teach_their_links_rate_too() -> None:
    """Two bases built at once, one on each engine, each pushed from there: both links'
    rates are what the pushes measured; not the bases' bytes (what a push moves is what
    the registry lacks, not what a fetch would)."""
    pool = LinkedPool({"fast": 100 * MB, "slow": 2 * MB}, {"b1": MB, "b2": MB})
    jobs = [Job(f"b{i}", Action.BUILD, push=True, registry=REG, estimate=0.05) for i in (1, 2)]
    links = _run(pool, jobs).state.links
    assert set(pool.built.values()) == {"fast", "slow"}
    assert links.sizes == {}
    assert 1.2 * MB < links.rates[link("slow", REG)] <= 2 * MB
    assert links.rates[link("fast", REG)] > 5 * links.rates[link("slow", REG)]


def test_a_link_known_to_be_slow_gets_no_build_that_must_fetch_through_it() -> None:
    """With the slow link known (1 MB there takes 5 s), every build waits for the fast
    engine (a few hundredths of a second each); not knowing it, the slow engine takes
    one and fetches through its link."""
    rates = {"fast": 100 * MB, "slow": 0.2 * MB}
    known = Links({link("fast", REG): 100 * MB, link("slow", REG): 0.2 * MB}, {"base": MB})
    pool = LinkedPool(rates, {"base": MB})
    _run(pool, _leaves(4), known)
    assert set(pool.built.values()) == {"fast"}
    assert pool.fetched == [("base", "fast")]
    unaware = LinkedPool({"fast": 100 * MB, "slow": MB}, {"base": 300_000}, build_seconds=0.01)
    _run(unaware, _leaves(2))
    assert ("base", "slow") in unaware.fetched


# -- the in-memory engine, its links slowed -------------------------------------------------


def test_a_pool_of_in_memory_engines_keeps_builds_off_a_slow_link(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    """Two in-memory engines whose links carry 100 MB/s and 100 kB/s (their pulls and
    pushes take an image's bytes over that), the rates known from earlier runs: the
    base (300 kB) would take 3 s to reach the slow engine, so every build waits for
    the fast one instead; ``plan`` says so beforehand, with the bytes per link."""
    files = {
        "base/mzbuild.yml": "name: base\n",
        "base/Dockerfile": "FROM scratch\nCOPY blob /blob\n",
        "base/blob": "x" * 300_000,
    }
    for i in range(3):
        files |= {
            f"leaf{i}/mzbuild.yml": f"name: leaf{i}\n",
            f"leaf{i}/Dockerfile": "MZFROM base\nCOPY n /n\n",
            f"leaf{i}/n": f"{i}\n",
        }
    root, cache, host = make_repo(files), tmp_path / "cache", "reg.test"
    rates = {"fast": 100 * MB, "slow": 0.1 * MB}
    LinkHistory(cache / LINKS).save({link(e, host): r for e, r in rates.items()}, {"base": 300_000})
    BuildHistory(cache / HISTORY, dict.fromkeys(("base", "leaf0", "leaf1", "leaf2"), 0.05)).save()

    async def main() -> tuple[RunPlan, RunResult]:
        repo = await Repository.open(
            root, BuildOptions(arch=Arch.X86_64, image_registry=f"{host}/u")
        )
        registry = MemoryRegistry()
        async with RegistryClient(
            transport=registry.transport(), retry=no_wait(2), deadline=10
        ) as client:
            for name, rate in rates.items():
                MemoryEngine.register(MemoryEngine(name=name, client=client, link_rate=rate))
            engines = tuple(Endpoint(n, f"memory://{n}", slots=1) for n in rates)
            pool = RunOptions(tiers=("memory", "registry"), jobs=2, engines=engines)
            targets = list(repo.images)
            plan = await plan_workflow(
                repo, Workflow.ENSURE, targets, cache_dir=cache, client=client,
                tiers=pool.tiers, options=pool,
            )  # fmt: skip
            result = await run_workflow(
                repo, Workflow.ENSURE, targets, cache_dir=cache, client=client, options=pool
            )
        return plan, result

    plan, result = anyio.run(main)
    assert result.ok, result.to_json()
    assert {n: r.engine for n, r in result.images.items()} == dict.fromkeys(result.images, "fast")
    assert not [c for c in MemoryEngine.named("slow").calls if c[0] in ("build", "pull")]
    assert dict(plan.placement) == dict.fromkeys(result.images, "fast")
    fast = plan.links[link("fast", host)]
    assert (fast.images, fast.bytes, fast.rate) == (4, 1_200_000, 100 * MB)  # (4 pushes)
    assert link("slow", host) not in plan.links
    text = plan_text(plan)
    # (base's bytes were learned; the leaves', never moved, are guessed as the median)
    assert (
        f"link fast<->{host}: 4 images, 1.2 MB expected (at 100.0 MB/s: 0.0 s;"
        " 3 of unknown size, guessed)" in text
    )
    assert plan.to_json()["links"][link("fast", host)]["bytes"] == 1_200_000


def test_a_publish_false_parent_on_an_engine_cut_from_the_registry_is_named() -> None:
    """The only engine holding a ``publish: false`` parent cannot reach the registry
    the build must push to: the failure names the parent, the engine and the cut, not
    "parents on different engines"."""
    jobs = _jobs(
        Job("hidden", Action.BUILD, portable=False, registry=REG),
        Job("tool", Action.BUILD, push=True, after=("hidden",), needs=("hidden",), registry=REG),
    )
    held = {"hidden": {"a"}, "tool": set()}
    slots = {e: Slots(e, 1) for e in ("a", "b")}
    placement = Placement(jobs, slots, ["a", "b"], held, lambda n: False, "a")
    placement.cut["a"] = {REG: "dial tcp: network is unreachable"}
    assert placement.usable(jobs["tool"]) == []
    assert placement.why_not(jobs["tool"]) == (
        "hidden (publish: false) is only on engine a, which cannot reach reg.test"
        " (dial tcp: network is unreachable)"
    )
