"""Whole-process ``fingerprint --all --json`` on a Materialize-shaped repository.

Usage: python benchmarks/bench_fingerprint.py [--runs N] [--repo DIR] [--seed N]
       [--no-digest-cache] [--cmd COMMAND]

Without ``--repo`` the repository is generated into a temporary directory by
``materialize_shaped.py``. The union of all images' inputs (by the
generator's rules) is written once to a JSON file. Then each round times,
as fresh processes (wall clock, stdout captured), in alternating order:

(a) the floor, ``floor_fingerprint.py``: one ``git ls-files`` and a
    single-threaded read + SHA-1 of every distinct input, no discovery;
(b) ``python -m mzbuild_async fingerprint --all --json --repo DIR``.

One warm-up run of each comes first, so the page cache is warm ("cold-ish":
fresh processes, warm cache). The digest cache of (b) lives in a temporary
directory (``MZBUILD_ASYNC_CACHE_DIR``), so it is warm after the warm-up
unless ``--no-digest-cache``. Every run of (b) must exit 0 and print one
JSON object with an entry per image, the same on every run; otherwise the
benchmark fails. ``--cmd`` replaces (b): ``{python}`` and ``{repo}`` in it
are substituted, the rest is split like a shell would.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_RATIO = 1.5
#: Files modified less than this long ago are not kept by the digest cache (racy-git rule).
RACY_SECONDS = 2.1


class BenchError(Exception):
    """A run failed or printed something other than what it should."""


def timed(cmd: Sequence[str], env: Mapping[str, str]) -> tuple[float, str]:
    """Run ``cmd`` as a fresh process; its wall time and stdout.

    Raises:
        BenchError: if it exits non-zero.
    """
    started = time.perf_counter()
    result = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env=env, cwd=HERE.parent
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise BenchError(f"{shlex.join(cmd)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return elapsed, result.stdout


def alternate(
    commands: Mapping[str, Sequence[str]],
    runs: int,
    env: Mapping[str, str],
    check: Callable[[str, str], None],
) -> dict[str, list[float]]:
    """Each command's wall times over ``runs`` rounds, the order reversed every other
    round; ``check(name, stdout)`` raises on a run that printed the wrong thing."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for round_ in range(runs):
        for name in names if round_ % 2 == 0 else names[::-1]:
            elapsed, out = timed(commands[name], env)
            check(name, out)
            samples[name].append(elapsed)
    return samples


def check_floor(out: str, files: int, size: int) -> None:
    """The floor must report every input file and byte."""
    if out.split() != [str(files), str(size)]:
        raise BenchError(f"floor printed {out.strip()!r}, expected '{files} {size}'")


def check_fingerprints(out: str, images: set[str]) -> dict[str, object]:
    """``out`` must be exactly one JSON object with an entry per image."""
    try:
        parsed = json.loads(out)
    except json.JSONDecodeError as exc:
        raise BenchError(
            f"(b) did not print one JSON object: {exc}; stdout {out[:300]!r}"
        ) from None
    if not isinstance(parsed, dict):
        raise BenchError(f"(b) printed JSON {type(parsed).__name__}, not an object")
    if set(parsed) != images:
        missing, extra = sorted(images - set(parsed)), sorted(set(parsed) - images)
        raise BenchError(
            f"(b) printed {len(parsed)} entries, expected one for each of the {len(images)}"
            f" images (missing {missing[:5]}, unexpected {extra[:5]})"
        )
    return parsed


def ours_command(args: argparse.Namespace, repo: Path) -> list[str]:
    """The command of (b): ``--cmd`` with placeholders filled, or the CLI."""
    if args.cmd:
        text = args.cmd.replace("{python}", shlex.quote(sys.executable))
        return shlex.split(text.replace("{repo}", shlex.quote(str(repo))))
    cmd = [sys.executable, "-m", "mzbuild_async", "fingerprint", "--all", "--json"]
    cmd += ["--repo", str(repo)]
    return [*cmd, "--no-digest-cache"] if args.no_digest_cache else cmd


