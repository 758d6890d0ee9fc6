"""One list-scheduling simulator: nodes start, in priority order, as their predecessors
finish and a place can take them, in virtual time.

The scheduler's placement prediction (``plan``'s ENGINE column), the pipeline
cutter's ideal schedule and its estimate of one step's length all run on it;
what differs is the ``place`` rule (or a number of ``slots``) and when a node
may start at the earliest.
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


#: Where a node runs when there is no ``place`` rule.
ANYWHERE = "anywhere"


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
    place: Callable[[K, float], Hashable | None] | None,
    release: Callable[[K, Hashable], None] = lambda _node, _place: None,
    *,
    slots: int | None = None,
    earliest: Mapping[K, float] | None = None,
) -> dict[K, Started[K]]:
    """Simulate: each node waits for its predecessors among ``nodes``; the ready node of
    the highest ``priority`` goes first to where ``place`` puts it (None: anywhere); ``release(node,
    place)`` hears each finish (so ``place`` can count free slots). ``slots``: at
    most that many nodes run at once; ``earliest``: a node starts no sooner (ties
    of priority go to the node given first)."""
    earliest = earliest or {}
    order = list(nodes)
    index = {node: i for i, node in enumerate(order)}
    waiting, after = _edges(order, index, predecessors)
    ready: list[tuple[float, int, K]] = []
    running: list[tuple[float, int, K, Hashable]] = []
    later: list[tuple[float, int, K]] = []  # ready, but not before their earliest start
    started: dict[K, Started[K]] = {}
    now = 0.0

    def arrive(n: K) -> None:
        if earliest.get(n, 0.0) <= now:
            heapq.heappush(ready, (-priority(n), index[n], n))
        else:
            heapq.heappush(later, (earliest[n], index[n], n))

    def finished(node: K) -> None:
        for n in after[node]:
            waiting[n] -= 1
            if not waiting[n]:
                arrive(n)

    for n in order:
        if not waiting[n]:
            arrive(n)
    while ready or running or later:
        while later and later[0][0] <= now:
            arrive(heapq.heappop(later)[2])
        deferred = []
        while ready and (slots is None or len(running) < slots):
            item = heapq.heappop(ready)
            node = item[2]
            where = ANYWHERE if place is None else place(node, now)
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
        if later and (not running or later[0][0] < running[0][0]):
            now = later[0][0]
            continue
        if not running:
            break
        now, _, node, where = heapq.heappop(running)
        release(node, where)
        finished(node)
    return started


def _edges(
    order: list[K], index: Mapping[K, int], predecessors: Mapping[K, Iterable[K]]
) -> tuple[dict[K, int], dict[K, list[K]]]:
    """Each node's count of predecessors among the nodes, and what waits for it."""
    waiting = {n: sum(p in index for p in predecessors.get(n, ())) for n in order}
    after: dict[K, list[K]] = {n: [] for n in order}
    for n in order:
        for p in predecessors.get(n, ()):
            if p in index:
                after[p].append(n)
    return waiting, after
