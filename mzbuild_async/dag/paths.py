"""Orders and longest paths in a DAG: how much work waits behind each node (critical
paths), and an order that puts each node after its predecessors."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def longest_paths(
    nodes: Iterable[K],
    successors: Mapping[K, Iterable[K]],
    weight: Callable[[K], float],
    *,
    ordered: bool = False,
) -> dict[K, float]:
    """Per node: its weight plus the heaviest chain of its successors (every node of
    ``successors``' values must be among ``nodes``). Depth first with an explicit
    stack: a chain of any length works. ``ordered``: ``nodes`` come in dependency
    order (each before its successors), so one pass from the end does."""
    paths: dict[K, float] = {}
    if ordered:
        for node in reversed(list(nodes)):
            paths[node] = weight(node) + max(
                (paths[s] for s in successors.get(node, ())), default=0.0
            )
        return paths
    for start in nodes:
        if start in paths:
            continue
        stack: list[tuple[K, bool]] = [(start, False)]
        while stack:
            node, expanded = stack.pop()
            if node in paths:
                continue
            after = successors.get(node, ())
            if not expanded:
                stack.append((node, True))
                stack.extend((s, False) for s in after if s not in paths)
                continue
            paths[node] = weight(node) + max((paths[s] for s in after), default=0.0)
    return paths


def topological(
    nodes: Sequence[K],
    predecessors: Mapping[K, Iterable[K]],
    successors: Mapping[K, Iterable[K]],
    key: Callable[[K], int],
) -> list[K]:
    """The nodes, each after its predecessors, ties by ``key`` (Kahn's algorithm: the
    same order in every process, whatever the hashing). Nodes on a cycle are left out."""
    left = {n: sum(1 for _ in predecessors.get(n, ())) for n in nodes}
    todo = [(key(n), i, n) for i, n in enumerate(nodes) if not left[n]]
    heapq.heapify(todo)
    out: list[K] = []
    while todo:
        node = heapq.heappop(todo)[2]
        out.append(node)
        for s in successors.get(node, ()):
            left[s] -= 1
            if not left[s]:
                heapq.heappush(todo, (key(s), len(out), s))
    return out