def run(args: argparse.Namespace, tmp: Path) -> None:
    """Prepare the repository and input list, time both commands, print the figures."""
    sys.path.insert(0, str(HERE))
    from materialize_shaped import generate, image_inputs

    generated_at = 0.0
    if args.repo is None:
        repo = tmp / "repo"
        started = time.perf_counter()
        stats = generate(repo, args.seed)
        generated_at = time.monotonic()
        print(
            f"generated {repo} (seed {args.seed}) in {time.perf_counter() - started:.1f} s:"
            f" {stats.images} images, {stats.crates} crates, {stats.tracked_files:,} files"
        )
    else:
        repo = args.repo.resolve()
    per_image = image_inputs(repo)
    inputs = sorted(set().union(*per_image.values()))
    listing = tmp / "inputs.json"
    listing.write_text(json.dumps(inputs))
    size = sum((repo / p).stat().st_size for p in inputs)
    env = {**os.environ, "MZBUILD_ASYNC_CACHE_DIR": str(tmp / "cache")}
    floor = [sys.executable, str(HERE / "floor_fingerprint.py"), str(repo), str(listing)]
    ours = ours_command(args, repo)
    print(f"(a) {shlex.join(floor)}")
    print(f"(b) {shlex.join(ours)}")

    # Past the racy window, so the digest cache may keep what the warm-up hashes.
    if generated_at:
        time.sleep(max(0.0, generated_at + RACY_SECONDS - time.monotonic()))
    check_floor(timed(floor, env)[1], len(inputs), size)
    expected = check_fingerprints(timed(ours, env)[1], set(per_image))

    def check(which: str, out: str) -> None:
        if which == "floor":
            check_floor(out, len(inputs), size)
        elif check_fingerprints(out, set(per_image)) != expected:
            raise BenchError("(b) printed different fingerprints than in its warm-up run")

    samples = alternate({"floor": floor, "ours": ours}, args.runs, env, check)

    medians = {k: statistics.median(v) for k, v in samples.items()}
    ratio = medians["ours"] / medians["floor"]
    print(f"repository: {repo}")
    print(f"images: {len(per_image)}; distinct input files: {len(inputs):,}; bytes: {size:,}")
    print(f"runs: {args.runs} per command, fresh processes, alternating, after 1 warm-up each")
    print(f"{'':32} {'median':>9} {'min':>9} {'MB/s':>7}")
    label_b = "(b) --cmd" if args.cmd else "(b) mzbuild_async fingerprint"
    for which, label in (("floor", "(a) floor"), ("ours", label_b)):
        times = samples[which]
        print(
            f"{label:32} {medians[which] * 1e3:6.0f} ms {min(times) * 1e3:6.0f} ms"
            f" {size / medians[which] / 1e6:7.0f}"
        )
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio ours/floor (medians): {ratio:.2f}x")
    print(f"target: <= {TARGET_RATIO}x ({verdict})")


def main() -> int:
    """Parse the command line and run the benchmark; 1 if a run misbehaved."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (default 7)")
    parser.add_argument("--repo", type=Path, help="an existing repository (default: generate one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated repository")
    parser.add_argument(
        "--no-digest-cache", action="store_true", help="pass --no-digest-cache to (b)"
    )
    parser.add_argument("--cmd", help="command for (b); {python} and {repo} are substituted")
    return run_in_tmp(parser, run, "bench_fingerprint")


def run_in_tmp(
    parser: argparse.ArgumentParser,
    run: Callable[[argparse.Namespace, Path], None],
    name: str,
) -> int:
    """Parse ``--runs`` and the rest, then ``run`` in a temporary directory; 1 (and
    one line) if a run misbehaved."""
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory(prefix=f"{name.replace('_', '-')}-") as tmp:
        try:
            run(args, Path(tmp))
        except BenchError as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
