"""`affected` against the peer: checking both commits out and asking `spec --all` at each.

Usage: python benchmarks/affected.py [--commits 50] [--runs 5]

Generates the Materialize-shaped repository (49 images, ~4,000 inputs,
70 MB) with ``--commits`` commits of history (each edits a few input files;
every 10th a crate's ``Cargo.toml``, every 25th a Dockerfile), then times in
alternation, pair by pair, the whole commands a user runs:

- A, ours: ``mzbuild-async affected --base HEAD~N --head HEAD --json``
  (both sides from git objects, nothing checked out);
- B, the peer: ``git worktree add`` of each commit, ``spec --all --json``
  in each, then the two worktrees removed (what comparing fingerprints takes
  without ``affected``; Materialize's own CI diffs file names through
  GitHub's compare API instead, which cannot be run here).

Prints each side's wall seconds (min, median, max) and the median of the
A/B ratios; checks that both name the same images.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from gc_keepset import history  # noqa: E402
from materialize_shaped import generate  # noqa: E402

PROGRAM = [sys.executable, "-m", "mzbuild_async"]


def ours(repo: Path, base: str) -> set[str]:
    out = subprocess.run(
        [
            *PROGRAM,
            "affected",
            "--repo",
            str(repo),
            "--base",
            base,
            "--head",
            "HEAD",
            "--json",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {a["image"] for a in json.loads(out)["affected"]}


def peer(repo: Path, base: str, scratch: Path) -> set[str]:
    specs = []
    for i, rev in enumerate((base, "HEAD")):
        where = scratch / f"wt{i}"
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "-q", "--detach", str(where), rev],
            check=True,
        )
        try:
            out = subprocess.run(
                [*PROGRAM, "spec", "--all", "--json", "-q", "--repo", str(where)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            specs.append(json.loads(out))
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(where)], check=True
            )
    old, new = specs
    return {name for name in set(old) | set(new) if old.get(name) != new.get(name)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="affected-bench-") as scratch:
        repo = Path(scratch) / "repo"
        generate(repo)
        history(repo, args.commits)
        base = f"HEAD~{args.commits}"
        a_times, b_times, ratios = [], [], []
        ours(repo, base)  # warm-up (the page cache), not counted
        for _ in range(args.runs):
            started = time.perf_counter()
            a = ours(repo, base)
            a_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            b = peer(repo, base, Path(scratch))
            b_times.append(time.perf_counter() - started)
            ratios.append(a_times[-1] / b_times[-1])
            assert a == b, sorted(a ^ b)
    print(f"{args.commits} commits apart; {len(a)} of 49 images affected (both agree)")
    for label, times in (
        ("A  affected (git objects)    ", a_times),
        ("B  checkout + spec --all x2  ", b_times),
    ):
        print(
            f"{label}: min {min(times):.2f}  median {statistics.median(times):.2f}"
            f"  max {max(times):.2f} s"
        )
    print(f"A/B median of pairs: {statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
