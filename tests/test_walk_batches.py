"""Acting on answers as they come costs time in what they change, not in the number
of images: a walk takes answers in batches (a 64th of the images at a time), and each
batch costs the decider only the images it answers or makes needed. (A 10,000-image
chain whose registry answered one lookup at a time took 313 s to plan when every
answer meant deciding everything again; at 10,000 images, a no-op ``ensure`` spent
most of its time deciding again every 50 ms.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mzbuild_async import BuildOptions, Repository
from mzbuild_async.builds import deciding
from mzbuild_async.builds.decisions import Workflow
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
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
    batches = decided = 0
    answer, decide_one = deciding.Decider.answer, deciding.decide_one

    def counted_answer(*args: Any, **kwargs: Any) -> Any:
        nonlocal batches
        batches += 1
        return answer(*args, **kwargs)

    def counted_decide(*args: Any, **kwargs: Any) -> Any:
        nonlocal decided
        decided += 1
        return decide_one(*args, **kwargs)

    monkeypatch.setattr(deciding.Decider, "answer", counted_answer)
    monkeypatch.setattr(deciding, "decide_one", counted_decide)
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
    # Two rounds of lookups (the target, then all below it): a 64th at a time...
    assert batches <= 2 * 64 + 4, batches
    # ...and each image decided once (and again only when a build above it makes it
    # needed in the daemon: here every image but the target).
    assert decided <= 2 * images, decided


@pytest.mark.parametrize("images", [40, 10])
async def test_many_images_are_looked_for_in_the_engine_with_one_listing(
    make_repo: MakeRepo, tmp_path: Path, images: int
) -> None:
    """From LIST_FROM images on, the walk asks the engine for its tags once instead of
    about each image; fewer are asked about one by one. The answers are the same."""
    from mzbuild_async.engine.inmemory import MemoryImage
    from mzbuild_async.engine.listing import LIST_FROM

    root = make_repo(_chain(images))
    repo = await Repository.open(root, BuildOptions(image_registry="reg.test/walk"))
    targets = [f"i{i}" for i in range(images)]
    specs = await repo.specs(targets)
    registry = MemoryRegistry()
    async with RegistryClient(transport=registry.transport(), retry=no_wait(1)) as client:
        engine = MemoryEngine(client=client)
        for i in range(0, images, 3):  # (every third image is in the engine)
            engine.images[specs[f"i{i}"]] = MemoryImage(f"sha256:{i:064x}")
        plan = await plan_workflow(
            repo,
            Workflow.ACQUIRE,
            targets,
            cache_dir=tmp_path / "cache",
            docker=engine,
            client=client,
            tiers=("registry",),
        )
    asked = [method for method, _ in engine.calls]
    listed = images >= LIST_FROM
    assert asked.count("tags") == (1 if listed else 0)
    assert asked.count("exists") == (0 if listed else images)
    local = {n for n, state in plan.found.items() if state.local}
    assert local == {f"i{i}" for i in range(0, images, 3)}
