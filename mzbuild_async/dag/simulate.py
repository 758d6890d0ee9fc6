"""One list-scheduling simulator: nodes start, in priority order, as their predecessors
finish and a place can take them, in virtual time.

The scheduler's placement prediction (``plan``'s ENGINE column) and the pipeline
cutter's ideal schedule both run on it; what differs is the ``place`` rule.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

#: What ``place(node, now)`` returns to give a node up (what waits for it is
#: released); otherwise it returns where the node runs (any hashable), or ``None``
#: to wait for a place to free up.
SKIP = object()


@dataclass(frozen=True)
class Started(Generic[K]):
    """When a node started, and where."""

    node: K
    at: float
    place: Hashable


def list_schedule(
    nodes: Iterable[K],
    predecessors: Mapping[K, Iterable[K]],
    seconds: Callable[[K], float],
    priority: Callable[[K], float],
    place: Callable[[K, float], Hashable | None],
    release: Callable[[K, Hashable], None] = lambda _node, _place: None,
) -> dict[K, Started[K]]:
    """Simulate: each node waits for its predecessors among ``nodes``; the ready node of
    the highest ``priority`` goes first to where ``place`` puts it; ``release(node,
    place)`` hears each finish (so ``place`` can count free slots)."""
    order = list(nodes)
    index = {node: i for i, node in enumerate(order)}
    waiting = {n: sum(p in index for p in predecessors.get(n, ())) for n in order}
    after: dict[K, list[K]] = {n: [] for n in order}
    for n in order:
        for p in predecessors.get(n, ()):
            if p in index:
                after[p].append(n)
    ready = [(-priority(n), index[n], n) for n in order if not waiting[n]]
    heapq.heapify(ready)
    running: list[tuple[float, int, K, Hashable]] = []
    started: dict[K, Started[K]] = {}
    now = 0.0

    def finished(node: K) -> None:
        for n in after[node]:
            waiting[n] -= 1
            if not waiting[n]:
                heapq.heappush(ready, (-priority(n), index[n], n))

    while ready or running:
        deferred = []
        while ready:
            item = heapq.heappop(ready)
            node = item[2]
            where = place(node, now)
            if where is SKIP:
                finished(node)
                continue
            if where is None:
                deferred.append(item)
                continue
            started[node] = Started(node, now, where)
            heapq.heappush(running, (now + seconds(node), index[node], node, where))
        for item in deferred:
            heapq.heappush(ready, item)
        if not running:
            break
        now, _, node, where = heapq.heappop(running)
        release(node, where)
        finished(node)
    return started
