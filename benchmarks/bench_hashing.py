"""Which way of hashing the distinct input files is fastest on this machine.

Usage: python benchmarks/bench_hashing.py [--repo DIR] [--runs N]

Hashes every distinct input file of every image (page cache warm) with:
the floor, a plain loop in the main thread; ``FileHasher`` with 1..8
worker threads in interleaved batches (what mzbuild_async does); and one
``to_thread`` hop per file. Prints the median of each and its ratio to the
floor. Without ``--repo`` it generates a Materialize-shaped repository.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))

from mzbuild_async import Arch, BuildOptions, Repository
from mzbuild_async.source.hashing import FileHasher, hash_file


async def _distinct_inputs(root: Path) -> list[str]:
    repo = await Repository.open(root, BuildOptions(arch=Arch.X86_64))
    return sorted({p for name in repo.images for p in repo.inputs(name)})


def _time(fn: Callable[[], object], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> int:
    """Run the comparison and print one line per strategy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.repo
        if root is None:
            from materialize_shaped import generate

            root = Path(tmp) / "repo"
            generate(root)
        paths = anyio.run(_distinct_inputs, root)
        str_root = str(root)
        buffer = bytearray(1 << 20)
        size = sum(hash_file(str_root, p, buffer)[0].size for p in paths)  # warms the cache

        def floor() -> None:
            for p in paths:
                hash_file(str_root, p, buffer)

        def batched(workers: int) -> Callable[[], object]:
            return lambda: anyio.run(FileHasher(root, workers).digests, paths)

        def per_file() -> None:
            async def go() -> None:
                limiter = anyio.CapacityLimiter(4)
                async with anyio.create_task_group() as tg:
                    for p in paths:
                        tg.start_soon(
                            lambda p=p: anyio.to_thread.run_sync(  # type: ignore[misc]
                                hash_file, str_root, p, limiter=limiter
                            )
                        )

            anyio.run(go)

        base = _time(floor, args.runs)
        print(f"files: {len(paths)}  bytes: {size}  runs: {args.runs} (median)")
        print(
            f"{'floor: main-thread loop':<34} {base * 1000:8.1f} ms  1.00x  "
            f"{size / base / 1e6:7.0f} MB/s"
        )
        rows: list[tuple[str, Callable[[], object]]] = [
            (f"FileHasher, {w} worker(s)", batched(w)) for w in (1, 2, 3, 4, 8)
        ]
        rows.append(("to_thread per file, 4 threads", per_file))
        for label, fn in rows:
            t = _time(fn, args.runs)
            print(f"{label:<34} {t * 1000:8.1f} ms  {t / base:.2f}x  {size / t / 1e6:7.0f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
