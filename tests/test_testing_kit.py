"""mzbuild_async.testing, the public test kit: the fault plan in front of the
in-memory registry as a RegistryClient meets it (its docstring's example, faults
beyond the retries, a reset, a missing manifest, the path and method filter), the
fake clock, and a retry policy without waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async import BuildOptions, Repository, RunOptions, Workflow, run_workflow
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.registry.writer import RegistryWriter
from mzbuild_async.testing import FakeClock, FaultPlan, MemoryEngine, MemoryRegistry, no_wait
from tests.conftest import MakeRepo

pytestmark = pytest.mark.anyio

REF = parse_reference("r.test/app:v1")


def _client(registry: MemoryRegistry, faults: FaultPlan, attempts: int = 3) -> RegistryClient:
    clock = FakeClock()
    return RegistryClient(
        transport=faults.transport(registry.handle),
        retry=no_wait(attempts),
        clock=clock,
        sleep=clock.sleep,
    )


async def test_the_docstring_example_retries_through_two_errors() -> None:
    registry = MemoryRegistry()
    faults = FaultPlan(errors=2, only="/manifests/")
    async with _client(registry, faults) as client:
        probe = await client.lookup(REF)
    assert probe.status is Status.ABSENT
    assert faults.done == {"503": 2}
    assert registry.requests["HEAD"] == 1  # (the two 503s never reached it)
    assert faults.errors == 0


async def test_faults_beyond_the_retries_are_unknown_never_present() -> None:
    registry = MemoryRegistry()
    async with RegistryClient(transport=registry.transport()) as writer_client:
        await RegistryWriter(writer_client).put_manifest(
            REF, "application/vnd.oci.image.manifest.v1+json", b'{"schemaVersion": 2}'
        )
    faults = FaultPlan(errors=5, only="/manifests/", methods=("HEAD",))
    async with _client(registry, faults, attempts=2) as client:
        probe = await client.lookup(REF)
        assert probe.status is Status.UNKNOWN
        assert "503" in probe.detail
        faults.errors, faults.resets = 0, 2
        assert (await client.lookup(REF)).status is Status.UNKNOWN  # two resets, two tries
        assert faults.done == {"503": 2, "reset": 2}
        faults.missing_manifests = True
        assert (await client.lookup(REF)).status is Status.ABSENT
        faults.methods = ("GET",)  # (the HEAD goes through to the registry again)
        assert (await client.lookup(REF)).status is Status.PRESENT
    assert faults.done["missing"] == 1


async def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock() == 100.0
    clock.advance(2.5)
    await clock.sleep(1.5)
    assert (clock(), clock.sleeps) == (104.0, [1.5])


def test_no_wait_retries_without_waiting() -> None:
    policy = no_wait(4)
    assert (policy.attempts, policy.initial_wait, policy.max_wait, policy.jitter) == (4, 0, 0, 0)


async def test_the_guides_example_publishes_through_a_flaky_registry(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    """docs/guide/api.md's example, as written there."""
    root = make_repo(
        {
            "base/mzbuild.yml": "name: base\n",
            "base/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
            "base/hello.txt": "hello\n",
            "app/mzbuild.yml": "name: app\n",
            "app/Dockerfile": "MZFROM base\nCOPY app.txt /app.txt\n",
            "app/app.txt": "app\n",
        }
    )
    repo = await Repository.open(root, BuildOptions(image_registry="reg.test/kit"))
    cache = tmp_path / "cache"
    registry = MemoryRegistry()
    faults = FaultPlan(errors=1, only="/manifests/")  # the first manifest request: 503
    async with RegistryClient(
        transport=faults.transport(registry.handle), retry=no_wait(3)
    ) as client:
        engine = MemoryEngine(client=client)
        result = await run_workflow(
            repo, Workflow.ENSURE, list(repo.images), cache_dir=cache,
            docker=engine, client=client, options=RunOptions(jobs=2),
        )  # fmt: skip
    assert result.ok
    assert faults.done["503"] == 1
    assert all(registry.manifest(image.spec) for image in result.images.values())
    assert {name: image.action for name, image in result.images.items()} == {
        "base": "built",
        "app": "built",
    }
