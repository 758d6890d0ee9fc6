"""Longest paths in a DAG: how much work waits behind each node (critical paths)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def longest_paths(
    nodes: Iterable[K], successors: Mapping[K, Iterable[K]], weight: Callable[[K], float]
) -> dict[K, float]:
    """Per node: its weight plus the heaviest chain of its successors (every node of
    ``successors``' values must be among ``nodes``). Depth first with an explicit
    stack: a chain of any length works."""
    paths: dict[K, float] = {}
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
