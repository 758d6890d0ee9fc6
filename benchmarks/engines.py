"""Builds across a pool of real Docker engines: makespan against its bound, and the speed-up.

A generated repository of ``--images`` ``FROM scratch`` images in a wide DAG
whose builds are ``RUN sleep S`` steps (seeded, 1-4 s: they cost no CPU, so
two cores suffice), run as ``ensure --all`` with 1, 2 and 3 engines (the
main engine, then ``e2`` on a unix socket and ``e3`` over mutual-TLS TCP,
started by ``scripts/engines``) at ``--jobs`` slots per engine, each against
a fresh repository (new fingerprints) and one local registry.

Per pool it prints the makespan (the ``ensure`` process, wall clock), the
lower bound max(critical path, work / total slots) from the build seconds
measured in that same run (so Docker's own per-build overhead is in both),
their ratio, the transfers between engines, and the speed-up over one
engine. All runs share one cache directory, as CI keeps it: a first,
unmeasured run records the build history the scheduler's critical-path
priorities come from. Targets (issue 12): <= 1.25x the bound with 3
engines, >= 2.4x faster than one engine.

Usage: ``python benchmarks/engines.py [--images 24] [--jobs 2] [--seed 1]`` (root: it
starts engines).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pool import Sleepy, engines, make_sleepy_repo  # noqa: E402
from tests.support.registry import run_registry  # noqa: E402


def wide_dag(count: int, seed: int) -> list[Sleepy]:
    """A wide DAG: a sixth of the images are roots, each other image builds on one or
    two images of the first half before it (so chains stay short and levels wide)."""
    rng = random.Random(seed)
    roots = max(1, count // 6)
    images = [Sleepy(f"img{i:02d}", (), rng.randint(1, 4)) for i in range(roots)]
    for i in range(roots, count):
        earlier = [image.name for image in images[: max(1, i // 2)]]
        parents = tuple(sorted(rng.sample(earlier, min(len(earlier), rng.choice((1, 1, 2))))))
        images.append(Sleepy(f"img{i:02d}", parents, rng.randint(1, 4)))
    return images


def bound(images: Sequence[Sleepy], seconds: Mapping[str, float], slots: int) -> float:
    """max(critical path, total work / slots) for these build durations."""
    finish: dict[str, float] = {}
    for image in images:  # parents come first
        finish[image.name] = seconds[image.name] + max(
            (finish[p] for p in image.parents), default=0.0
        )
    return max(*finish.values(), sum(seconds.values()) / slots)


def run_pool(
    images: Sequence[Sleepy], pool: Sequence[str], env: Mapping[str, str], args: argparse.Namespace
) -> dict[str, Any]:
    """One ``ensure --all`` on ``pool`` of a fresh repository (new fingerprints, the
    build history of the earlier runs); its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        repo = make_sleepy_repo(work / "repo", images)
        report = work / "report.json"
        command = [
            sys.executable,
            "-m",
            "mzbuild_async",
            "ensure",
            "--all",
            "--repo",
            str(repo),
            "--image-registry",
            f"{args.registry}/bench",
            "--cache-dir",
            str(args.cache_dir),
            "--jobs",
            str(args.jobs),
            "--report",
            str(report),
            "-q",
            *(flag for engine in pool for flag in ("--engine", engine)),
        ]
        environ = {
            **env,
            "PYTHONPATH": str(ROOT),
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        }
        started = time.perf_counter()
        done = subprocess.run(command, env=environ, capture_output=True, text=True, check=False)
        makespan = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"ensure failed on {len(pool)} engines:\n{done.stdout}{done.stderr}")
        document = json.loads(report.read_text())
    seconds = {
        s["track"]: s["end"] - s["start"]
        for s in document["steps"]
        if s["phase"] == "build" and s["status"] == "done"
    }
    nominal = {image.name: float(image.seconds) for image in images}
    slots = args.jobs * len(pool)
    return {
        "engines": len(pool),
        "slots": slots,
        "makespan": makespan,
        "bound": bound(images, seconds, slots),
        "work": sum(seconds.values()),
        "nominal_bound": bound(images, nominal, slots),
        "transfers": sum(e["transfers"] for e in document["engines"].values()),
        "builds": {name: e["builds"] for name, e in document["engines"].items()},
    }


def main() -> int:
    """Start the engines and the registry, run each pool, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--jobs", type=int, default=2, help="slots per engine")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    env = engines("e2", "e3")
    tls = {"DOCKER_CERT_PATH": env["E3_CERTS"], "DOCKER_TLS_VERIFY": "1", "HOME": "/root"}
    pools = [
        ["unix:///var/run/docker.sock"],
        ["unix:///var/run/docker.sock", env["E2"]],
        ["unix:///var/run/docker.sock", env["E2"], env["E3"]],
    ]
    images = wide_dag(args.images, args.seed)
    work = sum(image.seconds for image in images)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, run_registry(Path(tmp) / "registry") as registry:
        args.registry = registry.host
        args.cache_dir = Path(tmp) / "cache"
        # As in CI, the cache directory (and its build history: critical paths
        # from measured seconds) is kept between runs: one run to learn it.
        run_pool(images, pools[-1], tls, args)
        for pool in pools:
            rows.append(run_pool(images, pool, tls, args))
    one = rows[0]["makespan"]
    for row in rows:
        row["ratio"] = row["makespan"] / row["bound"]
        row["speedup"] = one / row["makespan"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{len(images)} images, RUN sleep 1-4 s (seed {args.seed}, {work} s of sleep in all),"
        f" {args.jobs} slots per engine"
    )
    print(
        "engines  slots  makespan  bound    ratio  speed-up  transfers  build work"
        "  builds per engine"
    )
    for row in rows:
        builds = ", ".join(f"{n} {b}" for n, b in row["builds"].items())
        print(
            f"{row['engines']:7d}  {row['slots']:5d}  {row['makespan']:7.1f}s"
            f"  {row['bound']:6.1f}s  {row['ratio']:5.2f}x  {row['speedup']:7.2f}x"
            f"  {row['transfers']:9d}  {row['work']:8.1f}s   {builds}"
        )
    nominal = ", ".join(f"{row['nominal_bound']:.1f}s" for row in rows)
    print(
        "bound: max(critical path, work / slots) of the build seconds measured in that run"
        f" (from the sleeps alone: {nominal})"
    )
    growth = rows[-1]["work"] / rows[0]["work"]
    print(
        "build work: the measured build seconds summed; the engines of this benchmark share"
        f" this machine's cores, so it grows with the pool ({growth:.2f}x at"
        f" {rows[-1]['engines']} engines): the speed-up such work allows is"
        f" {rows[-1]['engines'] / growth:.2f}x"
    )
    ratio_ok = "met" if rows[-1]["ratio"] <= 1.25 else "NOT met"
    speed_ok = "met" if rows[-1]["speedup"] >= 2.4 else "NOT met"
    print(
        f"targets: 3 engines <= 1.25x the bound ({ratio_ok}); >= 2.4x faster than one engine"
        f" ({speed_ok})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
