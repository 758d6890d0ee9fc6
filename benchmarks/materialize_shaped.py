"""Generate a git repository shaped like Materialize's mzbuild tree.

Usage: python benchmarks/materialize_shaped.py DEST [--seed N]

The repository has the 49 real manifests (copied from ``tests/corpus``) and
Dockerfiles with the real ``MZFROM`` lines: 39 distinct edges, 14 roots, a
longest chain of 3 edges, ``debian-base`` with 19 direct and 26 transitive
dependents, 17 images with a ``cargo-build`` pre-image. Beneath them is a
Cargo workspace of 120 crates whose ``[dependencies]`` and
``[build-dependencies]`` path entries form a DAG around a few core crates,
sized so the images have about 4,000 distinct input files and 70 MB of input
bytes, the largest image 1,500-2,500 input files.

An image's inputs are the files under its directory (minus deeper image
directories), and for a ``cargo-build`` pre-image also ``ci/builder/**``,
``Cargo.toml``, ``Cargo.lock`` and every file of the crates in the
path-dependency closure of the crate owning each ``bin`` (without a
``mzcompose``/``mzcompose.py`` at a crate's top, as mzbuild does).

Everything comes from ``random.Random(seed)``: the same seed gives the same
files, modes and commit. After committing, the generator measures the tree
it wrote (from ``git ls-files``, the manifests, Dockerfiles and
``Cargo.toml`` files) and asserts the shape.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import posixpath
import random
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "materialize"

#: Fixed identity and dates, and no user or system git config, so the commit is reproducible.
GIT_ENV = {
    "GIT_AUTHOR_NAME": "mzbuild bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_NAME": "mzbuild bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "TZ": "UTC",
}

MZFROM_RE = re.compile(rb"^MZFROM\s*(\S+)")
NAME_RE = re.compile(r"[A-Za-z0-9-]+")
CARGO_SHARED = ("Cargo.toml", "Cargo.lock")
BUILDER_DIR = "ci/builder"
EXCLUDED_CRATE_FILES = ("mzcompose", "mzcompose.py")

#: The crates that own the binaries the real manifests build: (directory, package, bin).
#: A bin equal to the package name is ``src/main.rs``, any other ``src/bin/NAME.rs``.
BIN_CRATES = (
    ("src/environmentd", "mz-environmentd", "environmentd"),
    ("src/clusterd", "mz-clusterd", "clusterd"),
    ("src/materialized", "mz-materialized", "materialized"),
    ("src/sqllogictest", "mz-sqllogictest", "sqllogictest"),
    ("src/testdrive", "mz-testdrive", "testdrive"),
    ("src/balancerd", "mz-balancerd", "balancerd"),
    ("src/orchestratord", "mz-orchestratord", "orchestratord"),
    ("src/persist-cli", "mz-persist-cli", "persistcli"),
    ("src/catalog-debug", "mz-catalog-debug", "mz-catalog-debug"),
    ("src/kafka-util", "mz-kafka-util", "kgen"),
    ("src/mz-debug", "mz-debug", "mz-debug"),
    ("src/fivetran-destination", "mz-fivetran-destination", "mz-fivetran-destination"),
    ("src/clusterd-test-driver", "mz-clusterd-test-driver", "headless-driver"),
    ("test/metabase/smoketest", "mz-metabase-smoketest", "metabase-smoketest"),
    ("src/mz", "mz", "mz"),
    ("src/frontegg-mock", "mz-frontegg-mock", "mz-frontegg-mock"),
    ("src/mz-deploy", "mz-deploy", "mz-deploy"),
)
#: Binary crates that pull in most of the tree, and the bin crates they depend on.
BIG_BINS = {"environmentd": 12, "clusterd": 9, "sqllogictest": 5, "testdrive": 7}
LIB_DEPS = (0, 2)  # extra path dependencies of a library, besides the core
LIB_REACH = 8  # how far down the order, on average, a library reaches
BIN_ON_BIN = {"materialized": ("environmentd", "clusterd"), "sqllogictest": ("environmentd",)}

#: Library crates under ``src/``, roughly bottom-up; the first ones are the core.
LIBS = (
    "workspace-hack", "ore", "build-tools", "proto", "ore-proc", "ore-build", "build-info", "repr",
    "lowertest", "lowertest-derive", "persist-types", "sql-lexer", "sql-parser", "pgrepr-consts",
    "pgtz", "pgrepr", "pgwire-common", "expr-derive", "expr", "regexp", "metrics", "tracing",
    "timely-util", "dyncfg", "dyncfg-derive", "dyncfg-file", "dyncfg-launchdarkly", "http-util",
    "prof", "prof-http", "avro", "ccsr", "interchange", "aws-util", "secrets", "cloud-resources",
    "orchestrator", "orchestrator-process", "orchestrator-kubernetes", "orchestrator-tracing",
    "postgres-util", "mysql-util", "sql-server-util", "ssh-util", "tls-util", "persist",
    "persist-proc", "persist-client", "txn-wal", "timestamp-oracle", "rocksdb-types", "rocksdb",
    "storage-types", "storage-client", "storage-operators", "storage", "storage-controller",
    "compute-types", "compute-client", "compute", "cluster-client", "cluster", "controller-types",
    "controller", "service", "sql-pretty", "sql", "transform", "expr-parser", "expr-test-util",
    "repr-test-util", "catalog-protos", "catalog", "durable-cache", "adapter-types", "adapter",
    "audit-log", "pgcopy", "pgwire", "segment", "license-keys", "auth", "authenticator",
    "frontegg-auth", "frontegg-client", "cloud-api", "cloud-provider", "server-core", "alloc",
    "alloc-default", "arrow-util", "walkabout", "npm", "lsp-server", "pgtest", "s3-datagen",
    "postgres-client", "test-macro", "workload-replay", "parquet-util", "iceberg-util",
    "mysql-client-util", "kafka-admin",
)  # fmt: skip
CRATES = 120
CORE = 4  # workspace-hack, ore, build-tools, proto: nearly everything depends on them

WORDS = (
    "catalog", "plan", "optimize", "render", "source", "sink", "frontier", "timestamp", "batch",
    "arrange", "join", "reduce", "window", "decode", "encode", "schema", "column", "row", "datum",
    "codec", "client", "server", "session", "protocol", "config", "metrics", "trace", "shard",
    "lease", "compaction", "reader", "writer", "state", "machine", "operator", "collection",
    "index", "view", "storage", "compute", "cluster", "replica", "command", "response", "error",
    "util"
)  # fmt: skip
RUST_TYPES = ["u64", "String", "Vec<Row>", "Datum<'a>", "Option<GlobalId>", "&str", "Timestamp"]


@dataclass(frozen=True)
class RepoStats:
    """The shape of a generated repository, measured from what was written."""

    images: int
    edges: int
    roots: int
    longest_chain: int
    base_image: str
    base_direct: int
    base_transitive: int
    cargo_images: int
    crates: int
    input_files: int
    input_bytes: int
    max_image: str
    max_image_inputs: int
    tracked_files: int
    executable_files: int


#: Materialize's facts: counts exact, files and bytes within 10 %, the largest image in range.
TARGET = RepoStats(
    images=49,
    edges=39,
    roots=14,
    longest_chain=3,
    base_image="debian-base",
    base_direct=19,
    base_transitive=26,
    cargo_images=17,
    crates=120,
    input_files=4_000,
    input_bytes=70_000_000,
    max_image="",
    max_image_inputs=2_000,
    tracked_files=0,
    executable_files=0,
)
EXACT = (
    "images", "edges", "roots", "longest_chain", "base_image", "base_direct",
    "base_transitive", "cargo_images", "crates",
)  # fmt: skip
MAX_INPUTS_RANGE = (1_500, 2_500)


# --- the input rules, shared by planning and measuring -------------------------------


@dataclass(frozen=True)
class CrateInfo:
    """A workspace crate as the input rules see it."""

    name: str
    path: str
    bins: tuple[str, ...]
    #: Directories of its ``[dependencies]`` and ``[build-dependencies]`` path entries.
    deps: tuple[str, ...]


@dataclass(frozen=True)
class ImageInfo:
    """An image as the input rules see it."""

    name: str
    directory: str
    mzfrom: tuple[str, ...]
    cargo: bool
    bins: tuple[str, ...]


def _under(files: Sequence[str], directory: str) -> list[str]:
    """The paths in sorted ``files`` below ``directory`` (all of them for ``""``)."""
    if not directory:
        return list(files)
    prefix = directory + "/"
    start = bisect.bisect_left(files, prefix)
    end = bisect.bisect_left(files, directory + "0")  # "0" sorts right after "/"
    return list(files[start:end])


def compute_inputs(
    files: Sequence[str], images: Mapping[str, ImageInfo], crates: Mapping[str, CrateInfo]
) -> dict[str, set[str]]:
    """Each image's input files by the mzbuild rules; ``files`` sorted, ``crates`` by path."""
    by_bin: dict[str, CrateInfo] = {}
    for crate in crates.values():
        for name in crate.bins:
            if name in by_bin:
                raise AssertionError(
                    f"bin {name!r} in two crates: {crate.path}, {by_bin[name].path}"
                )
            by_bin[name] = crate
    shared = {*_under(files, BUILDER_DIR), *(f for f in CARGO_SHARED if f in set(files))}
    crate_files: dict[str, set[str]] = {}

    def files_of(path: str) -> set[str]:
        if path not in crate_files:
            excluded = {posixpath.join(path, n) for n in EXCLUDED_CRATE_FILES}
            crate_files[path] = {f for f in _under(files, path) if f not in excluded}
        return crate_files[path]

    def closure(crate: CrateInfo) -> set[str]:
        seen: set[str] = set()
        stack = [crate.path]
        while stack:
            path = stack.pop()
            if path not in seen:
                seen.add(path)
                stack.extend(crates[path].deps)
        return seen

    directories = [image.directory for image in images.values()]
    inputs: dict[str, set[str]] = {}
    for name, image in images.items():
        nested = tuple(
            d + "/"
            for d in directories
            if d != image.directory and d.startswith(image.directory + "/")
        )
        own = {f for f in _under(files, image.directory) if not (nested and f.startswith(nested))}
        if image.cargo:
            own |= shared
            for bin_name in image.bins:
                if bin_name not in by_bin:
                    raise AssertionError(f"{name}: no crate has bin {bin_name!r}")
                for path in closure(by_bin[bin_name]):
                    own |= files_of(path)
        inputs[name] = own
    return inputs


