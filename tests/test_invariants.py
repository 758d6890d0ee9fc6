"""Fingerprint invariants on generated repositories (hypothesis).

Changing an input changes exactly its images and their dependents; changing
a non-input changes nothing; the path of the checkout and the process do
not matter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mzbuild_async import Arch, BuildOptions, Repository
from tests.conftest import git, write_tree

OPTIONS = BuildOptions(arch=Arch.X86_64)
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class RepoSpec:
    """A generated repository: images, their own files, an optional crate chain."""

    images: dict[str, str] = field(default_factory=dict)  # name -> directory
    deps: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    executable: set[str] = field(default_factory=set)
    #: Which image's directory holds each file (the generator's own knowledge).
    owner: dict[str, str] = field(default_factory=dict)
    cargo_image: str | None = None
    crate_files: list[str] = field(default_factory=list)

    def dependents(self, name: str) -> set[str]:
        """Images that depend on ``name``, directly or not (from the generator's DAG)."""
        found = {n for n, ds in self.deps.items() if name in ds}
        for n in list(found):
            found |= self.dependents(n)
        return found


_names = st.text(alphabet="abcdefgh", min_size=1, max_size=6)


@st.composite
def repo_specs(draw: st.DrawFn) -> RepoSpec:
    """Small repositories with a random MZFROM DAG, nested images and a crate chain."""
    spec = RepoSpec()
    count = draw(st.integers(2, 5))
    for i in range(count):
        name = f"img{i}"
        parent = draw(st.sampled_from([None, *spec.images])) if i and draw(st.booleans()) else None
        spec.images[name] = f"{spec.images[parent]}/{name}" if parent else f"images/{name}"
        earlier = list(spec.images)[:i]
        spec.deps[name] = sorted(draw(st.sets(st.sampled_from(earlier), max_size=2))) if i else []
    for name, directory in spec.images.items():
        manifest = f"name: {name}\n"
        if name == "img1" and draw(st.booleans()):
            spec.cargo_image = name
            manifest += "pre-image:\n  - type: cargo-build\n    bin: tool\n"
        lines = [f"MZFROM {d}\n" for d in spec.deps[name]] or ["FROM scratch\n"]
        spec.files[f"{directory}/mzbuild.yml"] = manifest.encode()
        spec.files[f"{directory}/Dockerfile"] = "".join(lines).encode()
        for rel in draw(st.sets(_names, min_size=1, max_size=3)):
            path = f"{directory}/{'d/' if draw(st.booleans()) else ''}{rel}.txt"
            spec.files[path] = draw(st.binary(max_size=64))
            if draw(st.booleans()):
                spec.executable.add(path)
    for path in spec.files:
        spec.owner[path] = max(
            (n for n, d in spec.images.items() if path.startswith(d + "/")),
            key=lambda n: len(spec.images[n]),
        )
    spec.files["images/.gitignore"] = b"*.log\n"
    spec.files["Cargo.toml"] = b'[workspace]\nmembers = ["src/lib", "src/tool"]\n'
    spec.files["Cargo.lock"] = b"version = 3\n"
    spec.files["ci/builder/Dockerfile"] = b"FROM scratch\n"
    spec.files["src/lib/Cargo.toml"] = b'[package]\nname = "lib"\nversion = "0.1.0"\n'
    spec.files["src/lib/src/lib.rs"] = draw(st.binary(max_size=32))
    spec.files["src/tool/Cargo.toml"] = (
        b'[package]\nname = "tool"\nversion = "0.1.0"\n[dependencies]\nlib = { path = "../lib" }\n'
    )
    spec.files["src/tool/src/main.rs"] = b"fn main() {}\n"
    spec.crate_files = [p for p in spec.files if p.startswith(("src/", "ci/", "Cargo."))]
    return spec


@contextmanager
def materialized(spec: RepoSpec) -> Iterator[Path]:
    """The spec written and committed as a git repository in a temporary directory."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        write_tree(root, spec.files)
        for path in spec.files:
            os.chmod(root / path, 0o755 if path in spec.executable else 0o644)
        (root / "images" / "ignored.log").write_text("ignored\n")
        (root / "src" / "tool" / "mzcompose.py").write_text("# not an input\n")
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "init")
        yield root


def fingerprints(root: Path) -> dict[str, str]:
    """Every image's fingerprint, from a fresh Repository (no caches)."""

    async def go() -> dict[str, str]:
        repo = await Repository.open(root, OPTIONS)
        return {n: str(fp) for n, fp in (await repo.fingerprints(repo.images)).items()}

    return anyio.run(go)


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {n for n in before if before[n] != after[n]}


MUTATIONS = ["content", "mode", "delete", "add"]


@SETTINGS
@given(spec=repo_specs(), data=st.data())
def test_changing_an_input_changes_its_images_and_dependents_only(
    spec: RepoSpec, data: st.DataObject
) -> None:
    """Content, mode or presence of an image's own file: that image and its dependents change.

    The expected set comes from the generator's own knowledge (which image's
    directory holds the file, the DAG it drew), not from the code under test.
    """
    own = sorted(p for p in spec.owner if not p.endswith(("mzbuild.yml", "Dockerfile")))
    path = data.draw(st.sampled_from(own))
    kind = data.draw(st.sampled_from(MUTATIONS))
    with materialized(spec) as root:
        before = fingerprints(root)
        target = root / path
        if kind == "content":
            target.write_bytes(target.read_bytes() + b"!")
        elif kind == "mode":
            target.chmod(target.stat().st_mode ^ 0o100)
        elif kind == "delete":
            target.unlink()
        else:
            path = str(Path(path).parent / "new-untracked-file")
            (root / path).write_bytes(b"new")
        after = fingerprints(root)
    owner = spec.owner.get(path) or max(
        (n for n, d in spec.images.items() if path.startswith(d + "/")),
        key=lambda n: len(spec.images[n]),
    )
    assert changed(before, after) == {owner} | spec.dependents(owner)


@SETTINGS
@given(spec=repo_specs(), data=st.data())
def test_changing_a_crate_input_changes_the_cargo_image_and_dependents(
    spec: RepoSpec, data: st.DataObject
) -> None:
    """A file of the built crate's closure or of ci/builder changes only the cargo image's line."""
    path = data.draw(st.sampled_from(sorted(spec.crate_files)))
    with materialized(spec) as root:
        before = fingerprints(root)
        comment = b"\n# edit\n" if path.endswith((".toml", ".lock")) else b"\n// edit\n"
        (root / path).write_bytes((root / path).read_bytes() + comment)
        after = fingerprints(root)
    expected = set()
    if spec.cargo_image is not None:
        expected = {spec.cargo_image} | spec.dependents(spec.cargo_image)
    assert changed(before, after) == expected


@SETTINGS
@given(spec=repo_specs(), which=st.sampled_from(["ignored", "mzcompose", "nested"]))
def test_changing_a_non_input_changes_nothing(spec: RepoSpec, which: str) -> None:
    """Ignored files and mzcompose.py in a crate are no input; a nested image's file
    is no input of the image around it (only of the nested image and its dependents)."""
    nested = [
        (outer, inner)
        for outer, d in spec.images.items()
        for inner, e in spec.images.items()
        if e.startswith(d + "/")
    ]
    with materialized(spec) as root:
        before = fingerprints(root)
        if which == "ignored":
            (root / "images" / "ignored.log").write_text("changed\n")
            expected: set[str] = set()
        elif which == "mzcompose":
            (root / "src" / "tool" / "mzcompose.py").write_text("# changed\n")
            expected = set()
        else:
            if not nested:
                return
            outer, inner = nested[0]
            (root / spec.images[inner] / "Dockerfile").write_bytes(
                spec.files[f"{spec.images[inner]}/Dockerfile"] + b"# edit\n"
            )
            expected = {inner} | spec.dependents(inner)
            assert outer not in expected  # the surrounding image must stay the same
        after = fingerprints(root)
    assert changed(before, after) == expected


@settings(max_examples=8, deadline=None)
@given(spec=repo_specs())
def test_same_tree_elsewhere_or_in_another_process_gives_same_fingerprints(
    spec: RepoSpec,
) -> None:
    """A copy at another path, and a separate process, compute identical fingerprints."""
    with materialized(spec) as root:
        here = fingerprints(root)
        copy = root.parent / "elsewhere" / "checkout"
        shutil.copytree(root, copy, symlinks=True)
        assert fingerprints(copy) == here
        out = subprocess.run(
            [
                *(sys.executable, "-m", "mzbuild_async", "fingerprint", "--all", "--json"),
                *("--repo", str(copy), "--arch", "x86_64", "--optimized", "--no-digest-cache"),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("CI_")},
        )
        assert json.loads(out.stdout) == here
