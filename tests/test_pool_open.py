"""Opening a pool (engine/pool.py) on in-memory engines: those that answer join in the
configured order with their slots; one that fails or stays silent is left out with one
warning and closed; one engine under two names counts once; none answering is one line."""

from __future__ import annotations

import pytest

from mzbuild_async.engine.endpoints import Endpoint
from mzbuild_async.engine.pool import open_pool
from mzbuild_async.errors import UsageError
from mzbuild_async.testing import MemoryEngine

pytestmark = pytest.mark.anyio


def _endpoints(*names: str, slots: int | None = None) -> list[Endpoint]:
    return [Endpoint(name, f"memory://{name}", slots=slots) for name in names]


async def test_who_answers_joins_in_order_and_who_does_not_is_left_out() -> None:
    engines = {
        "a": MemoryEngine(name="a", cpus=3),
        "gone": MemoryEngine(name="gone"),
        "silent": MemoryEngine(name="silent"),
        "b": MemoryEngine(name="b", cpus=5, platform="linux/arm64"),
    }
    engines["gone"].vanish("its socket is gone")
    engines["silent"].freeze()
    closed: list[str] = []

    def connect(endpoint: Endpoint) -> MemoryEngine:
        engine = engines[endpoint.name]
        original = engine.aclose

        async def aclose() -> None:
            closed.append(endpoint.name)
            await original()

        engine.aclose = aclose  # type: ignore[method-assign]
        return engine

    members = await open_pool(_endpoints("a", "gone", "silent", "b"), connect=connect, timeout=0.5)
    assert [(m.name, m.slots, m.platform) for m in members] == [
        ("a", 3, "linux/amd64"),
        ("b", 5, "linux/arm64"),
    ]
    assert sorted(closed) == ["gone", "silent"]
    # --jobs overrides each engine's CPU count.
    fresh = {n: MemoryEngine(name=n, cpus=8) for n in ("a", "b")}
    jobs = await open_pool(_endpoints("a", "b"), connect=lambda e: fresh[e.name], slots=2)
    assert [m.slots for m in jobs] == [2, 2]


async def test_one_engine_under_two_names_counts_once() -> None:
    same = MemoryEngine(name="shared")
    members = await open_pool(_endpoints("first", "second"), connect=lambda _e: same)
    assert [m.name for m in members] == ["first"]


async def test_no_engine_answering_is_one_line() -> None:
    dead = MemoryEngine(name="dead")
    dead.vanish()
    with pytest.raises(UsageError, match="none of the 2 engines answered"):
        await open_pool(_endpoints("x", "y"), connect=lambda _e: dead)
