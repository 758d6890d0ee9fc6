"""gc's keep set: fingerprints at hundreds of commits, from git objects.

Usage: python benchmarks/gc_keepset.py [--commits 100 500] [--peer 20] [--runs 3]

Generates the Materialize-shaped repository (49 images, 120 crates, ~4,000
inputs, 70 MB) and gives it a history: each commit edits two or three input
files, every 10th a crate's ``Cargo.toml``, every 25th a Dockerfile. Starts an
empty docker-registry on loopback, then times the whole command a user runs,
``mzbuild-async gc --keep-branch main --keep-last N --json`` (a dry run: with
no tags to list, its time is the keep set's), for each N, with the default
variants (2 arches x 3 profiles x coverage on and off: 12). It prints the
command's wall seconds (min, median, max) and the keep-set seconds gc reports.

The peer, measured in the same run, is what one would do without gc: check
each commit out (``git checkout``) and run ``spec --all`` once per variant,
over the last ``--peer`` commits; its per-commit-and-variant cost is compared
with gc's.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from materialize_shaped import generate  # noqa: E402

from tests.conftest import git  # noqa: E402
from tests.support.registry import run_registry  # noqa: E402


def history(repo: Path, commits: int, seed: int = 1) -> None:
    """``commits`` commits on main, each a few edits."""
    rng = random.Random(seed)
    files = git(repo, "ls-files").split("\n")
    inputs = [f for f in files if f.endswith((".rs", ".txt", ".py", ".sh", ".md"))]
    cargo = [f for f in files if f.endswith("Cargo.toml") and "/" in f]
    dockerfiles = [f for f in files if f.endswith("Dockerfile")]
    for n in range(1, commits + 1):
        chosen = rng.sample(inputs, rng.randint(2, 3))
        if n % 10 == 0:
            chosen.append(rng.choice(cargo))
        if n % 25 == 0:
            chosen.append(rng.choice(dockerfiles))
        for path in chosen:
            with open(repo / path, "a") as f:
                f.write(f"\n# edit {n}\n")
        git(repo, "commit", "-q", "-a", "-m", f"edit {n}")


def gc_command(repo: Path, registry: str, keep_last: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mzbuild_async",
        "gc",
        "--repo",
        str(repo),
        "--image-registry",
        f"{registry}/bench",
        "--keep-branch",
        "main",
        "--keep-last",
        str(keep_last),
        "--keep-tag",
        "none-*",
        "--json",
        "-q",
    ]


def timed(command: list[str], cwd: Path | None = None) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:5])}... failed: {result.stderr.strip()[-500:]}")
    return seconds, result.stdout


def peer(repo: Path, commits: int) -> float:
    """Seconds per commit and variant: checkout, then spec --all per variant."""
    clone = repo.parent / "peer"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    revisions = git(clone, "rev-list", f"--max-count={commits}", "HEAD").split()
    variants = [
        (arch, profile, coverage)
        for arch in ("x86_64", "aarch64")
        for profile in ("dev", "release", "optimized")
        for coverage in ("--coverage", "--no-coverage")
    ]
    started = time.perf_counter()
    for revision in revisions:
        git(clone, "checkout", "-q", revision)
        for arch, profile, coverage in variants:
            timed(
                [
                    sys.executable,
                    "-m",
                    "mzbuild_async",
                    "spec",
                    "--all",
                    "--repo",
                    str(clone),
                    "--arch",
                    arch,
                    "--profile",
                    profile,
                    coverage,
                    "-q",
                ]
            )
    return (time.perf_counter() - started) / (len(revisions) * len(variants))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--peer", type=int, default=10, help="commits the peer checks out")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gc-bench-") as scratch:
        base = Path(scratch)
        repo = base / "repo"
        generate(repo)
        history(repo, max(args.commits))
        with run_registry(base / "registry") as registry:
            rows = []
            for n in args.commits:
                walls, keeps = [], []
                for _ in range(args.runs):
                    wall, out = timed(gc_command(repo, registry.host, n))
                    document = json.loads(out)
                    walls.append(wall)
                    keeps.append(document["keep"]["seconds"])
                    variants = document["keep"]["variants"]
                    commits = len(document["keep"]["commits"])
                rows.append((n, commits, variants, walls, keeps))
        per_peer = peer(repo, args.peer)
    for n, commits, variants, walls, keeps in rows:
        per_ours = statistics.median(walls) / (commits * variants)
        print(
            f"gc --keep-last {n}: {commits} commits x {variants} variants:"
            f" wall median {statistics.median(walls):.2f} s (min {min(walls):.2f},"
            f" max {max(walls):.2f}); keep set {statistics.median(keeps):.2f} s;"
            f" {per_ours * 1000:.2f} ms per commit and variant"
        )
        print(
            f"  peer (checkout + spec --all per variant, {args.peer} commits):"
            f" {per_peer * 1000:.0f} ms per commit and variant; ratio ours/peer"
            f" {per_ours / per_peer:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
