"""The DAG toolkit: disjoint sets, longest paths (no recursion), one list scheduler."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mzbuild_async.dag.paths import longest_paths, topological
from mzbuild_async.dag.simulate import SKIP, list_schedule
from mzbuild_async.dag.unionfind import UnionFind


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=60))
def test_union_find_agrees_with_a_naive_partition(pairs: list[tuple[int, int]]) -> None:
    sets = UnionFind[int](range(31))
    naive = [{i} for i in range(31)]
    for a, b in pairs:
        sets.union(a, b)
        sa = next(s for s in naive if a in s)
        sb = next(s for s in naive if b in s)
        if sa is not sb:
            sa |= sb
            naive.remove(sb)
    for a in range(31):
        for b in range(31):
            assert sets.same(a, b) == any(a in s and b in s for s in naive)


def test_the_first_representative_stays() -> None:
    sets = UnionFind[str]()
    assert sets.union("a", "b") == "a"
    assert sets.union("c", "b") == "c"
    assert sets.find("a") == sets.find("b") == "c"


def test_longest_paths_down_a_chain_of_twenty_thousand() -> None:
    n = 20_000
    paths = longest_paths(range(n), {i: [i + 1] for i in range(n - 1)}, lambda _i: 1.0)
    assert paths[0] == n
    assert paths[n - 1] == 1.0


def test_list_schedule_runs_the_critical_path_first_on_the_slots_it_has() -> None:
    """Two slots, a long chain a->b and three short ones: the chain goes first."""
    seconds = {"a": 5.0, "b": 5.0, "x": 1.0, "y": 1.0, "z": 1.0}
    preds = {"b": ["a"]}
    paths = longest_paths(seconds, {"a": ["b"]}, seconds.__getitem__)
    free = {"slots": 2}

    def place(node: str, now: float) -> str | None:
        if free["slots"] == 0:
            return None
        free["slots"] -= 1
        return "engine"

    def release(node: str, where: object) -> None:
        free["slots"] += 1

    started = list_schedule(seconds, preds, seconds.__getitem__, paths.__getitem__, place, release)
    assert started["a"].at == 0.0
    assert started["b"].at == 5.0
    assert sorted(started[n].at for n in "xyz") == [0.0, 1.0, 2.0]


def test_a_skipped_node_releases_what_waits_for_it() -> None:
    started = list_schedule(
        ["a", "b"], {"b": ["a"]}, lambda _n: 1.0, lambda _n: 0.0,
        lambda node, now: SKIP if node == "a" else "here",
    )  # fmt: skip
    assert set(started) == {"b"}
    assert started["b"].at == 0.0


def test_a_count_of_slots_and_earliest_starts_hold() -> None:
    """``slots`` bounds what runs at once without a place rule; a node released late
    (a cargo image's binaries) waits for its time while others go on."""
    seconds = {"a": 4.0, "b": 1.0, "c": 1.0, "late": 1.0}
    started = list_schedule(
        seconds, {}, seconds.__getitem__, seconds.__getitem__, None,
        slots=2, earliest={"late": 2.5},
    )  # fmt: skip
    assert {n: s.at for n, s in started.items()} == {"a": 0.0, "b": 0.0, "c": 1.0, "late": 2.5}
    # Nothing but a node not yet released: time moves to its release.
    alone = list_schedule(["x"], {}, lambda _n: 1.0, lambda _n: 0.0, None, earliest={"x": 7.0})
    assert alone["x"].at == 7.0


@given(st.lists(st.lists(st.integers(0, 39), max_size=3), min_size=1, max_size=40))
def test_ordered_longest_paths_and_the_topological_order_agree(edges: list[list[int]]) -> None:
    """A DAG (each node's predecessors come before it): the one-pass longest paths
    equal the depth-first ones, and the order puts every node after its predecessors."""
    nodes = list(range(len(edges)))
    preds = {n: sorted({p for p in edges[n] if p < n}) for n in nodes}
    succs: dict[int, list[int]] = {n: [] for n in nodes}
    for n in nodes:
        for p in preds[n]:
            succs[p].append(n)
    weight = lambda n: float(n % 7 + 1)  # noqa: E731
    assert longest_paths(nodes, succs, weight, ordered=True) == longest_paths(
        reversed(nodes), succs, weight
    )
    order = topological(nodes, preds, succs, lambda n: -n)
    assert sorted(order) == nodes
    place = {n: i for i, n in enumerate(order)}
    assert all(place[p] < place[n] for n in nodes for p in preds[n])