# --- measuring a tree on disk ---------------------------------------------------------


def _git_files(repo: Path) -> list[str]:
    """The visible files of ``repo``, sorted, as ``git ls-files`` lists them."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout
    return sorted({p for p in out.decode().split("\0") if p})


def _read_images(repo: Path, files: Sequence[str]) -> dict[str, ImageInfo]:
    """Every image: its ``mzbuild.yml`` and the ``MZFROM`` lines of its Dockerfile."""
    images: dict[str, ImageInfo] = {}
    for path in files:
        if posixpath.basename(path) != "mzbuild.yml":
            continue
        directory = posixpath.dirname(path)
        manifest: Any = yaml.safe_load((repo / path).read_text())
        name = str(manifest["name"])
        if not NAME_RE.fullmatch(name):
            raise AssertionError(f"{path}: image name {name!r} is not [A-Za-z0-9-]+")
        bins: list[str] = []
        cargo = False
        for pre in manifest.get("pre-image") or []:
            if pre.get("type") != "cargo-build":
                raise AssertionError(f"{path}: only cargo-build pre-images are modelled")
            if "example" in pre:
                raise AssertionError(f"{path}: cargo-build examples are not modelled")
            cargo = True
            value = pre.get("bin", [])
            bins += [value] if isinstance(value, str) else [str(v) for v in value]
        dockerfile = (repo / directory / "Dockerfile").read_bytes()
        mzfrom = tuple(
            m.group(1).decode() for line in dockerfile.splitlines() if (m := MZFROM_RE.match(line))
        )
        if name in images:
            raise AssertionError(f"{path}: image {name!r} defined twice")
        images[name] = ImageInfo(name, directory, mzfrom, cargo, tuple(bins))
    return images


def _read_crates(repo: Path, files: Sequence[str]) -> dict[str, CrateInfo]:
    """The workspace members: names, bins (``src/main.rs``, ``src/bin/*``), path deps."""
    present = set(files)
    with open(repo / "Cargo.toml", "rb") as f:
        members: list[str] = tomllib.load(f)["workspace"]["members"]
    crates: dict[str, CrateInfo] = {}
    for member in members:
        path = posixpath.normpath(member)
        with open(repo / path / "Cargo.toml", "rb") as f:
            config = tomllib.load(f)
        name = str(config["package"]["name"])
        bins = [str(b["name"]) for b in config.get("bin", [])]
        if f"{path}/src/main.rs" in present:
            bins.append(name)
        for f_path in _under(files, f"{path}/src/bin"):
            rest = f_path[len(path) + len("/src/bin/") :]
            if "/" not in rest and rest.endswith(".rs"):
                bins.append(rest[:-3])
            elif rest.count("/") == 1 and rest.endswith("/main.rs"):
                bins.append(rest.split("/")[0])
        deps = {
            posixpath.normpath(posixpath.join(path, spec["path"]))
            for table in ("dependencies", "build-dependencies")
            for spec in config.get(table, {}).values()
            if isinstance(spec, dict) and "path" in spec
        }
        crates[path] = CrateInfo(name, path, tuple(bins), tuple(sorted(deps)))
    return crates


def image_inputs(repo: Path) -> dict[str, set[str]]:
    """Each image's input files in the repository at ``repo``, by the rules above."""
    files = _git_files(repo)
    return compute_inputs(files, _read_images(repo, files), _read_crates(repo, files))


def measure(repo: Path) -> RepoStats:
    """Measure the shape of the repository at ``repo`` from its files alone."""
    files = _git_files(repo)
    images = _read_images(repo, files)
    crates = _read_crates(repo, files)
    inputs = compute_inputs(files, images, crates)
    edges = {(name, dep) for name, image in images.items() for dep in image.mzfrom}
    parents: dict[str, set[str]] = {name: set() for name in images}
    for child, dep in edges:
        if dep not in images:
            raise AssertionError(f"{child}: MZFROM names unknown image {dep!r}")
        parents[child].add(dep)

    def depth(name: str, path: tuple[str, ...] = ()) -> int:
        if name in path:
            raise AssertionError(f"MZFROM cycle: {' -> '.join((*path, name))}")
        return max((1 + depth(p, (*path, name)) for p in parents[name]), default=0)

    def ancestors(name: str) -> set[str]:
        found: set[str] = set()
        for p in parents[name]:
            found |= {p} | ancestors(p)
        return found

    direct = {name: sum(1 for _, dep in edges if dep == name) for name in images}
    base = min(images, key=lambda n: (-direct[n], n))
    distinct = set().union(*inputs.values())
    largest = min(inputs, key=lambda n: (-len(inputs[n]), n))
    executable = sum(1 for f in files if os.stat(repo / f).st_mode & 0o111)
    return RepoStats(
        images=len(images),
        edges=len(edges),
        roots=sum(1 for p in parents.values() if not p),
        longest_chain=max(depth(name) for name in images),
        base_image=base,
        base_direct=direct[base],
        base_transitive=sum(1 for name in images if base in ancestors(name)),
        cargo_images=sum(1 for image in images.values() if image.cargo),
        crates=len(crates),
        input_files=len(distinct),
        input_bytes=sum(os.stat(repo / f).st_size for f in distinct),
        max_image=largest,
        max_image_inputs=len(inputs[largest]),
        tracked_files=len(files),
        executable_files=executable,
    )


def check(stats: RepoStats) -> None:
    """Fail loudly unless ``stats`` has Materialize's shape."""
    for key in EXACT:
        got, want = getattr(stats, key), getattr(TARGET, key)
        if got != want:
            raise AssertionError(f"{key}: generated {got}, want {want}")
    for key in ("input_files", "input_bytes"):
        got, want = getattr(stats, key), getattr(TARGET, key)
        if not 0.9 * want <= got <= 1.1 * want:
            raise AssertionError(f"{key}: generated {got}, want {want} +-10%")
    low, high = MAX_INPUTS_RANGE
    if not low <= stats.max_image_inputs <= high:
        raise AssertionError(
            f"largest image has {stats.max_image_inputs} inputs, want {low}-{high}"
        )


# --- planning ---------------------------------------------------------------------------


@dataclass
class _File:
    """A file to write: fixed content, or generated text/binary of a size."""

    size: int = 0
    kind: str = "rust"  # rust | text | binary | fixed
    executable: bool = False
    content: bytes = b""

    @property
    def length(self) -> int:
        """The size the file will have on disk."""
        return len(self.content) if self.kind == "fixed" else self.size


@dataclass
class _Crate:
    """A crate being planned: its place, binary and dependencies by directory."""

    path: str
    name: str
    bin: str | None
    deps: list[str] = field(default_factory=list)
    build_deps: list[str] = field(default_factory=list)
    dev_deps: list[str] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    removable: list[str] = field(default_factory=list)


@dataclass
class _Image:
    """An image of the corpus: its manifest, directory and ``MZFROM`` lines."""

    name: str
    directory: str
    mzfrom: list[str]
    manifest: bytes
    bins: list[str]
    cargo: bool


def _load_corpus() -> list[_Image]:
    """The real manifests and their MZFROM lines, from ``tests/corpus``."""
    images: list[_Image] = []
    for manifest in sorted(CORPUS.rglob("mzbuild.yml")):
        directory = manifest.parent.relative_to(CORPUS).as_posix()
        data: Any = yaml.safe_load(manifest.read_text())
        bins: list[str] = []
        cargo = False
        for pre in data.get("pre-image") or []:
            cargo = cargo or pre.get("type") == "cargo-build"
            value = pre.get("bin", [])
            bins += [value] if isinstance(value, str) else list(value)
        images.append(_Image(data["name"], directory, [], manifest.read_bytes(), bins, cargo))
    dag: dict[str, Any] = json.loads((CORPUS / "dag.json").read_text())
    for image in images:
        image.mzfrom = [str(m) for m in dag[image.name]["mzfrom"]]
    return images


def _size(rng: random.Random) -> int:
    """A source file's size: mostly 1-30 KB, a few generated or fixture files larger."""
    if rng.random() < 0.03:
        return rng.randint(30_000, 250_000)
    return min(30_000, max(1_000, int(rng.lognormvariate(math.log(6_500), 0.8))))


def _unique(rng: random.Random, taken: set[str]) -> str:
    """A module name not in ``taken`` (which it joins)."""
    while True:
        name = rng.choice(WORDS)
        if name in taken:
            name = f"{name}_{rng.choice(WORDS)}"
        if name in taken:
            name = f"{name}{rng.randint(2, 999)}"
        if name not in taken:
            taken.add(name)
            return name


def _plan_crates(rng: random.Random) -> dict[str, _Crate]:
    """120 crates with a path-dependency DAG: deps always come earlier in the order."""
    libs = LIBS
    if len(libs) + len(BIN_CRATES) != CRATES:
        raise AssertionError(f"need {CRATES - len(BIN_CRATES)} library names, have {len(libs)}")
    order = [
        _Crate(f"src/{lib}", lib if lib == "workspace-hack" else f"mz-{lib}", None) for lib in libs
    ]
    order += [_Crate(path, name, bin_name) for path, name, bin_name in BIN_CRATES]
    by_bin = {c.bin: c for c in order if c.bin}
    hack, ore, build_tools, proto = (c.path for c in order[:CORE])
    nlibs = len(libs)
    for i, crate in enumerate(order):
        if i == 0:
            continue
        deps = {hack}
        if i > 1 and rng.random() < 0.9:
            deps.add(ore)
        if i > 3 and rng.random() < 0.35:
            deps.add(proto)
        if crate.bin is None:
            # Mostly recent neighbours (a layer below), now and then something far down.
            for _ in range(rng.randint(*LIB_DEPS)):
                j = i - 1 - min(i - 1, int(rng.expovariate(1 / LIB_REACH)))
                if j >= CORE:
                    deps.add(order[j].path)
        else:
            count = BIG_BINS.get(crate.bin, rng.randint(2, 7))
            deps.update(order[j].path for j in rng.sample(range(CORE, nlibs), count))
            deps.update(by_bin[b].path for b in BIN_ON_BIN.get(crate.bin, ()))
        deps.discard(crate.path)
        crate.deps = sorted(deps)
        if i > 3 and rng.random() < 0.25:
            crate.build_deps = [build_tools]
        if rng.random() < 0.4:
            crate.dev_deps = sorted({order[rng.randrange(nlibs)].path} - {crate.path, *deps})
    for crate in order:
        if crate.bin in ("testdrive", "materialized"):
            crate.features = ["default", "foundationdb"]
    return {c.path: c for c in order}


def _crate_files(
    rng: random.Random, crate: _Crate, names: Mapping[str, str], files: dict[str, _File]
) -> None:
    """Plan one crate: its ``Cargo.toml``, targets, modules, tests and benches."""
    top = crate.path

    def entry(dep: str, extra: str = "") -> str:
        return f'{names[dep]} = {{ path = "{posixpath.relpath(dep, top)}"{extra} }}\n'

    lines = [f'[package]\nname = "{crate.name}"\nversion = "0.0.0"\nedition.workspace = true\n']
    lines.append('rust-version.workspace = true\nlicense = "Apache-2.0"\npublish = false\n')
    lines.append("\n[dependencies]\n")
    lines.append('anyhow = "1.0.98"\nserde = { version = "1.0.219", features = ["derive"] }\n')
    lines.append('tokio = { version = "1.44.1", features = ["full"] }\n')
    lines += [entry(dep) for dep in crate.deps]
    if crate.build_deps:
        lines.append('\n[build-dependencies]\nprost-build = "0.13.5"\n')
        lines += [entry(dep, ", default-features = false") for dep in crate.build_deps]
    if crate.dev_deps:
        lines.append('\n[dev-dependencies]\ninsta = "1.42"\n')
        lines += [entry(dep) for dep in crate.dev_deps]  # not in any closure
    if crate.features:
        lines.append("\n[features]\n" + "".join(f"{f} = []\n" for f in crate.features))
    files[f"{top}/Cargo.toml"] = _File(kind="fixed", content="".join(lines).encode())
    if crate.bin == crate.name:
        files[f"{top}/src/main.rs"] = _File(_size(rng))
    else:
        files[f"{top}/src/lib.rs"] = _File(_size(rng))
        if crate.bin:
            files[f"{top}/src/bin/{crate.bin}.rs"] = _File(_size(rng))
    if crate.build_deps:
        files[f"{top}/build.rs"] = _File(rng.randint(800, 4_000))
        for k in range(rng.randint(1, 4)):
            files[f"{top}/src/{posixpath.basename(top)}_{k}.proto"] = _File(_size(rng), "text")
    if rng.random() < 0.3:
        files[f"{top}/README.md"] = _File(rng.randint(500, 6_000), "text")
    if rng.random() < 0.1:
        files[f"{top}/mzcompose.py"] = _File(rng.randint(500, 5_000), "text")  # not an input
    modules = min(200, max(3, round(rng.lognormvariate(math.log(22), 0.75))))
    taken: set[str] = {"lib", "main"}
    subdirs = [_unique(rng, taken) for _ in range(rng.randint(1, 4))]
    for _ in range(modules):
        roll = rng.random()
        stem = _unique(rng, taken)
        if roll < 0.55:
            path = f"{top}/src/{stem}.rs"
        elif roll < 0.85:
            path = f"{top}/src/{rng.choice(subdirs)}/{stem}.rs"
        elif roll < 0.97:
            path = f"{top}/tests/{stem}.rs"
        else:
            path = f"{top}/benches/{stem}.rs"
        files[path] = _File(_size(rng))
        crate.removable.append(path)


def _image_files(rng: random.Random, image: _Image, files: dict[str, _File]) -> None:
    """Plan one image directory: manifest, Dockerfile, scripts, configs, data."""
    top = image.directory
    files[f"{top}/mzbuild.yml"] = _File(kind="fixed", content=image.manifest)
    header = "# Copyright Materialize, Inc. and contributors. All rights reserved.\n\n"
    body: list[str] = []
    for k, dep in enumerate(image.mzfrom):
        last = k == len(image.mzfrom) - 1
        body.append(f"MZFROM {dep}\n" if last else f"MZFROM {dep} AS stage{k}\n")
        if not last:
            body.append("RUN true\n\n")
    if not image.mzfrom:
        body.append("FROM scratch\n")
    extras = min(40, max(1, round(rng.lognormvariate(math.log(5), 0.8))))
    scripts = []
    for k in range(extras):
        roll = rng.random()
        if roll < 0.3:
            name = f"{rng.choice(WORDS)}-{k}.sh"
            files[f"{top}/{name}"] = _File(rng.randint(300, 4_000), "text", executable=True)
            scripts.append(name)
        elif roll < 0.6:
            files[f"{top}/config/{rng.choice(WORDS)}-{k}.yml"] = _File(
                rng.randint(200, 6_000), "text"
            )
        elif roll < 0.93:
            files[f"{top}/{rng.choice(WORDS)}_{k}.py"] = _File(rng.randint(1_000, 20_000), "text")
        else:
            files[f"{top}/data/{rng.choice(WORDS)}-{k}.csv"] = _File(
                rng.randint(50_000, 400_000), "text"
            )
    body += [f"COPY {s} /usr/local/bin/\n" for s in scripts]
    body += [f"COPY {b} /usr/local/bin/\n" for b in image.bins]
    body.append('ENTRYPOINT ["tini", "--"]\n' if image.cargo else 'CMD ["/bin/sh"]\n')
    files[f"{top}/Dockerfile"] = _File(kind="fixed", content=(header + "".join(body)).encode())


def _repo_files(rng: random.Random, crates: Iterable[_Crate], files: dict[str, _File]) -> None:
    """Workspace root, builder and files no image uses (docs, Python, scripts)."""
    members = "".join(f'    "{c}",\n' for c in sorted(c.path for c in crates))
    files["Cargo.toml"] = _File(
        kind="fixed",
        content=(
            f'[workspace]\nmembers = [\n{members}]\nresolver = "2"\n\n'
            '[workspace.package]\nedition = "2024"\nrust-version = "1.88.0"\n\n'
            '[profile.optimized]\ninherits = "release"\nlto = "off"\n'
        ).encode(),
    )
    lock = ["# This file is automatically @generated by Cargo.\nversion = 4\n"]
    for k in range(1_400):
        lock.append(
            f'\n[[package]]\nname = "{rng.choice(WORDS)}-{k}"\nversion = "{rng.randint(0, 3)}.'
            f'{rng.randint(0, 40)}.{rng.randint(0, 20)}"\nsource = "registry+crates"\n'
            f'checksum = "{rng.getrandbits(256):064x}"\ndependencies = [\n'
            + "".join(f' "{rng.choice(WORDS)}-{rng.randrange(1_400)}",\n' for _ in range(3))
            + "]\n"
        )
    files["Cargo.lock"] = _File(kind="fixed", content="".join(lock).encode())
    for name, size, executable in [
        ("Dockerfile", 9_000, False), ("build.sh", 2_500, True), ("stable.stamp", 40, False),
        ("nightly.stamp", 40, False), ("ssh_known_hosts", 1_200, False),
        ("README.md", 3_000, False), ("tools/rust-toolchain.sh", 1_800, True),
        ("sources.list", 600, False),
    ]:  # fmt: skip
        files[f"{BUILDER_DIR}/{name}"] = _File(size, "text", executable=executable)
    files[".gitignore"] = _File(kind="fixed", content=b"/target\n__pycache__/\n*.pyc\n")
    files["README.md"] = _File(8_000, "text")
    files["LICENSE"] = _File(11_000, "text")
    for k in range(12):
        files[f"bin/{rng.choice(WORDS)}-{k}"] = _File(rng.randint(300, 3_000), "text", True)
    for k in range(180):
        files[f"doc/user/content/{rng.choice(WORDS)}/{k}.md"] = _File(
            rng.randint(1_000, 20_000), "text"
        )
    for k in range(90):
        files[f"misc/python/materialize/{rng.choice(WORDS)}_{k}.py"] = _File(_size(rng), "text")


def _plan_inputs(
    files: Mapping[str, _File], images: Sequence[_Image], crates: Mapping[str, _Crate]
) -> dict[str, set[str]]:
    """The planned images' inputs, by the same rules as for a tree on disk."""
    infos = {
        i.name: ImageInfo(i.name, i.directory, tuple(i.mzfrom), i.cargo, tuple(i.bins))
        for i in images
    }
    crate_infos = {
        c.path: CrateInfo(
            c.name, c.path, (c.bin,) if c.bin else (), tuple(sorted({*c.deps, *c.build_deps}))
        )
        for c in crates.values()
    }
    return compute_inputs(sorted(files), infos, crate_infos)


def _plan(seed: int) -> dict[str, _File]:
    """Every file of the repository, calibrated to the target files and bytes."""
    rng = random.Random(seed)
    images = _load_corpus()
    for _attempt in range(50):
        files: dict[str, _File] = {}
        crates = _plan_crates(rng)
        _repo_files(rng, crates.values(), files)
        names = {path: crate.name for path, crate in crates.items()}
        for crate in crates.values():
            _crate_files(rng, crate, names, files)
        for image in images:
            _image_files(rng, image, files)
        inputs = _plan_inputs(files, images, crates)
        distinct = set().union(*inputs.values())
        covered = sorted(p for p, c in crates.items() if f"{p}/Cargo.toml" in distinct)
        # Test data: enough large files to carry the bytes the small ones leave over.
        small = sum(files[f].length for f in distinct)
        count = max(8, round((TARGET.input_bytes - small) / 1_100_000))
        for k in range(count):
            crate = crates[rng.choice(covered)]
            ext = rng.choice(["slt", "td", "json", "bin", "bin"])
            path = f"{crate.path}/tests/testdata/{rng.choice(WORDS)}-{k}.{ext}"
            files[path] = _File(1, "binary" if ext == "bin" else "text")
        # Files: add or drop small modules in crates the images use.
        inputs = _plan_inputs(files, images, crates)
        missing = TARGET.input_files - len(set().union(*inputs.values()))
        for _ in range(abs(missing)):
            crate = crates[rng.choice(covered)]
            if missing > 0:
                path = f"{crate.path}/src/{rng.choice(WORDS)}_{rng.choice(WORDS)}_{len(files)}.rs"
                files[path] = _File(_size(rng))
                crate.removable.append(path)
            elif len(crate.removable) > 3:
                del files[crate.removable.pop(rng.randrange(len(crate.removable)))]
        inputs = _plan_inputs(files, images, crates)
        largest = max(len(v) for v in inputs.values())
        if not MAX_INPUTS_RANGE[0] + 100 <= largest <= MAX_INPUTS_RANGE[1] - 100:
            continue  # closures too big or too small for this draw: draw again
        # Bytes: the test data takes up what is left, each file at most 4 MB.
        distinct = set().union(*inputs.values())
        data = sorted(f for f in distinct if "/tests/testdata/" in f)
        rest = sum(files[f].length for f in distinct if f not in data)
        _share(rng, [files[f] for f in data], TARGET.input_bytes - rest, 4_000_000)
        return files
    raise AssertionError("no draw of the crate graph gave the largest image 1,600-2,400 inputs")


def _share(rng: random.Random, data: Sequence[_File], total: int, cap: int) -> None:
    """Give ``data`` random sizes summing to ``total``, none above ``cap``."""
    weights = [rng.paretovariate(1.5) for _ in data]
    left, open_ = total, list(range(len(data)))
    while open_:
        scale = left / sum(weights[i] for i in open_)
        over = [i for i in open_ if weights[i] * scale > cap]
        if not over:
            for i in open_:
                data[i].size = max(1_000, round(weights[i] * scale))
            return
        for i in over:
            data[i].size = cap
            left -= cap
            open_.remove(i)


# --- writing ------------------------------------------------------------------------------


def _text_pool(rng: random.Random) -> bytes:
    """~1 MB of source-like lines that generated files take their text from."""
    out: list[str] = []
    size = 0
    while size < 1_000_000:
        a, b, c = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        roll = rng.random()
        if roll < 0.2:
            line = f"pub fn {a}_{b}(&self, {c}: {rng.choice(RUST_TYPES)}) -> Result<(), Error> {{\n"
        elif roll < 0.5:
            line = f"    let {a} = self.{b}.{c}({rng.getrandbits(20)})?;\n"
        elif roll < 0.65:
            line = f"    // The {a} of the {b} is {c} until {rng.getrandbits(16)}.\n"
        elif roll < 0.8:
            line = f"    match {a} {{ Some({b}) => {c}({b}), None => {rng.getrandbits(12)} }}\n"
        elif roll < 0.9:
            line = "}\n\n"
        else:
            line = f"use mz_{a}::{b}::{{{c}, {rng.choice(WORDS)}}};\n"
        out.append(line)
        size += len(line)
    return "".join(out).encode()


def _content(path: str, spec: _File, seed: int, pool: bytes) -> bytes:
    """The bytes of one file, from a RNG seeded by the seed and the path."""
    if spec.kind == "fixed":
        return spec.content
    rng = random.Random(f"{seed}:{path}")
    if spec.kind == "binary":
        return rng.randbytes(spec.size)
    comment = "//" if path.endswith((".rs", ".proto")) else "#"
    shebang = b"#!/usr/bin/env bash\nset -euo pipefail\n" if spec.executable else b""
    head = shebang + f"{comment} {path} {rng.getrandbits(64):016x}\n".encode()
    start = pool.find(b"\n", rng.randrange(len(pool))) + 1  # from a line start (or 0)
    body = bytearray(head)
    while len(body) < spec.size:
        body += pool[start : start + spec.size - len(body)]
        start = 0
    return bytes(body[: max(spec.size, len(head))])


def _git(dest: Path, *args: str) -> None:
    """Run git in ``dest`` with a fixed identity, date and no user config."""
    subprocess.run(["git", *args], cwd=dest, check=True, env={**os.environ, **GIT_ENV})


def generate(dest: Path, seed: int = 0) -> RepoStats:
    """Write the repository at ``dest`` (which must not exist), commit it and check its shape.

    Args:
        dest: where to create the repository.
        seed: the seed of every random choice; the same seed gives the same repository.

    Returns:
        The shape measured from the committed tree.
    """
    files = _plan(seed)
    pool = _text_pool(random.Random(seed))
    dest.mkdir(parents=True, exist_ok=False)
    made: set[Path] = set()
    for path in sorted(files):
        spec = files[path]
        target = dest / path
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(_content(path, spec, seed, pool))
        os.chmod(target, 0o755 if spec.executable else 0o644)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "--no-verify", "-m", f"Materialize-shaped repository, seed {seed}")
    stats = measure(dest)
    check(stats)
    return stats


def main() -> int:
    """Generate the repository named on the command line and print its shape."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, help="directory to create (must not exist)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.dest.exists():
        print(f"{args.dest}: already exists; give a new directory", file=sys.stderr)
        return 2
    started = time.perf_counter()
    stats = generate(args.dest, args.seed)
    elapsed = time.perf_counter() - started
    for key, value in asdict(stats).items():
        shown = f"{value:,}" if isinstance(value, int) else value
        print(f"{key:18} {shown}")
    print(f"{'generated in':18} {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
