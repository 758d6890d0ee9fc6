"""Start-up: whole-process ``spec --all --json`` against the floor of any such tool.

Usage: python benchmarks/startup.py [--runs N] [--seed N]

On a Materialize-shaped repository (``materialize_shaped.py``), with the
digest cache warm, each round times as fresh processes, alternating:

(a) the floor: ``python -c pass`` and ``git ls-files`` (an interpreter
    start and the one git listing every run needs), run one after the other;
(b) ``python -m mzbuild_async spec --all --json --repo DIR``.

Every run of (b) must exit 0 and print the same JSON object with an entry
per image. Prints the medians, their ratio, and which modules (b) imports
(``-X importtime``): the fingerprinting commands must load neither httpx,
aiodocker, tenacity nor the build code.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.3
RACY_SECONDS = 2.1
HEAVY = ("httpx", "aiodocker", "tenacity", "structlog", "mzbuild_async.builds")


def timed(cmds: list[list[str]], env: dict[str, str]) -> tuple[float, str]:
    """Wall time of running ``cmds`` one after the other, and the last one's stdout."""
    out = ""
    started = time.perf_counter()
    for cmd in cmds:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            sys.exit(f"{' '.join(cmd)} exited {result.returncode}: {result.stderr[-2000:]}")
        out = result.stdout
    return time.perf_counter() - started, out


def main() -> None:
    """Generate the repository, warm the cache, time (a) and (b), print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from materialize_shaped import generate

    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        repo = Path(tmp) / "repo"
        stats = generate(repo, args.seed)
        env = {**os.environ, "MZBUILD_ASYNC_CACHE_DIR": str(Path(tmp) / "cache")}
        floor = [[sys.executable, "-c", "pass"], ["git", "-C", str(repo), "ls-files", "-z"]]
        ours = [[sys.executable, "-m", "mzbuild_async", "spec", "--all", "--json"]]
        ours[0] += ["--repo", str(repo)]
        time.sleep(RACY_SECONDS)  # files this new are not kept by the digest cache
        _, first = timed(ours, env)  # warms the digest cache
        expected = json.loads(first)
        if len(expected) != stats.images:
            sys.exit(f"(b) printed {len(expected)} specs for {stats.images} images")
        a: list[float] = []
        b: list[float] = []
        for _ in range(args.runs):
            a.append(timed(floor, env)[0])
            seconds, out = timed(ours, env)
            if json.loads(out) != expected:
                sys.exit("(b) printed other specs than on its first run")
            b.append(seconds)
        imports = subprocess.run(
            [sys.executable, "-X", "importtime", *ours[0][1:]],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stderr
    loaded = sorted(
        {
            line.rsplit("|", 1)[-1].strip().split(".")[0]
            if not line.rsplit("|", 1)[-1].strip().startswith("mzbuild_async")
            else ".".join(line.rsplit("|", 1)[-1].strip().split(".")[:2])
            for line in imports.splitlines()
            if "|" in line
        }
    )
    heavy = [m for m in loaded if m.startswith(HEAVY)]
    ratio = statistics.median(b) / statistics.median(a)
    print(f"repository: {stats.images} images, {stats.tracked_files:,} files")
    print(f"runs: {args.runs} per command, fresh processes, alternating, digest cache warm")
    print(f"{'':36}{'median':>8}{'min':>10}")
    for label, times in (("(a) floor: python -c pass + git", a), ("(b) spec --all", b)):
        median, best = statistics.median(times) * 1e3, min(times) * 1e3
        print(f"{label:36}{median:6.0f} ms{best:7.0f} ms")
    print(f"ratio ours/floor (medians): {ratio:.2f}x")
    print(f"target: <= {TARGET_RATIO}x ({'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"heavy modules imported by (b): {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
