"""Generate a git repository shaped like Materialize's mzbuild tree.

Usage: python benchmarks/materialize_shaped.py DEST [--seed N]

The 49 real manifests and the real MZFROM DAG (``tests/corpus``: 39 edges,
14 roots, longest chain 3 edges, ``debian-base`` with 19 direct and 26
transitive dependents, 17 ``cargo-build`` images) over a generated Cargo
workspace of 120 crates, so that the images have about 4,000 distinct input
files and 70 MB of input bytes, the largest 1,500-2,500 input files each.
Contents come from a seeded RNG: the same seed gives the same tree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "materialize"
CRATES = 120
GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z",
}
#: Binaries the real manifests build, in the order crates are made for them.
BINS = [
    "environmentd", "clusterd", "materialized", "sqllogictest", "testdrive", "balancerd",
    "orchestratord", "persistcli", "mz-catalog-debug", "kgen", "mz-debug",
    "mz-fivetran-destination", "headless-driver", "metabase-smoketest", "mz",
    "mz-frontegg-mock", "mz-deploy",
]  # fmt: skip


@dataclass(frozen=True)
class RepoStats:
    """The shape of a generated repository, computed from what was written."""

    images: int
    edges: int
    roots: int
    longest_chain: int
    base_direct: int
    base_transitive: int
    cargo_images: int
    crates: int
    input_files: int
    input_bytes: int
    max_image_inputs: int


def _blob(rng: random.Random, size: int) -> bytes:
    # Source-like text: random words, so it is neither empty nor all one byte.
    words = [b"fn", b"let", b"mut", b"impl", b"pub", b"struct", b"match", b"Some", b"None"]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words) + b" " + str(rng.getrandbits(32)).encode() + b";\n"
    return bytes(out[:size])


def _size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.01:
        return rng.randint(100_000, 600_000)  # test data, generated code
    if roll < 0.22:
        return rng.randint(20_000, 60_000)
    return rng.randint(1_000, 16_000)


def _write(dest: Path, rel: str, content: bytes, executable: bool = False) -> None:
    path = dest / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.chmod(path, 0o755 if executable else 0o644)


def _crates(rng: random.Random) -> tuple[list[str], dict[str, list[str]]]:
    """120 crate names and their path dependencies (a DAG: deps have lower index)."""
    names = [f"mz-lib{i:03d}" for i in range(CRATES - len(BINS))] + BINS
    deps: dict[str, list[str]] = {}
    libs = CRATES - len(BINS)
    for i, name in enumerate(names):
        if i < libs:
            # Libraries: a few "core" crates at the bottom that most depend on.
            pool = names[: min(i, 8)] + rng.sample(names[:i], min(i, 3))
            deps[name] = sorted(set(rng.sample(pool, min(len(pool), rng.randint(0, 4)))))
        else:
            # Binaries: big ones pull in most of the tree, small ones little.
            big = BINS.index(name) < 4
            count = rng.randint(34, 46) if big else rng.randint(2, 12)
            deps[name] = sorted(rng.sample(names[:libs], count))
    return names, deps


def generate(dest: Path, seed: int = 0) -> RepoStats:
    """Write the repository at ``dest`` (which must not exist) and commit it."""
    rng = random.Random(seed)
    dest.mkdir(parents=True, exist_ok=False)
    dag: dict[str, dict[str, object]] = json.loads((CORPUS / "dag.json").read_text())
    for manifest in sorted(CORPUS.rglob("mzbuild.yml")):
        rel = manifest.relative_to(CORPUS).as_posix()
        _write(dest, rel, manifest.read_bytes())
    for name, entry in sorted(dag.items()):
        directory = str(entry["dir"])
        mzfrom = [str(m) for m in entry["mzfrom"]]  # type: ignore[attr-defined]
        lines = [f"MZFROM {m}\n" for m in mzfrom] or ["FROM scratch\n"]
        _write(dest, f"{directory}/Dockerfile", "".join([*lines, f"COPY . /{name}\n"]).encode())
        for k in range(rng.randint(2, 20)):
            size = rng.randint(200, 20_000) if rng.random() < 0.93 else rng.randint(50_000, 300_000)
            _write(dest, f"{directory}/files/f{k}.txt", _blob(rng, size))
        _write(dest, f"{directory}/entrypoint.sh", b'#!/bin/sh\nexec "$@"\n', executable=True)
    names, deps = _crates(rng)
    members = ", ".join(f'"src/{n}"' for n in names)
    _write(dest, "Cargo.toml", f'[workspace]\nmembers = [{members}]\nresolver = "2"\n'.encode())
    _write(dest, "Cargo.lock", _blob(rng, 400_000))
    for k in range(6):
        _write(dest, f"ci/builder/file{k}", _blob(rng, 3_000))
    for name in names:
        table = "".join(f'{d} = {{ path = "../{d}" }}\n' for d in deps[name])
        toml = f'[package]\nname = "{name}"\nversion = "0.1.0"\nedition = "2021"\n\n'
        toml += f"[dependencies]\n{table}"
        _write(dest, f"src/{name}/Cargo.toml", toml.encode())
        main = "src/main.rs" if name in BINS else "src/lib.rs"
        _write(dest, f"src/{name}/{main}", _blob(rng, 2_000))
        for k in range(rng.randint(17, 35)):
            sub = rng.choice(["src", "src/sub", "tests", "benches"])
            _write(dest, f"src/{name}/{sub}/m{k}.rs", _blob(rng, _size(rng)))
        _write(dest, f"src/{name}/mzcompose.py", b"# not an input\n")
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(
        ["git", "commit", "-q", "-m", "materialize-shaped"],
        cwd=dest,
        check=True,
        env={**os.environ, **GIT_ENV},
    )
    stats = measure(dest)
    check(stats)
    return stats


#: Materialize's facts; counts must match exactly, sizes within 10 %.
TARGET = RepoStats(
    images=49,
    edges=39,
    roots=14,
    longest_chain=3,
    base_direct=19,
    base_transitive=26,
    cargo_images=17,
    crates=120,
    input_files=4_000,
    input_bytes=70_000_000,
    max_image_inputs=2_500,
)


def check(stats: RepoStats) -> None:
    """Fail loudly if the generated shape is not Materialize's."""
    for key in ("images", "edges", "roots", "longest_chain", "base_direct", "base_transitive",
                "cargo_images", "crates"):  # fmt: skip
        if getattr(stats, key) != getattr(TARGET, key):
            raise AssertionError(
                f"{key}: generated {getattr(stats, key)}, want {getattr(TARGET, key)}"
            )
    for key in ("input_files", "input_bytes"):
        got, want = getattr(stats, key), getattr(TARGET, key)
        if not 0.9 * want <= got <= 1.1 * want:
            raise AssertionError(f"{key}: generated {got}, want {want} +-10%")
    if not 1_500 <= stats.max_image_inputs <= 2_500:
        raise AssertionError(f"largest image has {stats.max_image_inputs} inputs, want 1500-2500")


