"""Specs at past commits from git objects (source/history) equal those of a checkout.

A repository with a Cargo workspace gets a commit for each kind of change
(content, mode, rename, a path dependency, a Cargo.toml, a discovered binary,
a Dockerfile, a symlink's target, an image added and removed, a file becoming
a directory, a manifest option); the walk is taken newest first, oldest first
and in a shuffled order, and every commit's specs are compared with
``Repository.open`` on a checkout of that commit.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from mzbuild_async.errors import InputError
from mzbuild_async.model.options import Arch, BuildOptions, Profile
from mzbuild_async.source.cargo import discovers
from mzbuild_async.source.commits import History, specs_at
from mzbuild_async.source.repository import Repository
from tests.conftest import git

OPTIONS = BuildOptions(arch=Arch.X86_64, image_registry="reg.example/x")
VARIANTS = [
    replace(OPTIONS, profile=p, arch=a) for p in (Profile.DEV, Profile.RELEASE) for a in Arch
]

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\n',
    "Cargo.lock": "# lock\n",
    "crates/a/Cargo.toml": '[package]\nname = "a"\n[dependencies]\nb = { path = "../b" }\n',
    "crates/a/src/main.rs": "fn main() {}\n",
    "crates/b/Cargo.toml": '[package]\nname = "b"\n',
    "crates/b/src/lib.rs": "pub fn b() {}\n",
    "images/base/mzbuild.yml": "name: base\n",
    "images/base/Dockerfile": "FROM scratch\nCOPY file.txt /\n",
    "images/base/file.txt": "one\n",
    "images/base/thing": "a file\n",
    "images/app/mzbuild.yml": "name: app\npre-image:\n  - type: cargo-build\n    bin: a\n",
    "images/app/Dockerfile": "MZFROM base\n",
    "images/app/first.txt": "first\n",
    "images/app/second.txt": "second\n",
}


def _commit(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


def _write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def _retarget(root: Path) -> None:
    (root / "images/app/link").unlink()
    (root / "images/app/link").symlink_to("second.txt")


def _add_image(root: Path) -> None:
    _write(root, "images/new/mzbuild.yml", "name: new\n")
    _write(root, "images/new/Dockerfile", "MZFROM app\n")


def _remove_image(root: Path) -> None:
    for name in ("mzbuild.yml", "Dockerfile"):
        (root / "images/new" / name).unlink()


def _to_directory(root: Path) -> None:
    (root / "images/base/thing").unlink()
    _write(root, "images/base/thing/inner.txt", "in\n")


def _rename(root: Path) -> None:
    (root / "images/base/file.txt").rename(root / "images/base/renamed.txt")


Change = Callable[[Path], None]
CHANGES: list[tuple[str, Change]] = [
    ("content", lambda r: _write(r, "images/base/file.txt", "two\n")),
    ("mode", lambda r: os.chmod(r / "images/base/file.txt", 0o755)),
    ("rename", _rename),
    ("path dependency", lambda r: _write(r, "crates/b/src/lib.rs", "pub fn b() { }\n")),
    (
        "cargo.toml",
        lambda r: _write(r, "crates/a/Cargo.toml", FILES["crates/a/Cargo.toml"] + "#\n"),
    ),
    ("discovered bin", lambda r: _write(r, "crates/a/src/bin/extra.rs", "fn main() {}\n")),
    ("dockerfile", lambda r: _write(r, "images/app/Dockerfile", "MZFROM base\nRUN true\n")),
    ("symlink retarget", _retarget),
    ("image added", _add_image),
    ("image removed", _remove_image),
    ("file to directory", _to_directory),
    (
        "option",
        lambda r: _write(
            r, "images/app/mzbuild.yml", FILES["images/app/mzbuild.yml"] + "build-args:\n  X: y\n"
        ),
    ),
    ("nothing", lambda r: None),
]


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("history") / "repo"
    for path, text in FILES.items():
        _write(root, path, text)
    (root / "images/app/link").symlink_to("first.txt")
    git(root, "init", "-q", "-b", "main")
    commits = [_commit(root, "init")]
    for what, change in CHANGES:
        change(root)
        commits.append(_commit(root, what))
    return root, commits


def _oracle(root: Path, commit: str, where: Path) -> dict[str, set[str]]:
    git(root, "worktree", "add", "-q", "--detach", str(where), commit)
    try:

        async def specs() -> dict[str, set[str]]:
            found: dict[str, set[str]] = {}
            for options in VARIANTS:
                repo = await Repository.open(where, options)
                for name, spec in (await repo.specs(list(repo.images))).items():
                    found.setdefault(name, set()).add(spec)
            return found

        return anyio.run(specs)
    finally:
        git(root, "worktree", "remove", "--force", str(where))


@pytest.mark.parametrize("order", ["newest first", "oldest first", "shuffled"])
def test_specs_from_git_objects_equal_a_checkouts(
    walked: tuple[Path, list[str]], tmp_path: Path, order: str
) -> None:
    root, commits = walked
    expected = {c: _oracle(root, c, tmp_path / f"wt{i}") for i, c in enumerate(commits)}
    walk = list(commits)
    if order == "newest first":
        walk.reverse()
    elif order == "shuffled":
        random.Random(7).shuffle(walk)

    async def run() -> dict[str, dict[str, set[str]]]:
        async with History.open(root) as history:
            return {c: await specs_at(history, c, VARIANTS) for c in walk}

    got = anyio.run(run)
    for i, commit in enumerate(commits):
        assert got[commit] == expected[commit], (i, CHANGES[i - 1][0] if i else "init")
    # Every change but "nothing" changed some spec.
    for i in range(1, len(commits)):
        what = CHANGES[i - 1][0]
        assert (got[commits[i]] == got[commits[i - 1]]) == (what == "nothing"), what


def test_the_walk_reads_each_blob_once(walked: tuple[Path, list[str]]) -> None:
    root, commits = walked

    async def run() -> tuple[int, int]:
        async with History.open(root) as history:
            for commit in commits:
                await specs_at(history, commit, VARIANTS[:1])
            once = history.store.bytes_read
            for commit in reversed(commits):
                await specs_at(history, commit, VARIANTS[:1])
            return once, history.store.bytes_read

    once, twice = anyio.run(run)
    assert once == twice  # the second walk read nothing from git


def test_a_symlink_leaving_the_repository_is_an_input_error(make_repo: Callable[..., Path]) -> None:
    root = make_repo({"images/a/mzbuild.yml": "name: a\n", "images/a/Dockerfile": "FROM scratch\n"})
    (root / "images/a/out").symlink_to("../../../etc/passwd")
    commit = _commit(root, "link")

    async def run() -> None:
        async with History.open(root) as history:
            await specs_at(history, commit, VARIANTS[:1])

    with pytest.raises(InputError, match="leaves the repository"):
        anyio.run(run)


@pytest.mark.parametrize(
    ("path", "found"),
    [
        ("crates/a/src/main.rs", True),
        ("crates/a/src/bin/x.rs", True),
        ("crates/a/src/bin/x/main.rs", True),
        ("crates/a/examples/e.rs", True),
        ("crates/a/examples/e/main.rs", True),
        ("crates/a/src/lib.rs", False),
        ("crates/a/src/bin/x/util.rs", False),
        ("crates/a/src/bin/x.txt", False),
        ("bin/x.rs", False),
    ],
)
def test_discovers_names_the_files_cargo_finds_targets_by(path: str, found: bool) -> None:
    assert discovers(path) is found
