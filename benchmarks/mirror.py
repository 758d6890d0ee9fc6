"""Publishing to a second registry: a copy registry to registry vs the engine pushing again.

Usage: python benchmarks/mirror.py [--runs 5] [--layer-mib 64]

Starts two of Debian's docker-registry on loopback (the primary and a
mirror), builds the demo repository plus one image with a ``--layer-mib``
layer of random bytes, and publishes it all to the primary with
``ensure --all``. Then, ``--runs`` times in alternation, each into a fresh
repository path of the mirror so every image must travel:

- A, ours: the whole command ``mzbuild-async ensure --all --mirror-registry
  MIRROR`` (fingerprints, lookups at both registries, then each image copied
  registry to registry, blob by blob);
- B, the engine route (the original's ``docker build -t A -t B`` then a push
  of each tag): ``docker tag`` and ``docker push`` of every published image
  to the mirror, all at once (one ``docker`` process each).

Each pair gets a new mirror registry, so neither side finds a blob it sent
before. Prints each side's wall seconds (min, median, max) and the median of the
ratio A/B, pair by pair.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import git  # noqa: E402
from tests.support.registry import run_registry  # noqa: E402


def repository(root: Path, layer_mib: int) -> Path:
    """The demo plus ``big``: FROM scratch with ``layer_mib`` MiB of random bytes."""
    shutil.copytree(ROOT / "examples" / "demo", root, ignore=shutil.ignore_patterns("target"))
    shutil.copy2("/bin/busybox", root / "images" / "base" / "busybox")
    big = root / "images" / "big"
    big.mkdir()
    (big / "mzbuild.yml").write_text("name: demo-big\n")
    (big / "Dockerfile").write_text("FROM scratch\nCOPY data.bin /data.bin\n")
    (big / "data.bin").write_bytes(os.urandom(layer_mib * 1024 * 1024))
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bench")
    return root


def mzbuild(repo: Path, primary: str, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mzbuild_async", *args, "--repo", str(repo),
         "--image-registry", primary, "--cache-dir", str(cache)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def engine_route(specs: list[str], primary: str, mirror: str) -> None:
    """docker tag + docker push of every spec to ``mirror``, all at once."""

    def one(spec: str) -> None:
        target = mirror + spec.removeprefix(primary)
        subprocess.run(["docker", "tag", spec, target], check=True, capture_output=True)
        subprocess.run(["docker", "push", "-q", target], check=True, capture_output=True)

    with ThreadPoolExecutor(len(specs)) as pool:
        list(pool.map(one, specs))


def spread(values: list[float]) -> str:
    return f"min {min(values):.2f}  median {statistics.median(values):.2f}  max {max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--layer-mib", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        with run_registry(base / "primary") as first:
            repo = repository(base / "repo", args.layer_mib)
            primary = f"{first.host}/bench"
            cache = base / "cache"
            built = mzbuild(repo, primary, cache, "ensure", "--all", "--json")
            if built.returncode != 0:
                sys.exit(f"mirror: the first ensure failed: {built.stderr[-2000:]}")
            images = json.loads(built.stdout)["images"]
            specs = [r["spec"] for r in images.values() if r["pushed"]]
            print(f"{len(specs)} images published to the primary, one with {args.layer_mib} MiB")
            ours: list[float] = []
            engine: list[float] = []
            for i in range(args.runs):
                # A new mirror registry per pair: neither side finds a blob it sent before
                # (the engine remembers where it pushed each blob, and would mount it).
                with run_registry(base / f"mirror{i}") as second:
                    start = time.perf_counter()
                    copied = mzbuild(repo, primary, cache, "ensure", "--all", "-q",
                                     "--mirror-registry", f"{second.host}/a")  # fmt: skip
                    ours.append(time.perf_counter() - start)
                    if copied.returncode != 0:
                        sys.exit(f"mirror: ensure with a mirror failed: {copied.stderr[-2000:]}")
                    start = time.perf_counter()
                    engine_route(specs, primary, f"{second.host}/b")
                    engine.append(time.perf_counter() - start)
            ratios = [a / b for a, b in zip(ours, engine, strict=True)]
            print(f"A  ensure --mirror-registry (copy):   {spread(ours)} s")
            print(f"B  docker tag + push (engine route):  {spread(engine)} s")
            print(f"A/B median of pairs: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
