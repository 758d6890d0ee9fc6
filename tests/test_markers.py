"""Failure markers in a real registry: written, read, and ignored when older than the run."""

from __future__ import annotations

import time

import pytest

from mzbuild_async.builds.markers import (
    MAX_CLOCK_SKEW,
    failure_of,
    mark_failed,
    marker_of,
)
from mzbuild_async.ci import pipeline_run
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.writer import RegistryWriter
from tests.support.registry import Registry

pytestmark = pytest.mark.anyio


@pytest.mark.real
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


@pytest.mark.real
async def test_a_marker_is_believed_only_within_bounds(registries: dict[str, Registry]) -> None:
    """Dated too far ahead of our clock, or written by another pipeline run: ignored."""
    spec = f"{registries['none'].host}/markers/bounds:mzbuild-AAAABBBBCCCCDDDDEEEEFFFFGGGGHHHH"
    async with RegistryClient() as client:
        writer = RegistryWriter(client)
        await mark_failed(writer, spec, "build-1", "failed", run="buildkite:one")
        start = time.time() - 1.0
        assert await failure_of(writer, spec, start, run="buildkite:one") == "step build-1: failed"
        assert await failure_of(writer, spec, start) == "step build-1: failed"  # (no run known)
        assert await failure_of(writer, spec, start, run="buildkite:two") is None
        late = time.time() - MAX_CLOCK_SKEW - 10.0  # our clock behind the marker's by more
        assert await failure_of(writer, spec, start, now=lambda: late) is None
        near = time.time() - MAX_CLOCK_SKEW + 10.0
        assert await failure_of(writer, spec, start, now=lambda: near) is not None


def test_the_pipeline_run_comes_from_the_ci_system() -> None:
    assert pipeline_run({}) == ""
    assert pipeline_run({"BUILDKITE_BUILD_ID": "b1"}) == "buildkite:b1"
    assert pipeline_run({"GITHUB_RUN_ID": "7", "GITHUB_RUN_ATTEMPT": "2"}) == "github:7.2"
    assert pipeline_run({"MZBUILD_ASYNC_RUN_ID": "x", "GITHUB_RUN_ID": "7"}) == "x"
    assert pipeline_run({"GITLAB_CI": "true", "CI_PIPELINE_ID": "42"}) == "gitlab:42"
