"""Whole-process `fingerprint --all --json` on a Materialize-shaped repository.

Usage: python benchmarks/bench_fingerprint.py [--runs N] [--repo DIR]

Times fresh processes (page cache warm: "cold-ish"), alternating in each
round: the floor (``floor_fingerprint.py``: git ls-files + read and SHA-1
of every distinct input once, single-threaded), ``python -m mzbuild_async
fingerprint --all --json`` with its digest cache off, and the same with the
digest cache warm (its default). Prints the median and minimum wall time,
files, bytes, MB/s and the ratio of each to the floor.
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

from materialize_shaped import generate, image_inputs  # noqa: E402

TARGET_RATIO = 1.5


def timed(cmd: list[str]) -> tuple[float, str]:
    """Wall time of one run of ``cmd`` and its stdout; fails loudly on error."""
    started = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return elapsed, result.stdout


def main() -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--repo", type=Path, help="an existing repository (default: generate)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = args.repo or Path(tmp) / "repo"
        if args.repo is None:
            generate(repo)
        inputs = sorted(set().union(*image_inputs(repo).values()))
        listing = Path(tmp) / "inputs.json"
        listing.write_text(json.dumps(inputs))
        size = sum((repo / p).stat().st_size for p in inputs)
        ours = [sys.executable, "-m", "mzbuild_async", "fingerprint", "--all", "--json"]
        ours += ["--repo", str(repo), "--cache-dir", str(Path(tmp) / "cache"), "-q"]
        commands = {
            "floor (git ls-files + SHA-1 each input)": [
                sys.executable, str(HERE / "floor_fingerprint.py"), str(repo), str(listing)
            ],
            "mzbuild_async, --no-digest-cache": [*ours, "--no-digest-cache"],
            "mzbuild_async, digest cache warm": ours,
        }  # fmt: skip
        samples: dict[str, list[float]] = {label: [] for label in commands}
        for label, cmd in commands.items():  # warm-up: page cache, digest cache
            _, out = timed(cmd)
            if label != next(iter(commands)):
                fingerprints = json.loads(out)
                if len(fingerprints) != 49:
                    raise SystemExit(f"{label}: expected 49 fingerprints, got {len(fingerprints)}")
        time.sleep(2.1)  # past the digest cache's racy window for the generated files
        timed(ours)
        for _ in range(args.runs):
            for label, cmd in commands.items():
                samples[label].append(timed(cmd)[0])
    floor = statistics.median(samples[next(iter(commands))])
    print(f"repository: 49 images, {len(inputs)} distinct input files, {size / 1e6:.1f} MB")
    print(f"runs: {args.runs} fresh processes each, alternating; page cache warm")
    print(f"{'':42} {'median':>9} {'min':>9} {'MB/s':>7} {'ratio':>6}")
    for label, times in samples.items():
        median = statistics.median(times)
        print(
            f"{label:42} {median * 1000:7.0f}ms {min(times) * 1000:7.0f}ms"
            f" {size / median / 1e6:7.0f} {median / floor:5.2f}x"
        )
    print(f"target: <= {TARGET_RATIO}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
