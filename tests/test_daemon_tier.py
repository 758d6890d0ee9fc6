"""The local-daemon tier against the real Docker engine."""

from __future__ import annotations

import uuid

import pytest
import structlog

from mzbuild_async.lookup.engine import LookupEngine
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.support.retry import RetryPolicy
from tests.support.engine import build_scratch_image, engine

pytestmark = pytest.mark.anyio
NO_RETRY = RetryPolicy(attempts=1)


@pytest.mark.real
async def test_image_in_the_engine_is_present() -> None:
    """An image the engine has is present by the daemon tier, without asking a registry."""
    docker = await engine()
    tag = f"127.0.0.1:1/daemon-test/img:mzbuild-{uuid.uuid4().hex[:12].upper()}"
    missing = tag + "X"
    try:
        await build_scratch_image(docker, tag)
        eng = LookupEngine.create(
            tiers=("memory", "daemon", "registry"),
            client=RegistryClient(retry=NO_RETRY),
            owns_client=True,
        )
        try:
            answers = await eng.lookup_many([tag, missing])
        finally:
            await eng.aclose()
        assert (answers[tag].status, answers[tag].tier) == (Status.PRESENT, "daemon")
        # Not in the engine: the daemon has no opinion and the (unreachable) registry decides.
        assert (answers[missing].status, answers[missing].tier) == (Status.UNKNOWN, "registry")
        assert eng.requests == {"127.0.0.1:1": 1}
    finally:
        await docker.images.delete(tag, force=True)
        await docker.close()


async def test_no_engine_skips_the_tier_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an engine the tier is skipped: one warning, the lookups go on. The
    engine is the one the given environment names, not the process's."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    eng = LookupEngine.create(
        tiers=("daemon", "registry"),
        client=RegistryClient(retry=NO_RETRY),
        owns_client=True,
        environ={"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
    )
    with structlog.testing.capture_logs() as events:
        try:
            answers = await eng.lookup_many([f"127.0.0.1:1/x/y:t{i}" for i in range(3)])
        finally:
            await eng.aclose()
    warnings = [e["event"] for e in events if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert warnings[0].startswith("daemon tier skipped: no Docker engine")
    assert all(a.status is Status.UNKNOWN for a in answers.values())
