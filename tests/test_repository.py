"""The scripting API: open, resolve, inputs, fingerprints, describe; hashing once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

import mzbuild_async
from mzbuild_async import Arch, BuildOptions, InputError, Repository
from tests.conftest import VECTORS, MakeRepo

EXPECTED = json.loads((VECTORS / "expected.json").read_text())["configs"][0]
OPTIONS = BuildOptions(arch=Arch.X86_64)


def open_repo(root: Path, hash_workers: int = 1) -> Repository:
    async def go() -> Repository:
        return await Repository.open(root, OPTIONS, hash_workers=hash_workers)

    return anyio.run(go)


def test_public_api_is_exported() -> None:
    """Everything in __all__ is importable from the package root."""
    for name in mzbuild_async.__all__:
        assert hasattr(mzbuild_async, name), name


def test_each_distinct_file_is_hashed_once(fixture_repo: Path) -> None:
    """Shared inputs (Cargo.toml, ci/builder) are hashed once, however many images use them."""
    repo = open_repo(fixture_repo)
    anyio.run(repo.fingerprints, list(repo.images))
    distinct = {p for name in repo.images for p in repo.inputs(name)}
    total = sum(len(repo.inputs(name)) for name in repo.images)
    stats = repo.hasher.statistics()
    assert stats.files == len(distinct) < total
    # A second request hashes nothing new.
    anyio.run(repo.fingerprints, ["bundle"])
    assert repo.hasher.statistics().files == stats.files


@pytest.mark.parametrize("workers", [1, 2, 8])
def test_worker_count_does_not_change_fingerprints(fixture_repo: Path, workers: int) -> None:
    """Hashing with any number of worker threads gives the original's answers."""
    repo = open_repo(fixture_repo, hash_workers=workers)
    specs = anyio.run(repo.specs, list(repo.images))
    assert specs == EXPECTED["specs"]


def test_fingerprints_only_hash_what_the_targets_need(fixture_repo: Path) -> None:
    """Fingerprinting one image hashes its inputs and its dependencies', nothing else."""
    repo = open_repo(fixture_repo)
    fps = anyio.run(repo.fingerprints, ["server"])
    assert list(fps) == ["base", "server"]
    needed = set(repo.inputs("server")) | set(repo.inputs("base"))
    assert set(repo.hasher.hashed) == needed


def test_describe(fixture_repo: Path) -> None:
    """describe() returns the fingerprint with each input's mode and digest."""
    repo = open_repo(fixture_repo)
    d = anyio.run(repo.describe, "server")
    assert d.spec == EXPECTED["specs"]["server"]
    assert [f.path for f in d.inputs] == EXPECTED["inputs"]["server"]
    assert set(d.dependencies) == {"base"}
    cargo_toml = next(f for f in d.inputs if f.path == "Cargo.toml")
    assert cargo_toml.mode == 0o100644
    assert cargo_toml.size == (fixture_repo / "Cargo.toml").stat().st_size


def test_open_defaults_to_environment_options(
    fixture_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without options, open() reads the original's environment defaults."""
    monkeypatch.setenv("CI_COVERAGE_ENABLED", "1")
    monkeypatch.setenv("CI_SANITIZER", "address")

    async def go() -> Repository:
        return await Repository.open(fixture_repo)

    repo = anyio.run(go)
    assert repo.options.coverage is True
    assert str(repo.options.sanitizer) == "address"


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        pytest.param(
            lambda root: os.symlink("missing-target", root / "a" / "link"),
            "a/link: symlink to a missing target; fix or remove the link",
            id="dangling-symlink",
        ),
        pytest.param(
            lambda root: os.symlink("/", root / "a" / "rootlink"),
            "a/rootlink: is a directory",
            id="symlink-to-directory",
        ),
    ],
)
def test_unreadable_inputs_are_clear_errors(
    make_repo: MakeRepo, make_bad: object, message: str
) -> None:
    """An input that cannot be hashed is an InputError naming it, not a traceback."""
    root = make_repo({"a/mzbuild.yml": "name: a\n", "a/Dockerfile": "FROM scratch\n"})
    assert callable(make_bad)
    make_bad(root)
    repo = open_repo(root)
    with pytest.raises(InputError) as info:
        anyio.run(repo.fingerprints, ["a"])
    assert str(info.value).startswith(message)
