"""Cutting a build into CI steps: invariants on random DAGs (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mzbuild_async.pipeline.partition import partition


@st.composite
def dags(draw: st.DrawFn) -> tuple[list[str], dict[str, set[str]], dict[str, float], set[str]]:
    """Images in dependency order, their dependencies, estimates, publish: false ones."""
    count = draw(st.integers(1, 40))
    names = [f"i{n}" for n in range(count)]
    deps = {
        name: set(draw(st.lists(st.sampled_from(names[:i]), max_size=3))) if i else set()
        for i, name in enumerate(names)
    }
    seconds = {name: draw(st.floats(0.0, 300.0)) for name in names}
    sticky = set(draw(st.lists(st.sampled_from(names), max_size=count // 3)))
    return names, deps, seconds, sticky


def test_images_that_go_together_share_a_step() -> None:
    names = ["a", "b", "c", "d"]
    deps: dict[str, set[str]] = {"a": set(), "b": {"a"}, "c": set(), "d": {"c"}}
    cut = partition(names, deps, dict.fromkeys(names, 100.0), together={"a", "d"}, agents=4)
    step_of = cut.step_of()
    assert step_of["a"] == step_of["d"]


@settings(max_examples=200, deadline=None)
@given(
    dags(),
    st.one_of(st.none(), st.integers(1, 16)),
    st.one_of(st.none(), st.floats(1.0, 2000.0)),
    st.floats(0.0, 60.0),
    st.sets(st.integers(0, 39), max_size=5),
)
def test_partition_invariants(
    dag: tuple[list[str], dict[str, set[str]], dict[str, float], set[str]],
    agents: int | None,
    max_seconds: float | None,
    startup: float,
    together_at: set[int],
) -> None:
    names, deps, seconds, sticky = dag
    together = {names[i] for i in together_at if i < len(names)}
    cut = partition(
        names,
        deps,
        seconds,
        sticky=sticky,
        together=together,
        agents=agents,
        max_step_seconds=max_seconds,
        startup=startup,
    )
    step_of = cut.step_of()
    # Every image in exactly one step.
    assert sorted(n for s in cut.steps for n in s.images) == sorted(names)
    position = {s.key: i for i, s in enumerate(cut.steps)}
    for step in cut.steps:
        # Images in dependency order within the step.
        seen: set[str] = set()
        for name in step.images:
            assert all(d in seen for d in deps[name] if step_of[d] == step.key)
            seen.add(name)
        # depends_on: exactly the steps that build the parents it awaits, all earlier
        # (so no cycle between steps).
        awaited = {step_of[d] for n in step.images for d in deps[n]} - {step.key}
        assert set(step.depends_on) == awaited
        assert all(position[k] < position[step.key] for k in step.depends_on)
        # A step starts when what it waits for has ended.
        assert all(cut.steps[position[k]].end <= step.start for k in step.depends_on)
    # publish: false images are in the step of everything that needs them.
    for name in names:
        for dep in deps[name]:
            if dep in sticky:
                assert step_of[dep] == step_of[name]
    assert len({step_of[n] for n in together}) <= 1
    if agents is not None:  # never more steps at once than agents
        for step in cut.steps:
            at_once = sum(1 for s in cut.steps if s.start <= step.start < s.end)
            assert at_once <= agents


def test_a_chain_stays_in_one_step_and_wide_work_spreads() -> None:
    names = ["a", "b", "c", *[f"w{i}" for i in range(8)]]
    deps: dict[str, set[str]] = {"a": set(), "b": {"a"}, "c": {"b"}}
    deps.update({f"w{i}": set() for i in range(8)})
    seconds = dict.fromkeys(names, 60.0)
    cut = partition(names, deps, seconds, agents=4, startup=30.0, jobs=1)
    step_of = cut.step_of()
    assert step_of["a"] == step_of["b"] == step_of["c"]
    assert len({step_of[f"w{i}"] for i in range(8)}) >= 3
    one = partition(names, deps, seconds, agents=1, startup=30.0, jobs=1)
    assert cut.makespan < one.makespan


def test_nothing_to_build_is_no_step() -> None:
    assert partition([], {}, {}).steps == ()
    with pytest.raises(ValueError, match="agents"):
        partition(["a"], {"a": set()}, {"a": 1.0}, agents=0)
