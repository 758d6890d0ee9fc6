"""Requests in flight spread over small connection pools: none ever holds more than
its share, whatever order the requests end in (httpcore's per-request work grows
with the square of a pool's size: this is what keeps a lookup's CPU low)."""

from __future__ import annotations

import random
from contextlib import ExitStack

import pytest

from mzbuild_async.support.shards import PER_POOL, Shards


@pytest.mark.parametrize("total", [1, 7, 8, 10, 32, 33, 100])
def test_no_pool_ever_holds_more_than_its_size(total: int) -> None:
    shards = Shards(total)
    assert len(shards.in_flight) * shards.pool_size >= total
    assert shards.pool_size <= PER_POOL
    rng = random.Random(total)
    held: list[ExitStack] = []
    most = 0
    for _ in range(5000):  # at most `total` in flight (the host's limiter), ending at random
        if len(held) < total and (not held or rng.random() < 0.6):
            stack = ExitStack()
            stack.enter_context(shards.take())
            held.append(stack)
        else:
            held.pop(rng.randrange(len(held))).close()
        most = max(most, *shards.in_flight)
        assert sum(shards.in_flight) == len(held)
    assert most <= shards.pool_size
    for stack in held:
        stack.close()
    assert shards.in_flight == [0] * len(shards.in_flight)


def test_thirty_two_in_flight_are_four_pools_of_eight() -> None:
    shards = Shards(32)
    assert (len(shards.in_flight), shards.pool_size) == (4, 8)
