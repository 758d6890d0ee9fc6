"""``promote`` on the in-memory seam (workflow/promote, through RegistrySettings'
transport): images an ``ensure`` published get the release tag on the same digest;
promoting again is unchanged; ``--to`` copies to another registry and tags there."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async import BuildOptions, Repository, RunOptions, Workflow, run_workflow
from mzbuild_async.model.options import Arch
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.release.promote import Promotion
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
from mzbuild_async.workflow.promote import promote
from tests.conftest import MakeRepo
from tests.support.chain import CHAIN, memory_settings

pytestmark = pytest.mark.anyio

FILES = {p: t for p, t in CHAIN.items() if p.startswith("base/")}


async def test_promote_tags_what_ensure_published(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo(FILES)
    repo = await Repository.open(
        root, BuildOptions(arch=Arch.X86_64, image_registry="reg.test/kit")
    )
    registry = MemoryRegistry()
    async with RegistryClient(transport=registry.transport(), retry=no_wait(2)) as client:
        ran = await run_workflow(
            repo, Workflow.ENSURE, ["base"], cache_dir=tmp_path / "cache",
            docker=MemoryEngine(client=client), client=client, options=RunOptions(jobs=1),
        )  # fmt: skip
    assert ran.ok
    spec = ran.images["base"].spec
    settings = memory_settings(registry.transport())

    async def release(tag: str, to: tuple[str, ...] = ()) -> dict[str, Promotion | Exception]:
        done = await promote(
            repo, ["base"], tag, [], cache_dir=tmp_path / "cache", settings=settings, to=to
        )
        return dict(done["base"])

    first = await release("v1.0.0")
    made = first["reg.test/kit"]
    assert isinstance(made, Promotion)
    assert (made.status, made.kind) == ("created", "tag")
    assert registry.manifest("reg.test/kit/base:v1.0.0") == registry.manifest(spec)
    again = (await release("v1.0.0"))["reg.test/kit"]
    assert isinstance(again, Promotion)
    assert again.status == "unchanged"

    copied = (await release("v1.0.0", to=("other.test/kit",)))["other.test/kit"]
    assert isinstance(copied, Promotion)
    assert copied.status == "created"
    assert registry.manifest("other.test/kit/base:v1.0.0") == registry.manifest(spec)
