"""A pool of engines on hosts of their own (``scripts/fleet``) against one engine,
with every link fast and with one host's link slowed.

Usage: python benchmarks/fleet.py [--images 8] [--sleep 2] [--runs 3] [--rate 20mbit]
                                  [--blob BYTES]

A repository of ``--images`` images (``RUN sleep`` builds of ``--sleep`` seconds,
a base and the rest on it, as ``tests/support/pool.py`` makes them; ``--blob``:
that many random bytes in the base, a layer no engine has yet) is ensured
from scratch (new fingerprints each time) by the whole command, in alternation:

- ``one``: one engine of the fleet (h1), its registry on another host;
- ``pool``: h1 and h2, every link at full speed;
- ``slow``: the same pool with h2's link limited to ``--rate`` (``tc tbf``), its
  rate not known (a new cache directory each run, as a first run has);
- ``learned``: the same, with the cache directory of earlier runs (one run before
  the first, untimed, to learn from): the link's rate and the base's bytes are
  known (``links.json``), and so are the build times.

Each row gives the median, and its ratio to the bound: the longest chain of
sleeps (base, then one image), or the total sleep over the slots, whichever is
larger (``--jobs 1`` per engine). Needs root (``scripts/fleet``).
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.pool import Sleepy, make_sleepy_repo  # noqa: E402

FLEET = ROOT / "scripts" / "fleet"


def fleet(env: dict[str, str], *args: str) -> str:
    """``scripts/fleet ARGS`` (exit if it failed)."""
    done = subprocess.run([str(FLEET), *args], check=False, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"scripts/fleet {' '.join(args)}: {done.stderr[-1500:]}")
    return done.stdout


def ensure(
    engines: list[str],
    said: dict[str, str],
    args: argparse.Namespace,
    tmp: Path,
    cache: Path | None = None,
) -> float:
    """Seconds of one whole ``ensure --all`` of a fresh repository over ``engines``
    (``cache``: the cache directory, default a new one)."""
    name = uuid.uuid4().hex[:8]
    images = [Sleepy("base", (), args.sleep, blob=args.blob)] + [
        Sleepy(f"img{i}", ("base",), args.sleep) for i in range(args.images - 1)
    ]
    repo = make_sleepy_repo(tmp / name, images)
    registry = said["REGISTRY"]
    pool = [a for e in engines for a in ("--engine", said[e.upper()])]
    env = {**os.environ, "DOCKER_CERT_PATH": said["CERTS"], "DOCKER_TLS_VERIFY": "1"}
    cache_dir = str(cache or tmp / f"{name}-cache")
    command = [sys.executable, "-m", "mzbuild_async", "ensure", "--all", "--json", "--repo",
               str(repo), "--image-registry", f"{registry}/bench", "--insecure-registry",
               registry, "--cache-dir", cache_dir, "--jobs", "1", *pool]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=900
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"ensure over {engines} failed: {done.stderr[-2000:]}")
    built = {i["engine"] for i in json.loads(done.stdout)["images"].values()}
    if len(engines) > 1 and len(built) < 2:
        print(f"  (every build went to {built})", flush=True)
    return seconds


def main() -> int:
    """Measure each setting; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", default="20mbit")
    parser.add_argument(
        "--blob", type=int, default=0, help="bytes of random data in the base (a cold layer)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mzbuild-fleet-") as tmp:
        env = {
            **os.environ,
            "MZBUILD_ASYNC_FLEET_ID": "240",
            "MZBUILD_ASYNC_FLEET_DIR": str(Path(tmp) / "fleet"),
        }
        try:
            fleet(env, "up", "2")
            said = dict(line.split("=", 1) for line in fleet(env, "env").splitlines())
            times: dict[str, list[float]] = {"one": [], "pool": [], "slow": [], "learned": []}
            kept = Path(tmp) / "kept-cache"
            fleet(env, "rate", "h2", args.rate)
            ensure(["h1", "h2"], said, args, Path(tmp), kept)  # (learns; not timed)
            fleet(env, "rate", "h2", "none")
            for _ in range(args.runs):
                times["one"].append(ensure(["h1"], said, args, Path(tmp)))
                times["pool"].append(ensure(["h1", "h2"], said, args, Path(tmp)))
                fleet(env, "rate", "h2", args.rate)
                times["slow"].append(ensure(["h1", "h2"], said, args, Path(tmp)))
                times["learned"].append(ensure(["h1", "h2"], said, args, Path(tmp), kept))
                fleet(env, "rate", "h2", "none")
        finally:
            fleet(env, "down")
    chain = 2 * args.sleep
    bound = {
        "one": max(chain, args.images * args.sleep),
        "pool": max(chain, args.sleep + (args.images - 1) * args.sleep / 2),
        "slow": max(chain, args.sleep + (args.images - 1) * args.sleep / 2),
        "learned": max(chain, args.sleep + (args.images - 1) * args.sleep / 2),
    }
    print(
        f"{args.images} images (a base{f' with {args.blob} new random bytes' if args.blob else ''},"
        f" the rest on it), RUN sleep {args.sleep:g} s each,"
        f" --jobs 1 per engine, {args.runs} runs, medians; registry on a host of its own"
    )
    print(f"{'engines':34}{'median':>9}{'bound':>9}{'x bound':>9}")
    labels = {
        "one": "one engine (h1)",
        "pool": "pool h1+h2",
        "slow": f"pool h1+h2, h2's link {args.rate}",
        "learned": "  the same, its rate learned",
    }
    for key, label in labels.items():
        med = statistics.median(times[key])
        print(f"{label:34}{med:7.2f} s{bound[key]:7.2f} s{med / bound[key]:8.2f}x")
    one = statistics.median(times["one"])
    print(
        f"pool vs one engine: {one / statistics.median(times['pool']):.2f}x faster;"
        f" with h2's link slowed: {one / statistics.median(times['slow']):.2f}x,"
        f" its rate learned: {one / statistics.median(times['learned']):.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
