"""Generate a large mzbuild repository with a realistic DAG: 1,000 or 10,000 images.

Usage: python benchmarks/synthetic.py DEST --images N [--seed S]

Shaped like a big monorepo's image tree rather than a chain: a few shared bases
(``FROM scratch``, 1% of the images, at least 3), a middle of libraries and
runtimes (30%) each built ``MZFROM`` one or two images of the layers below it, and
leaves (the rest: services, tests, tools) ``MZFROM`` one to three of the middle
images, the extra parents as ``COPY --from`` stages, the way multi-stage builds
pull artifacts in. Depth comes from the middle's layers (up to 6 below a leaf),
fan-out from the bases (each has hundreds of transitive dependents). Each image
has its ``mzbuild.yml``, its ``Dockerfile`` and two to four small input files.
Everything comes from ``random.Random(seed)``; the commit is reproducible.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# (run as a script, this directory is on the path; scale.py puts it there)
from materialize_shaped import GIT_ENV  # fixed identity and dates: the same commit each time

#: Layers of the middle (libraries over libraries): a leaf sits up to this many above a base.
MIDDLE_LAYERS = 5


@dataclass(frozen=True)
class Shape:
    """What was generated: counts and the DAG's depth and widest fan-out."""

    images: int
    bases: int
    middle: int
    leaves: int
    edges: int
    depth: int
    files: int
    #: The most transitive dependents any image has.
    widest: int


def plan(images: int, seed: int = 0) -> dict[str, list[str]]:
    """Each image's parents (the first its ``MZFROM``, the others ``COPY --from``
    stages), in an order where parents come first."""
    rng = random.Random(seed)
    bases = max(3, images // 100)
    middle = (images * 3) // 10
    parents: dict[str, list[str]] = {f"base{i:05d}": [] for i in range(bases)}
    layers: list[list[str]] = [list(parents)]
    for i in range(middle):
        layer = 1 + i * MIDDLE_LAYERS // max(middle, 1)
        name = f"lib{i:05d}"
        below = [n for lower in layers[:layer] for n in lower]
        picked = rng.sample(below, k=min(len(below), rng.choice((1, 1, 2))))
        parents[name] = picked
        while len(layers) <= layer:
            layers.append([])
        layers[layer].append(name)
    libs = [n for layer in layers[1:] for n in layer] or layers[0]
    for i in range(images - bases - middle):
        parents[f"app{i:05d}"] = rng.sample(libs, k=min(len(libs), rng.choice((1, 1, 2, 3))))
    return parents


def generate(dest: Path, images: int, seed: int = 0) -> Shape:
    """Write and commit the repository of ``images`` images at ``dest``."""
    rng = random.Random(seed + 1)
    parents = plan(images, seed)
    files = 0
    for name, wanted in parents.items():
        where = dest / "images" / name
        where.mkdir(parents=True)
        (where / "mzbuild.yml").write_text(f"name: {name}\n")
        lines = [f"MZFROM {p} AS {p}" for p in wanted[1:]]
        lines.append(f"MZFROM {wanted[0]}" if wanted else "FROM scratch")
        lines += [f"COPY --from={p} /srv/{p}/ /srv/{p}/" for p in wanted[1:]]
        for k in range(rng.randint(2, 4)):
            (where / f"part{k}.txt").write_text(f"{name} part {k} {rng.getrandbits(64):x}\n")
            lines.append(f"COPY part{k}.txt /srv/{name}/part{k}.txt")
            files += 1
        (where / "Dockerfile").write_text("\n".join(lines) + "\n")
    env = {**os.environ, **GIT_ENV}
    for args in (("init", "-q", "-b", "main"), ("add", "-A"), ("commit", "-q", "-m", "images")):
        subprocess.run(["git", *args], cwd=dest, check=True, env=env)
    return shape_of(parents, files)


def shape_of(parents: dict[str, list[str]], files: int) -> Shape:
    """The counts, depth and widest fan-out of a plan."""
    depth: dict[str, int] = {}
    for name, wanted in parents.items():  # (parents first)
        depth[name] = 1 + max((depth[p] for p in wanted), default=0)
    below: dict[str, set[str]] = {n: set() for n in parents}
    for name in reversed(list(parents)):  # (children before their parents)
        for parent in parents[name]:
            below[parent] |= below[name] | {name}
    return Shape(
        images=len(parents),
        bases=sum(1 for n in parents if n.startswith("base")),
        middle=sum(1 for n in parents if n.startswith("lib")),
        leaves=sum(1 for n in parents if n.startswith("app")),
        edges=sum(len(p) for p in parents.values()),
        depth=max(depth.values()),
        files=files + 2 * len(parents),
        widest=max(len(b) for b in below.values()),
    )


def main() -> int:
    """Generate, print the shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.dest.exists() and any(args.dest.iterdir()):
        sys.exit(f"{args.dest}: not empty; give a new directory")
    args.dest.mkdir(parents=True, exist_ok=True)
    print(generate(args.dest, args.images, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
