"""Failure markers in a real registry: written, read, and ignored when older than the run."""

from __future__ import annotations

import time

import pytest

from mzbuild_async.build.markers import failure_of, mark_failed, marker_of
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.writer import RegistryWriter
from tests.support.registry import Registry

pytestmark = pytest.mark.anyio


async def test_a_marker_is_read_back_unless_it_is_older_than_the_run(
    registries: dict[str, Registry],
) -> None:
    spec = f"{registries['none'].host}/markers/app:mzbuild-AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH"
    async with RegistryClient() as client:
        writer = RegistryWriter(client)
        assert await failure_of(writer, spec, 0.0) is None  # none yet
        before = time.time()
        await mark_failed(writer, spec, "build-3", "docker build of app failed at Step 2")
        assert marker_of(spec).endswith(":mzbuild-AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH.failed")
        found = await failure_of(writer, spec, before - 1.0)
        assert found == "step build-3: docker build of app failed at Step 2"
        # A run that started after the marker was written (a re-run) ignores it.
        assert await failure_of(writer, spec, time.time() + 1.0) is None
