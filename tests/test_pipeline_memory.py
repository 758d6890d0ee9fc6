"""``pipeline`` on the in-memory seam (workflow/pipeline, its lookups through
RegistrySettings' transport and a memory:// engine): steps build only what is not
published, a mirror that lacks an image gets a copy step, a kept pipeline
(``--any-commit``) has every image and no fingerprints, and the document is the
chosen CI system's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mzbuild_async import BuildOptions, Repository, RunOptions, Workflow, run_workflow
from mzbuild_async.engine.endpoints import Endpoint
from mzbuild_async.errors import UsageError
from mzbuild_async.model.options import Arch
from mzbuild_async.model.publication import Destination, Publication
from mzbuild_async.pipeline.emit import StepSettings
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
from mzbuild_async.workflow.pipeline import PipelineShape, plan_pipeline
from tests.conftest import MakeRepo
from tests.support.chain import CHAIN, memory_settings

pytestmark = pytest.mark.anyio

FILES = CHAIN


async def _base_published(
    make_repo: MakeRepo, tmp_path: Path
) -> tuple[Repository, MemoryRegistry, Path]:
    """The chain's repository (x86_64) with ``base`` published to an in-memory registry."""
    root = make_repo(FILES)
    repo = await Repository.open(
        root, BuildOptions(arch=Arch.X86_64, image_registry="reg.test/kit")
    )
    registry = MemoryRegistry()
    cache = tmp_path / "cache"
    async with RegistryClient(transport=registry.transport(), retry=no_wait(2)) as client:
        ran = await run_workflow(
            repo, Workflow.ENSURE, ["base"], cache_dir=cache,
            docker=MemoryEngine(client=client), client=client, options=RunOptions(jobs=1),
        )  # fmt: skip
    assert ran.ok
    return repo, registry, cache


async def test_a_pipeline_builds_what_is_missing(make_repo: MakeRepo, tmp_path: Path) -> None:
    repo, registry, cache = await _base_published(make_repo, tmp_path)
    MemoryEngine.register(MemoryEngine(name="pipeline-agent"))
    engines = (Endpoint("pipeline-agent", "memory://pipeline-agent", slots=2),)
    primary = Destination("reg.test/kit", "")
    mirror = Destination("mirror.test/kit", "")

    async def cut(publication: Publication, **shape: Any) -> tuple[list[str], dict[str, Any]]:
        settings = memory_settings(registry.transport(), publication=publication)
        result = await plan_pipeline(
            repo, ["base", "lib", "app"], cache_dir=cache, settings=settings,
            shape=PipelineShape(format="buildkite", step=StepSettings(program="mzb"), **shape),
            options=RunOptions(
                engines=engines, tiers=("registry",), environ={}, mirrors=publication.mirrors
            ),
        )  # fmt: skip
        assert result.images == 3
        return sorted(result.builds), result.document

    builds, document = await cut(Publication(primary), agents=1)
    assert builds == ["app", "lib"]  # base is published
    commands = [s["commands"][-1] for s in document["steps"] if "commands" in s]
    assert len(commands) == 1  # one agent: one step
    assert "--only lib=" in commands[0]
    assert "--only app=" in commands[0]
    assert "base" not in commands[0].split("--only", 1)[1]
    yaml.safe_dump(document)  # (a document the CI system reads)

    # A mirror that lacks base: base is a step's too (its ensure copies it there).
    builds, document = await cut(
        Publication(primary, (mirror,), flagged=("mirror.test/kit",)), agents=1
    )
    assert builds == ["app", "base", "lib"]
    commands = [s["commands"][-1] for s in document["steps"] if "commands" in s]
    assert all("--mirror-registry mirror.test/kit" in c for c in commands)

    # A pipeline kept in the repository: every image, no fingerprints to check.
    builds, document = await cut(Publication(primary), agents=2, any_commit=True)
    assert builds == ["app", "base", "lib"]
    every = " ".join(s["commands"][-1] for s in document["steps"] if "commands" in s).split()
    onlys = [every[i + 1] for i, word in enumerate(every) if word == "--only"]
    assert sorted(onlys) == ["app", "base", "lib"]  # (no =FINGERPRINT to check)


async def test_a_runner_per_arch_cuts_each_arch_and_merges_them(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    """Each arch planned on its own (base published for x86_64 only), its jobs keyed by
    the arch and on its runner; a final job promotes every arch once they are done."""
    repo, registry, cache = await _base_published(make_repo, tmp_path)
    publication = Publication(Destination("reg.test/kit", ""))
    settings = memory_settings(registry.transport(), publication=publication)

    async def cut(system: str, **shape: Any) -> dict[str, Any]:
        result = await plan_pipeline(
            repo, ["base", "lib", "app"], cache_dir=cache, settings=settings,
            shape=PipelineShape(format=system, step=StepSettings(program="mzb"), **shape),
            options=RunOptions(tiers=("registry",), environ={}, mirrors=()),
        )  # fmt: skip
        assert sorted(result.builds) == [
            "app (aarch64)", "app (x86_64)", "base (aarch64)", "lib (aarch64)", "lib (x86_64)"
        ]  # fmt: skip
        return result.document

    runners = {"x86_64": "amd", "aarch64": "arm"}
    steps = (await cut("buildkite", arch_runners=runners, index_tag="v2", agents=1))["steps"]
    *builds, index = steps
    queues = {s["key"]: s["agents"]["queue"] for s in builds}
    assert queues == {"x86_64-build-1": "amd", "aarch64-build-1": "arm"}
    for step in builds:
        arch = step["key"].split("-")[0]
        words = step["commands"][-1].split()
        assert words[words.index("--arch") + 1] == arch
        assert f"--step {step['key']}" in step["commands"][-1]
    x86 = builds[0]["commands"][-1]
    assert "--only base" not in x86  # published for x86_64: not built there
    assert index["key"] == "index"
    assert index["depends_on"] == ["x86_64-build-1", "aarch64-build-1"]
    assert "concurrency_group" not in index
    assert index["commands"][-1] == (
        "mzb promote --image-registry reg.test/kit --profile optimized"
        " --arch x86_64 --arch aarch64 v2 base lib app"
    )
    gitlab = await cut("gitlab", arch_runners=runners, index_tag="v2", agents=1)
    assert gitlab["aarch64-build-1"]["tags"] == ["arm"]
    assert gitlab["index"]["needs"] == ["x86_64-build-1", "aarch64-build-1"]
    azure = await cut("azure", arch_runners=runners, index_tag="v2", agents=1)
    # (the index job runs on the first arch's runner: promote needs no particular arch)
    assert [j["pool"]["demands"] for j in azure["jobs"]] == [["amd"], ["arm"], ["amd"]]
    with pytest.raises(UsageError, match="give --index-tag TAG"):
        await cut("buildkite", arch_runners=runners)
    with pytest.raises(UsageError, match="never a release tag"):
        await cut("buildkite", arch_runners=runners, index_tag="mzbuild-X")
