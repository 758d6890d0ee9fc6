"""``lock`` on the in-memory seam (workflow/lock, through RegistrySettings' transport):
an image's external base pinned to the digest its registry answers, the lock file
written once and then unchanged, a moved tag found as drift by ``--check`` without
writing, a base the registry lacks unresolved, an image with no external base none."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async import BuildOptions, Repository
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.registry.writer import RegistryWriter
from mzbuild_async.source.pins import read_lock
from mzbuild_async.testing import MemoryRegistry
from mzbuild_async.workflow.lock import lock_images
from tests.conftest import MakeRepo
from tests.support.chain import memory_settings

pytestmark = pytest.mark.anyio

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
BASE = "reg.test/base:1"


async def _publish(registry: MemoryRegistry, reference: str, body: bytes) -> str:
    async with RegistryClient(transport=registry.transport()) as client:
        return await RegistryWriter(client).put_manifest(parse_reference(reference), MANIFEST, body)


async def test_lock_pins_writes_once_and_check_finds_drift(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    root = make_repo(
        {
            "a/mzbuild.yml": "name: a\n",
            "a/Dockerfile": f"FROM {BASE}\nCOPY x /x\n",
            "a/x": "x\n",
            "b/mzbuild.yml": "name: b\n",
            "b/Dockerfile": "FROM reg.test/missing:9\n",
            "c/mzbuild.yml": "name: c\n",
            "c/Dockerfile": "MZFROM a\n",
        }
    )
    repo = await Repository.open(root, BuildOptions(image_registry="reg.test/kit"))
    registry = MemoryRegistry()
    settings = memory_settings(registry.transport())
    first = await _publish(registry, BASE, b'{"schemaVersion": 2, "n": 1}')
    cache = tmp_path / "cache"

    locked = await lock_images(repo, ["a", "b", "c"], cache_dir=cache, settings=settings)
    assert locked["a"].state == "changed"
    assert dict(locked["a"].pins) == {BASE: first}
    assert read_lock(root / "a") == {BASE: first}
    assert locked["b"].state == "failed"
    assert "reg.test/missing:9" in locked["b"].unresolved
    assert not (root / "b" / "mzbuild.lock").exists()
    assert locked["c"].state == "none"  # (MZFROM is no external base)

    again = await lock_images(repo, ["a"], cache_dir=cache, settings=settings, check=True)
    assert again["a"].state == "unchanged"

    moved = await _publish(registry, BASE, b'{"schemaVersion": 2, "n": 2}')
    drift = await lock_images(repo, ["a"], cache_dir=cache, settings=settings, check=True)
    assert drift["a"].state == "changed"
    assert drift["a"].drift() == [f"{BASE} moved to {moved[:19]} (locked {first[:19]})"]
    assert read_lock(root / "a") == {BASE: first}  # (--check writes nothing)
