"""End-to-end wall times on the real engine, registry and cargo (examples/demo).

Prints, side by side, each the median of ``--repeat`` runs:

- cold ``ensure --all``: nothing in the registry, the daemon or the layer
  cache (every run under a fresh image path, local copies and dangling
  layers removed before it);
- warm ``ensure --all``: everything published (nothing built or pushed);
- one at a time: the same cold run with ``--jobs 1`` (builds one after the
  other in dependency order, as the original mzbuild does);
- the layer cache (``--cache-registry``), on "another machine": after a
  cold run that filled it, the local daemon is wiped and one file that
  ``demo-tools`` copies late is edited, so ``demo-tools`` and ``demo-app``
  rebuild on top of pulled dependencies, with and without the cache.

``demo-tools`` gets a 3-second ``RUN`` step first, standing in for the
package installs a layer cache exists to skip.

``--builder buildkit`` (the engine's own BuildKit, the default where it has
one: its inline cache is imported from the registry, not pulled) or
``classic`` (the cache image pulled first, then ``cachefrom``); a clean
daemon has BuildKit's build cache pruned too.

``--vs-classic``: instead, the cold ``ensure --all`` with BuildKit and with
the classic builder in pairs (BuildKit first in odd pairs, classic first in
even ones), each pair's ratio, and the median of those ratios.

The cache rows' ratio is also taken pair by pair (each repeat rebuilds with
and without the cache in turn): the median of the per-pair ratios.

Usage: ``python benchmarks/e2e.py [--repeat 3] [--builder buildkit|classic]
[--vs-classic]`` (needs scripts/setup-system).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.demo import Cli, commit, make_demo  # noqa: E402
from tests.support.registry import run_registry  # noqa: E402

SLOW_STEP = "RUN sleep 3\n"


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False).stdout


def wipe(prefix: str) -> None:
    """Remove every local image under ``prefix`` and the layers only they used."""
    images = [i for i in _docker("images", "--format", "{{.Repository}}:{{.Tag}}").split()]
    mine = [i for i in images if i.startswith(prefix)]
    if mine:
        _docker("rmi", "-f", *mine)
    _docker("image", "prune", "-f")
    _docker("builder", "prune", "-af")  # (BuildKit's own cache: a clean daemon has none)


#: ``--builder`` of every run (set from the command line).
BUILDER = ["--builder", "buildkit"]


def timed(cli: Cli, *args: str) -> tuple[float, dict[str, str]]:
    """Wall seconds of one command, and its per-image actions."""
    started = time.perf_counter()
    result = cli.run("ensure", "--all", "--json", *BUILDER, *args, timeout=900)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"ensure failed:\n{result.stderr[-2000:]}")
    images = json.loads(result.stdout)["images"]
    return seconds, {name: r["action"] for name, r in images.items()}


def fresh(base: Path, host: str, tag: str) -> Cli:
    """A fresh copy of the demo under a fresh image path, with the slow step."""
    repo = make_demo(base / f"{tag}-{uuid.uuid4().hex[:6]}")
    dockerfile = repo / "images" / "tools" / "Dockerfile"
    lines = dockerfile.read_text().splitlines(keepends=True)
    dockerfile.write_text("".join([lines[0], SLOW_STEP, *lines[1:]]))
    commit(repo, "slow step")
    return Cli(repo, f"{host}/b{uuid.uuid4().hex[:10]}", repo.parent / f"cache-{repo.name}")


def vs_classic(pairs: int) -> None:
    """Cold ``ensure --all``, BuildKit against the classic builder, in pairs."""
    seconds: dict[str, list[float]] = {"buildkit": [], "classic": []}
    with tempfile.TemporaryDirectory() as tmp, run_registry(Path(tmp) / "registry") as registry:
        for pair in range(pairs):
            order = ("buildkit", "classic") if pair % 2 == 0 else ("classic", "buildkit")
            for builder in order:
                BUILDER[1] = builder
                cli = fresh(Path(tmp), registry.host, builder)
                wipe(cli.registry)
                took, actions = timed(cli)
                assert set(actions.values()) == {"built"}, actions
                seconds[builder].append(took)
                wipe(cli.registry)
    ratios = [b / c for b, c in zip(seconds["buildkit"], seconds["classic"], strict=True)]
    print(f"examples/demo: 7 images (1 cargo), cold ensure --all, {pairs} pairs, wall seconds")
    print(f"{'builder':12} {'median':>8} {'min':>8} {'max':>8}")
    for builder, values in seconds.items():
        print(
            f"{builder:12} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}"
        )
    print(
        f"BuildKit / classic, pair by pair: median {statistics.median(ratios):.2f}"
        f" (min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--builder", choices=["buildkit", "classic"], default="buildkit")
    parser.add_argument("--vs-classic", action="store_true")
    args = parser.parse_args()
    if args.vs_classic:
        vs_classic(args.repeat)
        return
    BUILDER[1] = args.builder
    with tempfile.TemporaryDirectory() as tmp, run_registry(Path(tmp) / "registry") as registry:
        base = Path(tmp)
        cold: list[float] = []
        warm: list[float] = []
        serial: list[float] = []
        cached: list[float] = []
        uncached: list[float] = []
        for _ in range(args.repeat):
            cli = fresh(base, registry.host, "cold")
            wipe(cli.registry)
            seconds, actions = timed(cli)
            assert set(actions.values()) == {"built"}, actions
            cold.append(seconds)
            seconds, actions = timed(cli)
            assert set(actions.values()) == {"none"}, actions
            warm.append(seconds)
            wipe(cli.registry)

            cli = fresh(base, registry.host, "serial")
            wipe(cli.registry)
            seconds, actions = timed(cli, "--jobs", "1")
            assert set(actions.values()) == {"built"}, actions
            serial.append(seconds)
            wipe(cli.registry)

            cli = fresh(base, registry.host, "cache")
            cache = f"{cli.registry}-cache"
            timed(cli, "--cache-registry", cache)
            for with_cache, bucket in ((True, cached), (False, uncached)):
                (cli.repo / "images" / "tools" / "tools.txt").write_text(f"{uuid.uuid4()}\n")
                commit(cli.repo, "new tools.txt")
                wipe(cli.registry)
                extra = ("--cache-registry", cache) if with_cache else ()
                seconds, actions = timed(cli, *extra)
                built = {n for n, a in actions.items() if a == "built"}
                assert built == {"demo-tools", "demo-app", "demo-scratchpad"}, actions
                bucket.append(seconds)
            wipe(cli.registry)
            wipe(cache)

    def median(values: list[float]) -> float:
        return statistics.median(values)

    print(
        f"examples/demo: 7 images (1 cargo), --builder {args.builder},"
        f" median of {args.repeat} runs, wall seconds"
    )
    print(f"{'run':44} {'seconds':>8} {'ratio':>8}")
    rows = [
        ("cold ensure --all", median(cold), "1.00"),
        (
            "warm ensure --all (nothing built or pushed)",
            median(warm),
            f"{median(warm) / median(cold):.3f}",
        ),
        ("one at a time (--jobs 1), cold", median(serial), f"{median(serial) / median(cold):.2f}"),
        ("edit + rebuild on a clean daemon, no cache", median(uncached), "1.00"),
        (
            "edit + rebuild on a clean daemon, with cache",
            median(cached),
            f"{median([c / u for c, u in zip(cached, uncached, strict=True)]):.2f}",
        ),
    ]
    for name, seconds, ratio in rows:
        print(f"{name:44} {seconds:8.2f} {ratio:>8}")
    print(
        f"the async schedule is {median(serial) / median(cold):.2f}x faster than one at a time;"
        f" the layer cache saves {median(uncached) - median(cached):.2f} s per rebuild"
    )


if __name__ == "__main__":
    main()
