"""Concurrent calls for one key share one call."""

from __future__ import annotations

import anyio
import pytest

from mzbuild_async.support.singleflight import SingleFlight

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_one_call() -> None:
    """Ten callers, one call; all get its result."""
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.01)
        return 42

    results: list[int] = []

    async def caller() -> None:
        results.append(await flight.do("k", work))

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(caller)
    assert (calls, results, flight.shared) == (1, [42] * 10, 9)


async def test_errors_are_shared_and_not_kept() -> None:
    """Waiters see the leader's error; a later call runs again."""
    flight: SingleFlight[str, int] = SingleFlight()
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await anyio.sleep(0.01)
        raise ValueError("boom")

    errors: list[str] = []

    async def caller() -> None:
        try:
            await flight.do("k", failing)
        except ValueError as exc:
            errors.append(str(exc))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(caller)
    assert (calls, errors) == (1, ["boom"] * 3)
    with pytest.raises(ValueError, match="boom"):
        await flight.do("k", failing)
    assert calls == 2


async def test_cancelled_leader_hands_over() -> None:
    """If the leader is cancelled, a waiter runs the call itself."""
    flight: SingleFlight[str, str] = SingleFlight()
    started = anyio.Event()

    async def slow() -> str:
        started.set()
        await anyio.sleep(10)
        return "slow"

    async def fast() -> str:
        return "fast"

    result: list[str] = []
    leader_scope = anyio.CancelScope()

    async def leader() -> None:
        with leader_scope:
            await flight.do("k", slow)

    async def waiter() -> None:
        result.append(await flight.do("k", fast))

    async with anyio.create_task_group() as tg:
        tg.start_soon(leader)
        await started.wait()
        tg.start_soon(waiter)
        await anyio.sleep(0.01)
        leader_scope.cancel()
    assert result == ["fast"]
