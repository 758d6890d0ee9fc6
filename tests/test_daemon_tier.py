"""The local-daemon tier against the real Docker engine."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import aiodocker
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
async def test_a_thousand_daemon_lookups_are_one_listing_of_the_engine() -> None:
    """1,000 lookups of the daemon tier over the real engine's socket are one
    ``GET /images/json`` (filtered to their repositories), and its answers are the
    inspections': present for the images there (one of them the parent of another,
    which the engine lists only because it is tagged), absent for the rest."""
    import os
    from urllib.parse import urlsplit

    from mzbuild_async.engine.docker import DockerEngine
    from mzbuild_async.engine.endpoints import local_endpoint
    from mzbuild_async.engine.inspector import SocketInspector
    from mzbuild_async.lookup.daemon import DaemonTier

    docker = await engine()  # (fails under CI=true when there is none)
    run = uuid.uuid4().hex[:8]
    base, child = f"127.0.0.1:1/many-{run}/base:mzbuild-A", f"127.0.0.1:1/many-{run}/app:mzbuild-B"
    other = f"127.0.0.1:1/other-{run}/app:mzbuild-C"  # (another repository: not listed)
    socket = urlsplit(local_endpoint(os.environ).url).path
    counting = CountingTransport(httpx.AsyncHTTPTransport(uds=socket))
    inspector = SocketInspector(socket, transport=counting)
    tier = DaemonTier(_engine=inspector)
    eng = Lookups(client=RegistryClient(retry=NO_RETRY), tiers=[tier], owns_client=True)
    specs = [f"127.0.0.1:1/many-{run}/img{i}:mzbuild-{i}" for i in range(997)]
    specs += [base, child, other]
    try:
        await build_scratch_image(docker, base)
        await build_scratch_image(docker, child, parent=base)
        repository, _, tag = other.rpartition(":")
        await docker.images.tag(base, repository, tag=tag)
        with structlog.testing.capture_logs() as events:
            answers = await eng.lookup_many(specs)
        assert counting.total == 1  # (one listing, no inspection)
        assert not [e for e in events if e["log_level"] == "warning"], events
        present = {s for s, a in answers.items() if a.status is Status.PRESENT}
        assert present == {base, child, other}
        assert {answers[s].tier for s in present} == {"daemon"}
        # ...which is what inspecting each says.
        assert {s for s in (base, child, other, specs[0]) if await inspector.exists(s)} == present
        # The engine API client a pool member uses (aiodocker) lists the same.
        aio = DockerEngine()
        try:
            assert await aio.tags([f"127.0.0.1:1/many-{run}/*"]) == {base, child}
        finally:
            await aio.aclose()
        # The listed answers were used once: asked again, the engine is asked again.
        before = counting.total
        await eng.lookup_many([base])
        assert counting.total == before + 1
    finally:
        await eng.aclose()
        await _remove_and_close(docker, [child, base, other])


async def _remove_and_close(docker: aiodocker.Docker, tags: list[str]) -> None:
    """Remove ``tags`` (a build that failed left none to remove), then close the
    client (also when that fails: else the next test's gc.collect() finds it open)."""
    try:
        for tag in tags:
            try:
                await docker.images.delete(tag, force=True, noprune=True)
            except aiodocker.exceptions.DockerError as exc:
                if exc.status != 404:
                    raise
    finally:
        await docker.close()


@pytest.mark.real
async def test_a_thousand_inspections_hand_at_most_the_pool_to_httpx() -> None:
    """1,000 inspections at once over the real engine's socket (lookups asked one by
    one, not listed): never more than INSPECTIONS requests in httpx at once (the rest
    wait in our limiter, before the client and its timeout), every one answered."""
    import os
    from urllib.parse import urlsplit

    from mzbuild_async.engine.endpoints import local_endpoint
    from mzbuild_async.engine.inspector import SocketInspector
    from mzbuild_async.engine.protocol import INSPECTIONS

    await (await engine()).close()  # (fails under CI=true when there is none)
    socket = urlsplit(local_endpoint(os.environ).url).path
    counting = CountingTransport(httpx.AsyncHTTPTransport(uds=socket))
    inspector = SocketInspector(socket, transport=counting)
    try:
        found = await _ask_a_thousand(inspector.exists)
    finally:
        await inspector.aclose()
    assert counting.total == 1000
    assert counting.most <= INSPECTIONS, counting.most
    assert found == dict.fromkeys(range(1000), False)


@pytest.mark.real
async def test_a_thousand_inspections_through_aiodocker_wait_in_our_limiter() -> None:
    """The same through the engine API client a pool member uses (aiodocker): at most
    INSPECTIONS inspections in its client at once, every answer right."""
    from mzbuild_async.engine.docker import DockerEngine
    from mzbuild_async.engine.protocol import INSPECTIONS

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
    try:
        found = await _ask_a_thousand(docker.exists)
    finally:
        await docker.aclose()
    assert found == dict.fromkeys(range(1000), False)
    assert state["most"] <= INSPECTIONS, state


async def _ask_a_thousand(exists: Callable[[str], Awaitable[bool]]) -> dict[int, bool]:
    """Ask ``exists`` about 1,000 absent images at once; the answers by number."""
    import anyio

    found: dict[int, bool] = {}

    async def one(i: int) -> None:
        found[i] = await exists(f"127.0.0.1:1/many/img{i}:mzbuild-ABSENT{i}")

    async with anyio.create_task_group() as tg:
        for i in range(1000):
            tg.start_soon(one, i)
    return found
