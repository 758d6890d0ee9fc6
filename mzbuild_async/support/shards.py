"""Requests in flight spread over several small HTTP connection pools.

httpcore's connection pool does work quadratic in its size on every request it
starts and ends (each idle connection counts every connection; each connection
is checked for expiry with a socket call): with 32 connections that is about
1,000 calls per request, most of a lookup's CPU. The same 32 requests in flight
over four pools of 8 cost a sixteenth of that. :class:`Shards` picks, for each
request that has its slot (the host's limiter bounds the total), the pool with
the fewest requests in flight: none ever holds more than its share, so no request
waits in a pool's queue either.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

#: Connections per pool: the pool's per-request work grows with the square of this.
PER_POOL = 8


class Shards:
    """Which of ``ceil(total / per)`` pools the next request goes through."""

    def __init__(self, total: int, per: int = PER_POOL) -> None:
        count = max(1, math.ceil(max(1, total) / max(1, per)))
        self.in_flight = [0] * count
        #: Connections each pool keeps: with the fewest-in-flight choice and at most
        #: ``total`` requests in flight, no pool ever has more requests than this.
        self.pool_size = math.ceil(max(1, total) / count)

    @contextmanager
    def take(self) -> Iterator[int]:
        """The pool with the fewest requests in flight, held while the request is."""
        shard = min(range(len(self.in_flight)), key=self.in_flight.__getitem__)
        self.in_flight[shard] += 1
        try:
            yield shard
        finally:
            self.in_flight[shard] -= 1
