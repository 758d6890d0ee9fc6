"""The cost of a run at 1,000 and 10,000 images: whole commands against their floors.

Usage: python benchmarks/scale.py [--sizes 1000,10000] [--runs 3] [--rtt 0.05]

For each size, a synthetic repository with a realistic DAG (``synthetic.py``) and
Debian's ``docker-registry`` behind a TCP delay line (``--rtt`` per round trip).
Each command is a fresh process, as a CI step runs it, timed in alternation with
its yardsticks (medians of ``--runs``):

- ``spec --all``: every fingerprint. Floor: start-up (``list`` of a one-image
  repository: the interpreter, our imports, opening a repository) plus reading
  and SHA-1-hashing every input file in a bare process (less that process's own
  start-up).
- ``check --all --no-disk-cache`` with every tier (70% published). Floor: the
  ``spec`` floor plus ceil(N / concurrency) round trips. At 1,000 images also
  one ``HEAD`` at a time on one keep-alive connection (``one_at_a_time.py``, the
  original's way).
- a no-op ``ensure --all`` (every image published: nothing to build), the disk
  cache warm as a CI agent's would be. Floor: as ``check``'s.

It prints each median, its floor and the ratio, and the cost per image above
start-up (``(median - start-up) / N``), which must not grow with N.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from synthetic import generate  # noqa: E402

from tests.support.delayline import delay_line_thread  # noqa: E402
from tests.support.registry import Registry, run_registry  # noqa: E402

#: Lookups in flight per registry host (the client's default limit).
CONCURRENCY = 32
PUBLISHED_SHARE = 0.7
#: Hashes every input file as the fingerprints must: the bytes read, nothing else.
HASH_ALL = """
import hashlib, subprocess, sys
files = subprocess.run(["git", "ls-files", "-z"], cwd=sys.argv[1], capture_output=True,
                       check=True).stdout.split(b"\\0")
for name in filter(None, files):
    with open(sys.argv[1].encode() + b"/" + name, "rb") as f:
        hashlib.sha1(f.read()).digest()
"""


def run(cmd: Sequence[str], env: Mapping[str, str]) -> tuple[float, str]:
    """Wall seconds of one process, and its stdout (exit if it failed)."""
    started = time.perf_counter()
    done = subprocess.run(list(cmd), capture_output=True, text=True, check=False, env=dict(env))
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} ... exited {done.returncode}: {done.stderr[-1500:]}")
    return seconds, done.stdout


def push_all(registry: Registry, specs: Sequence[str]) -> None:
    """Publish a minimal manifest at each spec's tag (straight to the registry)."""

    def one(spec: str) -> None:
        path, _, tag = spec.split("/", 1)[1].rpartition(":")
        registry.push(path, tag)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, specs))


def size(images: int, args: argparse.Namespace, tmp: Path) -> list[str]:
    """Measure one size; its table's lines."""
    repo, tiny = tmp / f"repo{images}", tmp / "tiny"
    shape = generate(repo, images)
    if not tiny.exists():
        generate(tiny, 1)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MZBUILD_ASYNC_CACHE_DIR": str(tmp / "cache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # (as installed: imports from bytecode)
    me = [sys.executable, "-m", "mzbuild_async"]
    trips = math.ceil(images / CONCURRENCY)
    with (
        run_registry(tmp / f"reg{images}", "none") as registry,
        delay_line_thread(int(registry.host.rsplit(":", 1)[1]), args.rtt / 2) as line,
    ):
        flags = ["--repo", str(repo), "--image-registry", f"{line.host}/check"]
        noop = ["--repo", str(repo), "--image-registry", f"{line.host}/noop"]
        time.sleep(2.1)  # (files this new are not kept by the digest cache)
        check_specs = sorted(
            json.loads(run([*me, "spec", "--all", "--json", *flags], env)[1]).values()
        )
        noop_specs = sorted(
            json.loads(run([*me, "spec", "--all", "--json", *noop], env)[1]).values()
        )
        push_all(registry, check_specs[: round(images * PUBLISHED_SHARE)])
        push_all(registry, [s.replace(f"{line.host}/", f"{registry.host}/") for s in noop_specs])
        run([*me, "ensure", "--all", "-q", *noop], env)  # (warms the disk cache, as an agent's)
        kinds = ("start", "bare", "hash", "spec", "check", "ensure", "one")
        times: dict[str, list[float]] = {k: [] for k in kinds}
        one = [sys.executable, str(ROOT / "benchmarks" / "one_at_a_time.py"), *check_specs]
        for _ in range(args.runs):
            times["start"].append(run([*me, "list", "--repo", str(tiny)], env)[0])
            times["bare"].append(run([sys.executable, "-c", "pass"], env)[0])
            times["hash"].append(run([sys.executable, "-c", HASH_ALL, str(repo)], env)[0])
            times["spec"].append(run([*me, "spec", "--all", *flags], env)[0])
            times["check"].append(run([*me, "check", "--all", "--no-disk-cache", *flags], env)[0])
            times["ensure"].append(run([*me, "ensure", "--all", "-q", *noop], env)[0])
            if images <= 1000:
                times["one"].append(run(one, env)[0])
    med = {k: statistics.median(v) for k, v in times.items() if v}
    start = med["start"]
    spec_floor = start + max(med["hash"] - med["bare"], 0.0)
    lookup_floor = spec_floor + trips * args.rtt
    lines = [
        f"{images} images ({shape.bases} bases, {shape.middle} middle, {shape.leaves} leaves;"
        f" depth {shape.depth}, widest fan-out {shape.widest}; {shape.files} files),"
        f" {args.rtt * 1000:.0f} ms round trip, {args.runs} runs, medians;"
        f" start-up {start:.2f} s, hashing every input {med['hash'] - med['bare']:.2f} s",
        f"{'command':34}{'ours':>8}{'floor':>8}{'x floor':>9}{'per image':>11}",
    ]
    for label, key, floor in (
        ("spec --all", "spec", spec_floor),
        ("check --all --no-disk-cache", "check", lookup_floor),
        ("ensure --all (no-op)", "ensure", lookup_floor),
    ):
        ours = med[key]
        per = (ours - start) / images * 1000
        lines.append(f"{label:34}{ours:6.2f} s{floor:6.2f} s{ours / floor:8.2f}x{per:8.2f} ms")
    if "one" in med:
        lines.append(
            f"check --all vs one HEAD at a time: {med['one']:.2f} s / {med['check']:.2f} s ="
            f" {med['one'] / med['check']:.1f}x"
        )
    return lines


def main() -> int:
    """Measure each size; print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rtt", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mzbuild-scale-") as tmp:
        for images in (int(n) for n in args.sizes.split(",")):
            print("\n".join(size(images, args, Path(tmp))), flush=True)
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
