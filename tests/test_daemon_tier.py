"""The local-daemon tier against the real Docker engine."""

from __future__ import annotations

import uuid

import httpx
import pytest
import structlog

from mzbuild_async.lookup.lookups import Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.support.retry import RetryPolicy
from tests.support.counting import CountingTransport
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
        eng = Lookups.create(
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
        await docker.images.delete(tag, force=True, noprune=True)
        await docker.close()


async def test_no_engine_skips_the_tier_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an engine the tier is skipped: one warning, the lookups go on. The
    engine is the one the given environment names, not the process's."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    eng = Lookups.create(
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


@pytest.mark.real
async def test_a_thousand_daemon_lookups_hand_at_most_the_pool_to_httpx() -> None:
    """1,000 lookups of the daemon tier over the real engine's socket: never more than
    INSPECTIONS requests in httpx at once (the rest wait in our limiter, before the
    client and its timeout), every one answered, none "could not be reached"."""
    import os
    from urllib.parse import urlsplit

    from mzbuild_async.engine.docker import INSPECTIONS
    from mzbuild_async.engine.endpoints import local_endpoint
    from mzbuild_async.engine.inspector import SocketInspector
    from mzbuild_async.lookup.daemon import DaemonTier

    await (await engine()).close()  # (fails under CI=true when there is none)
    socket = urlsplit(local_endpoint(os.environ).url).path
    counting = CountingTransport(httpx.AsyncHTTPTransport(uds=socket))
    tier = DaemonTier(_engine=SocketInspector(socket, transport=counting))
    eng = Lookups(client=RegistryClient(retry=NO_RETRY), tiers=[tier], owns_client=True)
    specs = [f"127.0.0.1:1/many/img{i}:mzbuild-{uuid.uuid4().hex[:8].upper()}" for i in range(1000)]
    with structlog.testing.capture_logs() as events:
        try:
            answers = await eng.lookup_many(specs)
        finally:
            await eng.aclose()
    assert counting.total == 1000
    assert counting.most <= INSPECTIONS, counting.most
    assert not [e for e in events if e["log_level"] == "warning"], events
    assert {a.detail for a in answers.values()} == {"no tier could answer"}  # (absent there)


@pytest.mark.real
async def test_a_thousand_inspections_through_aiodocker_wait_in_our_limiter() -> None:
    """The same through the engine API client a pool member uses (aiodocker): at most
    INSPECTIONS inspections in its client at once, every answer right."""
    from mzbuild_async.engine.docker import INSPECTIONS, DockerEngine

    docker = DockerEngine()
    await docker.connect()
    client = await docker.client()
    inspect = client.images.inspect
    state = {"now": 0, "most": 0}

    async def counted(spec: str) -> object:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            return await inspect(spec)
        finally:
            state["now"] -= 1

    client.images.inspect = counted
    found: dict[int, bool] = {}

    async def one(i: int) -> None:
        found[i] = await docker.exists(f"127.0.0.1:1/many/img{i}:mzbuild-ABSENT{i}")

    try:
        import anyio

        async with anyio.create_task_group() as tg:
            for i in range(1000):
                tg.start_soon(one, i)
    finally:
        await docker.aclose()
    assert found == dict.fromkeys(range(1000), False)
    assert state["most"] <= INSPECTIONS, state
