"""CI pipelines cut by ``pipeline``: makespan against the bound and against one build step.

In virtual time, on the Materialize shape (the 49 real images and their
MZFROM edges, seeded durations; the 17 cargo images wait for a 600 s cargo
build, which each step holding any of them runs once, at its start) and on
random DAGs of 1,000 images (without cargo images), for 2, 4, 8 and 16 agents (each step costs
``--startup`` seconds before its first build and runs its images on
``--jobs`` slots), it prints:

- the makespan of the cut pipeline, simulated here on its own (each step
  starts when the steps it depends on have ended and an agent is free, and
  takes start-up plus its builds on its slots), and the partitioner's own
  estimate;
- the bound: start-up + max(critical path, work / (agents x slots));
- Materialize's way: one build step per arch on one agent (start-up + every
  build on that agent's slots).

Target (issue 14): with 8 agents, <= 1.3x the bound on the 1,000-image DAGs.

Usage: ``python benchmarks/pipeline.py [--startup 30] [--jobs 4] [--seed 1]``
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from schedule import Dag, materialize_dag, random_dag  # noqa: E402

from mzbuild_async.pipeline.partition import Partition, partition, step_seconds  # noqa: E402

CARGO = "(cargo build)"


def with_cargo(
    dag: Dag,
) -> tuple[list[str], dict[str, set[str]], dict[str, float], dict[str, float]]:
    """The DAG, and each cargo image's release: after its step's own cargo build."""
    deps = {name: set(dag.deps[name]) for name in dag.names}
    released = dict.fromkeys(dag.cargo, dag.cargo_seconds)
    return list(dag.names), deps, dict(dag.seconds), released


def simulate(
    cut: Partition,
    deps: Mapping[str, set[str]],
    seconds: Mapping[str, float],
    released: Mapping[str, float],
    agents: int,
    startup: float,
    jobs: int,
) -> float:
    """Run the steps on ``agents`` agents, each when its dependencies have ended."""
    ended: dict[str, float] = {}
    free = [0.0] * agents
    pending = list(cut.steps)
    while pending:
        # The first step (in pipeline order) whose dependencies have all ended.
        step = next(s for s in pending if all(k in ended for k in s.depends_on))
        pending.remove(step)
        agent = min(range(agents), key=free.__getitem__)
        start = max([free[agent], *(ended[k] for k in step.depends_on)])
        ended[step.key] = free[agent] = (
            start + startup + step_seconds(step.images, deps, seconds, jobs, released)
        )
    return max(ended.values(), default=0.0)


def critical_path(
    names: Sequence[str],
    deps: Mapping[str, set[str]],
    seconds: Mapping[str, float],
    released: Mapping[str, float],
) -> float:
    """Earliest end of the last build with unlimited agents (cargo images after cargo)."""
    finish: dict[str, float] = {}
    for name in names:
        start = max([released.get(name, 0.0), *(finish[d] for d in deps[name])])
        finish[name] = start + seconds[name]
    return max(finish.values(), default=0.0)


def report(title: str, dag: Dag, args: argparse.Namespace) -> dict[int, float]:
    """Print one DAG's table; the ratio to the bound per agent count."""
    names, deps, seconds, released = with_cargo(dag)
    path = critical_path(names, deps, seconds, released)
    work = sum(seconds.values())
    one = args.startup + step_seconds(names, deps, seconds, args.jobs, released)
    print(f"\n{title}: {len(dag.names)} images ({len(dag.cargo)} after one cargo build)")
    print(f"  one build step on one agent (Materialize's way): {one:9.1f} s")
    print(
        f"  {'agents':>6} {'steps':>6} {'makespan':>10} {'estimate':>10} {'bound':>10}"
        f" {'ratio':>6} {'vs one step':>11}"
    )
    ratios: dict[int, float] = {}
    for agents in (2, 4, 8, 16):
        cut = partition(
            names,
            deps,
            seconds,
            released=released,
            agents=agents,
            startup=args.startup,
            jobs=args.jobs,
        )
        makespan = simulate(cut, deps, seconds, released, agents, args.startup, args.jobs)
        bound = args.startup + max(path, work / (agents * args.jobs))
        ratios[agents] = makespan / bound
        print(
            f"  {agents:>6} {len(cut.steps):>6} {makespan:>9.1f}s {cut.makespan:>9.1f}s"
            f" {bound:>9.1f}s {makespan / bound:>5.2f}x {one / makespan:>10.2f}x"
        )
    return ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--startup", type=float, default=30.0, help="seconds per step before its first build"
    )
    parser.add_argument("--jobs", type=int, default=4, help="builds at once within a step")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"per-step start-up {args.startup:g} s, {args.jobs} builds at once per step")
    report("Materialize shape", materialize_dag(rng), args)
    worst = 0.0
    for i in range(3):
        dag = random_dag(1000, rng, durations=True)
        dag = replace(dag, cargo=frozenset(), landing={})  # (cargo: the Materialize shape's)
        ratios = report(f"Random DAG #{i + 1}", dag, args)
        worst = max(worst, ratios[8])
    met = "met" if worst <= 1.3 else "NOT met"
    print(
        "\ntarget: with 8 agents <= 1.3x the bound on the 1,000-image DAGs:"
        f" {met} (worst {worst:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
