"""Time to the first build of ``ensure --all`` on 1,000 images behind a 50 requests/s limit.

Usage: python benchmarks/first_build.py [--images 1000] [--rate 50] [--published 0.9]

Generates a repository of ``--images`` images (ten roots, each image MZFROM
one to three images before it), starts Debian's docker-registry and pushes
the specs of a ``--published`` share of them (the roots among the missing
ones, so builds are needed everywhere in the DAG). Then it runs the real
workflow (fingerprints, the lookup engine with the registry limited to
``--rate`` requests/s on our side, decisions, the scheduler) with an engine
and a worker that only record when they are called (no Docker builds), and
prints, in the same run:

(a) when the first lookup answer came, (b) when the first build started,
(c) when the last lookup answer came: before decisions were released as
lookups answered, no build could start before (c);
plus lookup requests sent. Target: (b) within 1 s of (a).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mzbuild_async import BuildOptions, Repository  # noqa: E402
from mzbuild_async.builds.decisions import Workflow  # noqa: E402
from mzbuild_async.builds.scheduler import OneEngine  # noqa: E402
from mzbuild_async.registry.client import RegistryClient  # noqa: E402
from mzbuild_async.support.ratelimit import Limiters, Limits  # noqa: E402
from mzbuild_async.workflow.options import RunOptions  # noqa: E402
from mzbuild_async.workflow.run import run_workflow  # noqa: E402
from tests.conftest import git  # noqa: E402
from tests.support.registry import Registry, run_registry  # noqa: E402


def generate(root: Path, count: int, seed: int) -> None:
    """``count`` images: the first ten are roots, each other one MZFROMs 1-3 earlier ones."""
    rng = random.Random(seed)
    for i in range(count):
        directory = root / f"images/i{i:04d}"
        directory.mkdir(parents=True)
        (directory / "mzbuild.yml").write_text(f"name: i{i:04d}\n")
        deps = [] if i < 10 else rng.sample(range(i), rng.randint(1, min(3, i)))
        lines = ["FROM scratch"] + [f"MZFROM i{d:04d}" for d in sorted(deps)]
        (directory / "Dockerfile").write_text("\n".join(lines) + "\n")
        (directory / "data.txt").write_text(f"{i}\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "images")


class RecordingEngine:
    """An engine that has no images and answers at once."""

    async def connect(self) -> None:
        """Nothing to connect to."""

    async def ping(self) -> str:
        """A version."""
        return "fake"

    async def exists(self, spec: str) -> bool:
        """No image is local."""
        return False

    async def aclose(self) -> None:
        """Nothing to close."""


class RecordingWorker(OneEngine):
    """Records when each build starts; does no work."""

    started: ClassVar[list[float]] = []

    def __init__(self, **_kwargs: Any) -> None:
        RecordingWorker.started = []
        # What a run reads of its worker when a round ends: nothing seen here.
        self.stale: set[str] = set()
        self.build_seconds: dict[str, float] = {}
        self.waited: dict[str, float] = {}
        self.timed_out: set[str] = set()
        self.digests: dict[str, tuple[str, int, str]] = {}

    async def aclose(self) -> None:
        """Nothing held."""

    async def cargo(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        """No cargo images here."""

    async def pull(self, name: str, engine: str = "") -> None:
        """A pull takes no time."""

    async def build(self, name: str, engine: str = "") -> str:
        """Record the start."""
        RecordingWorker.started.append(time.perf_counter())
        return ""

    async def push(self, name: str, engine: str = "") -> str:
        """A push takes no time."""
        return ""


async def measure(repo_root: Path, registry: Registry, args: argparse.Namespace) -> None:
    """Run the workflow once and print the figures."""
    options = BuildOptions(image_registry=f"{registry.host}/bench")
    repo = await Repository.open(repo_root, options)
    specs = await repo.specs(list(repo.images))
    rng = random.Random(args.seed + 1)
    names = sorted(specs)
    published = set(rng.sample(names, int(len(names) * args.published)))
    for name in names:
        if name in published:
            repository, tag = specs[name].split("/", 1)[1].rsplit(":", 1)
            registry.push(repository, tag)
    answers: list[float] = []
    limits = Limiters(configured={registry.host: Limits(concurrency=32, rate=args.rate, burst=1)})
    client = RegistryClient(limiters=limits)
    original = client.lookup

    async def timed_lookup(*a: Any, **k: Any) -> Any:
        probe = await original(*a, **k)
        answers.append(time.perf_counter())
        return probe

    client.lookup = timed_lookup  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        result = await run_workflow(
            repo,
            Workflow.ENSURE,
            list(repo.images),
            cache_dir=Path(cache),
            options=RunOptions(tiers=("memory", "registry"), jobs=4),
            docker=RecordingEngine(),  # type: ignore[arg-type]
            client=client,
            worker_factory=RecordingWorker,
        )
        await client.aclose()
    builds = RecordingWorker.started
    built = sum(r.action == "built" for r in result.images.values())
    first_answer = min(answers) - started
    first_build = min(builds) - started if builds else float("nan")
    last_answer = max(answers) - started
    print(f"images: {len(names)}; published: {len(published)}; built: {built}")
    print(f"registry limited to {args.rate:g} requests/s; lookup requests: {result.requests}")
    print(f"(a) first lookup answer     {first_answer:7.2f} s")
    print(f"(b) first build start       {first_build:7.2f} s")
    print(
        f"(c) last lookup answer      {last_answer:7.2f} s  (no build before this, phase by phase)"
    )
    print(
        f"first build after the first answer: {first_build - first_answer:.2f} s (target: <= 1 s)"
    )
    print(f"first build before the last answer: {last_answer - first_build:.2f} s earlier")


def main() -> int:
    """Generate, start the registry, measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--published", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        generate(root, args.images, args.seed)
        with run_registry(Path(tmp) / "registry") as registry:
            anyio.run(measure, root, registry, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
