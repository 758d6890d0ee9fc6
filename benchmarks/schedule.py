"""How close the scheduler gets to the best possible schedule, and what it costs.

With fake workers that sleep scaled durations, on the Materialize shape
(the 49 real images and their MZFROM edges from tests/corpus; the 17 with a
cargo-build pre-image wait for the one batched cargo build) and on random
DAGs, prints:

- the makespan of our scheduler, the lower bound max(critical path, total
  build work / slots) with each cargo image released when its binaries
  land (seeded moments of the cargo build; on the Materialize shape the
  big binaries last), and their ratio. The makespan is measured in
  virtual time (the real scheduler on trio's autojumping mock clock: exact,
  at any size) and, for the Materialize shape, also in real time (sleeps
  scaled by ``--scale`` and scaled back: includes the event loop's timer
  slack). The cargo-gated bound (cargo + the Docker builds that must
  follow it / slots) is the best any schedule that waits for the whole
  cargo build can do; the same scheduler with every image reported at
  cargo's end shows it;
- the same DAGs scheduled level by level (werf: a level starts when the
  previous one is done) and one at a time in topological order (the
  original mzbuild), simulated with the same durations;
- the scheduler's own overhead: zero-duration work on random DAGs of
  100, 1,000 and 10,000 images, in microseconds per image.

Targets: at most 1.05x the bound on the Materialize shape with ``--jobs
4`` (issue 4), below the cargo-gated bound there (issue 13); under 100 µs
per image at 10,000 images.

Usage: ``python benchmarks/schedule.py [--jobs 4] [--scale 0.001] [--seed 1]``
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.lowlevel

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mzbuild_async.builds.scheduler import Action, Job, OneEngine, RunLimits, Scheduler  # noqa: E402

CORPUS = ROOT / "tests" / "corpus" / "materialize"
#: Seconds of the one batched cargo build (an optimized build of the workspace).
CARGO_SECONDS = 600.0
#: Materialize images whose binaries take most of the workspace: they link last.
BIG_BINARIES = frozenset({"materialized", "environmentd", "clusterd", "sqllogictest", "testdrive"})


@dataclass(frozen=True)
class Dag:
    """Images in dependency order, their dependencies, durations and cargo flags."""

    names: list[str]
    deps: Mapping[str, tuple[str, ...]]
    seconds: Mapping[str, float]
    cargo: frozenset[str]
    cargo_seconds: float
    #: Seconds into the cargo build when each cargo image's binaries are linked.
    landing: Mapping[str, float]


def materialize_dag(rng: random.Random) -> Dag:
    """The real Materialize DAG with realistic build times (seconds)."""
    data = json.loads((CORPUS / "dag.json").read_text())
    cargo = frozenset(
        name
        for name, entry in data.items()
        if "cargo-build" in (CORPUS / entry["dir"] / "mzbuild.yml").read_text()
    )
    deps = {name: tuple(sorted(set(entry["mzfrom"]))) for name, entry in data.items()}
    names = _topological(deps)
    seconds: dict[str, float] = {}
    for name in names:
        if name in cargo:
            # Copying and layering large binaries: tens of seconds.
            seconds[name] = rng.uniform(15.0, 45.0)
        elif len([n for n in names if name in deps[n]]) >= 3:
            # Base images others build on: package installs.
            seconds[name] = rng.uniform(30.0, 90.0)
        else:
            seconds[name] = rng.uniform(5.0, 60.0)
    # The big binaries (most of the workspace below them) link last; the
    # small tools are spread over the build.
    landing = {
        name: CARGO_SECONDS
        * (rng.uniform(0.9, 1.0) if name in BIG_BINARIES else rng.uniform(0.25, 0.85))
        for name in sorted(cargo)
    }
    return Dag(names, deps, seconds, cargo, CARGO_SECONDS, landing)


def random_dag(count: int, rng: random.Random, *, durations: bool) -> Dag:
    """``count`` images, each built on 0-3 random earlier ones."""
    names = [f"img{i}" for i in range(count)]
    deps = {
        name: tuple(sorted(set(rng.sample(names[:i], min(i, rng.randint(0, 3))))))
        for i, name in enumerate(names)
    }
    seconds = {n: rng.uniform(5.0, 120.0) if durations else 0.0 for n in names}
    cargo = frozenset(n for n in names if durations and rng.random() < 0.1)
    landing = {n: CARGO_SECONDS * rng.uniform(0.2, 1.0) for n in sorted(cargo)}
    return Dag(names, deps, seconds, cargo, CARGO_SECONDS if cargo else 0.0, landing)


def _topological(deps: Mapping[str, Sequence[str]]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for dep in deps[name]:
            visit(dep)
        order.append(name)

    for name in sorted(deps):
        visit(name)
    return order


# -- bounds and peers (simulated) -------------------------------------------------


def critical_path(dag: Dag, *, gated: bool = True) -> float:
    """Earliest finish of the last image with unlimited slots: cargo images start
    after the whole cargo build (``gated``) or when their binaries land."""
    finish: dict[str, float] = {}
    for name in dag.names:
        start = max((finish[d] for d in dag.deps[name]), default=0.0)
        if name in dag.cargo:
            start = max(start, dag.cargo_seconds if gated else dag.landing[name])
        finish[name] = start + dag.seconds[name]
    return max(finish.values(), default=0.0)


def bounds(dag: Dag, slots: int) -> tuple[float, float]:
    """The simple bound (cargo images released as their binaries land), and the
    cargo-gated bound (every cargo image after the whole cargo build)."""
    work = sum(dag.seconds.values())
    simple = max(critical_path(dag, gated=False), work / slots)
    after_cargo = sum(dag.seconds[n] for n in dag.cargo)
    gated = max(
        critical_path(dag),
        work / slots,
        dag.cargo_seconds + after_cargo / slots if dag.cargo else 0.0,
    )
    return simple, gated


def levels(dag: Dag) -> list[list[str]]:
    """Images grouped by dependency depth."""
    depth: dict[str, int] = {}
    for name in dag.names:
        depth[name] = 1 + max((depth[d] for d in dag.deps[name]), default=-1)
    grouped: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in dag.names:
        grouped[depth[name]].append(name)
    return grouped


def level_by_level(dag: Dag, slots: int) -> float:
    """Makespan when each level starts only after the previous level is done."""
    now = 0.0
    for level in levels(dag):
        free = [now] * slots
        end = now
        for name in level:
            free.sort()
            start = free[0]
            if name in dag.cargo:
                start = max(start, dag.cargo_seconds)
            free[0] = start + dag.seconds[name]
            end = max(end, free[0])
        now = end
    return now


def one_at_a_time(dag: Dag) -> float:
    """Makespan of the original: the cargo build, then each image in turn."""
    return dag.cargo_seconds + sum(dag.seconds.values())


# -- ours (a real run) -------------------------------------------------------------


@dataclass
class SleepingWorker(OneEngine):
    """Sleeps each image's scaled duration."""

    dag: Dag
    scale: float
    #: Report every image at the end of cargo (as one cargo gate would).
    gated: bool = False

    async def cargo(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        now = 0.0
        if not self.gated:
            for name in sorted(names, key=lambda n: self.dag.landing[n]):
                await anyio.sleep((self.dag.landing[name] - now) * self.scale)
                now = self.dag.landing[name]
                landed(name)
        await anyio.sleep((self.dag.cargo_seconds - now) * self.scale)

    async def pull(self, name: str, engine: str = "") -> None:
        await anyio.lowlevel.checkpoint()

    async def build(self, name: str, engine: str = "") -> None:
        seconds = self.dag.seconds[name] * self.scale
        if seconds:
            await anyio.sleep(seconds)
        else:
            await anyio.lowlevel.checkpoint()

    async def push(self, name: str, engine: str = "") -> str:
        await anyio.lowlevel.checkpoint()
        return ""


def jobs_of(dag: Dag) -> list[Job]:
    """One build job per image, estimates exact (as after a few runs of history)."""
    return [
        Job(
            name,
            Action.BUILD,
            after=dag.deps[name],
            cargo=name in dag.cargo,
            estimate=dag.seconds[name] + (dag.cargo_seconds if name in dag.cargo else 0.0),
            registry="registry.test",
        )
        for name in dag.names
    ]


def ours(dag: Dag, slots: int, scale: float) -> tuple[float, float]:
    """(makespan in unscaled seconds, wall seconds) of a real scheduler run."""
    jobs = jobs_of(dag)

    async def main() -> float:
        started = time.perf_counter()
        worker = SleepingWorker(dag, scale)
        outcomes = await Scheduler(jobs, worker, RunLimits(jobs=slots)).run()
        assert all(o.action == "built" for o in outcomes.values())
        return time.perf_counter() - started

    wall = anyio.run(main)
    return wall / scale if scale else wall, wall


def ours_virtual(dag: Dag, slots: int, *, gated: bool = False) -> float:
    """Makespan of the real scheduler in virtual time (trio's autojumping clock);
    ``gated``: cargo reports every image at its end (the scheduler before issue 13)."""
    from trio.testing import MockClock

    jobs = jobs_of(dag)

    async def main() -> float:
        started = anyio.current_time()
        await Scheduler(jobs, SleepingWorker(dag, 1.0, gated), RunLimits(jobs=slots)).run()
        return anyio.current_time() - started

    return anyio.run(
        main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )


def overhead(count: int, rng: random.Random, repeat: int = 3) -> float:
    """Microseconds of scheduler time per image with zero-duration work (best of runs)."""
    dag = random_dag(count, rng, durations=False)
    best = min(ours(dag, 4, 0.0)[1] for _ in range(repeat))
    return best / count * 1e6


def report(title: str, dag: Dag, slots: int, scale: float | None) -> tuple[float, bool]:
    """Print one DAG's figures; returns our (virtual-time) ratio to the simple bound and
    whether we finished below the cargo-gated bound."""
    makespan = ours_virtual(dag, slots)
    at_the_end = ours_virtual(dag, slots, gated=True)
    real = ours(dag, slots, scale)[0] if scale else None
    simple, gated = bounds(dag, slots)
    levelled = level_by_level(dag, slots)
    serial = one_at_a_time(dag)
    print(f"\n{title}: {len(dag.names)} images, {len(dag.cargo)} behind cargo, --jobs {slots}")
    print(
        f"  lower bound max(critical path, work/slots)   {simple:9.1f} s  (binaries as they land)"
    )
    print(f"  cargo-gated bound (all after cargo's end)    {gated:9.1f} s")
    print(f"  {'schedule':<44} {'makespan':>9}   {'/bound':>6}  {'/gated':>8}")
    rows = [("mzbuild_async (virtual time)", makespan)]
    if real is not None:
        rows.append(("mzbuild_async (real time, scaled sleeps)", real))
    rows.append(("mzbuild_async, cargo images after cargo's end", at_the_end))
    rows += [("level by level (werf)", levelled), ("one at a time (original mzbuild)", serial)]
    for name, value in rows:
        print(f"  {name:<44} {value:9.1f} s {value / simple:6.3f}x {value / gated:8.3f}x")
    return makespan / simple, makespan < gated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--scale", type=float, default=0.001, help="real seconds per second")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    ratio, below_gate = report("Materialize shape", materialize_dag(rng), args.jobs, args.scale)
    print(f"  target: <= 1.05x the bound: {'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.3f}x)")
    print(f"  target: below the cargo-gated bound: {'met' if below_gate else 'NOT met'}")
    for count in (1_000, 10_000):
        report("Random DAG", random_dag(count, rng, durations=True), args.jobs, None)

    print("\nScheduler overhead, zero-duration work, best of 3 runs:")
    for count in (100, 1_000, 10_000):
        micros = overhead(count, rng)
        print(f"  {count:>6} images: {micros:7.1f} µs per image")
    print(f"  target: < 100 µs per image at 10,000: {'met' if micros < 100 else 'NOT met'}")


if __name__ == "__main__":
    main()
