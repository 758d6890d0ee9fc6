"""The original mzbuild's answers for the fixture repository, bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from mzbuild_async import Arch, BuildOptions, Profile, Repository, Sanitizer
from tests.conftest import VECTORS

CONFIGS: list[dict[str, Any]] = json.loads((VECTORS / "expected.json").read_text())["configs"]


def _options(raw: dict[str, Any]) -> BuildOptions:
    return BuildOptions(
        profile=Profile(raw["profile"]),
        arch=Arch(raw["arch"]),
        coverage=raw["coverage"],
        sanitizer=Sanitizer(raw["sanitizer"]),
        image_registry=raw["registry"],
        image_prefix=raw["prefix"],
    )


def _id(config: dict[str, Any]) -> str:
    o = config["options"]
    prefix = o["prefix"] or "noprefix"
    return f"{o['profile']}-{o['arch']}-cov{o['coverage']}-{o['sanitizer']}-{prefix}"


@pytest.mark.parametrize("config", [pytest.param(c, id=_id(c)) for c in CONFIGS])
def test_specs_match_original(fixture_repo: Path, config: dict[str, Any]) -> None:
    """Every image's spec equals the original system's under each option set."""

    async def specs() -> dict[str, str]:
        repo = await Repository.open(fixture_repo, _options(config["options"]))
        return await repo.specs(repo.images)

    assert anyio.run(specs) == config["specs"]


def test_inputs_dependencies_and_order_match_original(fixture_repo: Path) -> None:
    """Inputs, dependencies and topological order equal the original's for the first set."""
    config = CONFIGS[0]

    async def open_repo() -> Repository:
        return await Repository.open(fixture_repo, _options(config["options"]))

    repo = anyio.run(open_repo)
    assert {name: list(repo.inputs(name)) for name in repo.images} == config["inputs"]
    assert {name: list(i.dependencies) for name, i in repo.images.items()} == config["dependencies"]
    assert [i.name for i in repo.resolve(repo.images)] == config["topological_order"]


def test_cli_spec_json_matches_original(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`spec --all --json` prints exactly one object mapping names to the original's specs."""
    from mzbuild_async.cli.main import main

    o = CONFIGS[-1]["options"]
    argv = ["spec", "--all", "--json", "--repo", str(fixture_repo), "--arch", o["arch"]]
    argv += ["--profile", o["profile"], "--sanitizer", o["sanitizer"]]
    argv += ["--image-registry", o["registry"], "--image-prefix", o["prefix"]]
    argv += ["--coverage"] if o["coverage"] else ["--no-coverage"]
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out) == CONFIGS[-1]["specs"]