def read_deps(dest: Path) -> dict[str, list[str]]:
    """The path dependencies of every generated crate, read back from its Cargo.toml."""
    deps: dict[str, list[str]] = {}
    for manifest in (dest / "src").glob("*/Cargo.toml"):
        lines = manifest.read_text().splitlines()
        deps[manifest.parent.name] = [ln.split(" = ")[0] for ln in lines if "{ path =" in ln]
    return deps


def image_inputs(dest: Path) -> dict[str, set[str]]:
    """Each image's input files by the mzbuild rules, computed without mzbuild_async."""
    dag: dict[str, dict[str, object]] = json.loads((CORPUS / "dag.json").read_text())
    deps = read_deps(dest)
    files = sorted(
        p.relative_to(dest).as_posix()
        for p in dest.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(dest).parts
    )
    dirs = {name: str(e["dir"]) for name, e in dag.items()}
    shared = {f for f in files if f.startswith("ci/builder/")} | {"Cargo.toml", "Cargo.lock"}

    def closure(crate: str) -> set[str]:
        found = {crate}
        for d in deps[crate]:
            found |= closure(d)
        return found

    inputs: dict[str, set[str]] = {}
    for name, directory in dirs.items():
        nested = [
            d + "/" for d in dirs.values() if d != directory and d.startswith(directory + "/")
        ]
        own = {
            f
            for f in files
            if f.startswith(directory + "/") and not f.startswith(tuple(nested) or ("\0",))
        }
        text = (dest / directory / "mzbuild.yml").read_text()
        bins = [b for b in BINS if f" {b}" in text.replace("[", " ").replace(",", " ")]
        if "cargo-build" in text:
            own |= shared
            for crate in set().union(*(closure(b) for b in bins)):
                own |= {
                    f
                    for f in files
                    if f.startswith(f"src/{crate}/") and f != f"src/{crate}/mzcompose.py"
                }
        inputs[name] = own
    return inputs


def measure(dest: Path) -> RepoStats:
    """Compute the shape of the repository at ``dest``."""
    dag: dict[str, dict[str, object]] = json.loads((CORPUS / "dag.json").read_text())
    deps = read_deps(dest)
    edges = {(n, str(m)) for n, e in dag.items() for m in e["mzfrom"]}  # type: ignore[attr-defined]

    def ancestors(n: str) -> set[str]:
        direct = {m for a, m in edges if a == n}
        return direct.union(*(ancestors(m) for m in direct)) if direct else set()

    def depth(n: str) -> int:
        return max((1 + depth(m) for a, m in edges if a == n), default=0)

    inputs = image_inputs(dest)
    distinct = set().union(*inputs.values())
    return RepoStats(
        images=len(dag),
        edges=len(edges),
        roots=sum(1 for n in dag if not any(a == n for a, _ in edges)),
        longest_chain=max(depth(n) for n in dag),
        base_direct=sum(1 for _, m in edges if m == "debian-base"),
        base_transitive=sum(1 for n in dag if "debian-base" in ancestors(n)),
        cargo_images=sum(
            1
            for n, e in dag.items()
            if "cargo-build" in (dest / str(e["dir"]) / "mzbuild.yml").read_text()
        ),
        crates=len(deps),
        input_files=len(distinct),
        input_bytes=sum((dest / f).stat().st_size for f in distinct),
        max_image_inputs=max(len(v) for v in inputs.values()),
    )


def main() -> int:
    """Generate the repository and print its shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.dest.exists():
        print(f"{args.dest}: already exists; give a new directory", file=sys.stderr)
        return 2
    stats = generate(args.dest, args.seed)
    for key, value in stats.__dict__.items():
        print(f"{key:18} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
