"""The decision rules of acquire, ensure and build, without any engine."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mzbuild_async.builds.decisions import Decision, Found, Workflow, decide, jobs
from mzbuild_async.builds.scheduler import Action
from mzbuild_async.model.graph import Image
from mzbuild_async.model.manifest import CargoBuild, Manifest, MzFrom

# base <- tools <- app ; base <- lib <- app ; base <- pad (publish: false) <- report
DEPS = {
    "base": (),
    "tools": ("base",),
    "lib": ("base",),
    "app": ("lib", "tools"),
    "pad": ("base",),
    "report": ("pad",),
    "rusty": ("base",),
}
ORDER = ["base", "tools", "lib", "app", "pad", "report", "rusty"]


def _image(name: str) -> Image:
    pre = (CargoBuild(bins=("hello",)),) if name == "rusty" else ()
    manifest = Manifest(
        path=f"{name}/mzbuild.yml", name=name, publish=name != "pad", pre_images=pre
    )
    mzfrom = tuple(MzFrom(dep, i + 1) for i, dep in enumerate(DEPS[name]))
    return Image(manifest, name, mzfrom)


IMAGES = {name: _image(name) for name in ORDER}
SPECS = {name: f"reg.test/{name}:mzbuild-X" for name in ORDER}


def _closure(targets: list[str]) -> list[Image]:
    needed: set[str] = set()
    stack = list(targets)
    while stack:
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(DEPS[name])
    return [IMAGES[n] for n in ORDER if n in needed]


def _decide(
    workflow: Workflow, targets: list[str], found: Mapping[str, Found], *, force: bool = False
) -> dict[str, Decision]:
    return decide(workflow, _closure(targets), targets, SPECS, found, force=force)


def _found(
    local: frozenset[str] | set[str] = frozenset(),
    published: frozenset[str] | set[str] = frozenset(),
    unknown: bool = False,
) -> dict[str, Found]:
    return {
        n: Found(n in local, n in published, "registry" if n in published else None, unknown)
        for n in ORDER
    }


def _summary(decisions: Mapping[str, Decision]) -> dict[str, tuple[str, bool]]:
    return {n: (d.action.value, d.push) for n, d in decisions.items()}


def test_ensure_published_target_needs_nothing_not_even_its_dependencies() -> None:
    decisions = _decide(Workflow.ENSURE, ["app"], _found(published={"app"}))
    assert _summary(decisions) == {"app": ("none", False)}
    assert decisions["app"].tier == "registry"


def test_ensure_missing_target_builds_and_pushes_and_pulls_published_deps() -> None:
    found = _found(published={"base", "lib"}, local={"tools"})
    decisions = _decide(Workflow.ENSURE, ["app"], found)
    assert _summary(decisions) == {
        # base is not decided at all: tools is local and lib is pulled.
        "lib": ("pull", False),
        "tools": ("none", True),  # local but unpublished: ensure publishes it
        "app": ("build", True),
    }


def test_ensure_local_but_unpublished_is_pushed_without_a_build() -> None:
    decisions = _decide(Workflow.ENSURE, ["tools"], _found(local={"tools"}))
    assert _summary(decisions) == {"tools": ("none", True)}
    assert decisions["tools"].tier == "daemon"


def test_ensure_never_pushes_publish_false_and_builds_it_as_a_dependency() -> None:
    decisions = _decide(Workflow.ENSURE, ["report", "pad"], _found(published={"base"}))
    assert _summary(decisions) == {
        "base": ("pull", False),
        "pad": ("build", False),
        "report": ("build", True),
    }


def test_ensure_publishes_the_dependencies_it_builds_or_finds_unpublished() -> None:
    decisions = _decide(Workflow.ENSURE, ["app"], _found(local={"lib"}))
    assert _summary(decisions) == {
        "base": ("build", True),
        "tools": ("build", True),
        "lib": ("none", True),
        "app": ("build", True),
    }
    # Under acquire the same dependencies stay local.
    decisions = _decide(Workflow.ACQUIRE, ["app"], _found(local={"lib"}))
    assert not any(d.push for d in decisions.values())


def test_acquire_rules() -> None:
    found = _found(local={"base"}, published={"tools"})
    decisions = _decide(Workflow.ACQUIRE, ["app"], found)
    assert _summary(decisions) == {
        "base": ("none", False),
        "tools": ("pull", False),
        "lib": ("build", False),
        "app": ("build", False),
    }
    assert _summary(_decide(Workflow.ACQUIRE, ["app"], _found(local={"app"}))) == {
        "app": ("none", False)
    }
    assert _summary(_decide(Workflow.ACQUIRE, ["app"], _found(published={"app"}))) == {
        "app": ("pull", False)
    }


def test_acquire_never_pulls_publish_false_images_even_if_a_tag_exists() -> None:
    decisions = _decide(Workflow.ACQUIRE, ["pad"], _found(local={"base"}, published={"pad"}))
    assert _summary(decisions) == {"base": ("none", False), "pad": ("build", False)}


def test_an_unknown_registry_answer_is_never_treated_as_present() -> None:
    decisions = _decide(Workflow.ENSURE, ["tools"], _found(unknown=True))
    assert _summary(decisions) == {"base": ("build", True), "tools": ("build", True)}
    assert decisions["tools"].reason == "registry could not tell"


def test_build_force_rebuilds_targets_only() -> None:
    found = _found(local=set(ORDER), published=set(ORDER))
    decisions = _decide(Workflow.BUILD, ["app"], found, force=True)
    assert _summary(decisions) == {
        "lib": ("none", False),
        "tools": ("none", False),
        "app": ("build", False),
    }
    assert decisions["app"].reason == "rebuild forced (--force)"


def test_each_image_gets_one_decision_whatever_asks_for_it() -> None:
    decisions = _decide(Workflow.ENSURE, ["app", "tools", "lib", "base"], _found())
    assert list(decisions) == ["base", "tools", "lib", "app"]
    assert all(d.action is Action.BUILD and d.push for d in decisions.values())


@pytest.mark.parametrize("workflow", list(Workflow))
def test_jobs_wait_only_for_dependencies_pulled_or_built(workflow: Workflow) -> None:
    found = _found(local={"base"}, published={"lib"})
    decisions = _decide(workflow, ["app", "rusty"], found)
    by_name = {j.name: j for j in jobs(decisions, IMAGES, estimates={"app": 3.0}, registry="r")}
    assert by_name["app"].action is Action.BUILD
    assert set(by_name["app"].after) == {"lib", "tools"}
    assert by_name["app"].estimate == 3.0
    assert by_name["rusty"].cargo
    assert by_name["rusty"].after == ()  # base is local already
    assert not by_name["tools"].cargo
    assert {j.registry for j in by_name.values()} == {"r"}


def _waves(
    workflow: Workflow, targets: list[str], truth: Mapping[str, Found], *, force: bool = False
) -> tuple[list[list[str]], dict[str, Decision]]:
    """Decide as a run does: look up what is missing, decide again, until nothing is."""
    found: dict[str, Found] = {}
    waves: list[list[str]] = []
    while True:
        missing: set[str] = set()
        decisions = decide(
            workflow, _closure(targets), targets, SPECS, found, force=force, missing=missing
        )
        if not missing:
            return waves, decisions
        if found:  # as the run does: after the targets, everything below what they need
            missing = {i.name for i in _closure(sorted(missing))}.difference(found)
        waves.append(sorted(missing))
        found.update({name: truth[name] for name in missing})


@pytest.mark.parametrize(
    ("workflow", "targets", "truth", "expected_waves"),
    [
        pytest.param(
            Workflow.ACQUIRE, ["app"], _found(local={"app"}), [["app"]], id="acquire-found-target"
        ),
        pytest.param(
            Workflow.ACQUIRE,
            ["app"],
            _found(published={"app"}),
            [["app"]],
            id="acquire-published-target",
        ),
        pytest.param(
            Workflow.ACQUIRE,
            ["app"],
            _found(local={"lib"}, published={"base"}),
            [["app"], ["base", "lib", "tools"]],
            id="acquire-built-down-the-chain",
        ),
        pytest.param(
            Workflow.ENSURE,
            ["app"],
            _found(published={"app"}),
            [["app"]],
            id="ensure-published-target",
        ),
        pytest.param(
            Workflow.ENSURE,
            list(ORDER),
            _found(published=set(ORDER)),
            [sorted(ORDER)],
            id="ensure-all-one-wave",
        ),
    ],
)
def test_lookups_only_where_the_answer_can_change_the_run(
    workflow: Workflow,
    targets: list[str],
    truth: Mapping[str, Found],
    expected_waves: list[list[str]],
) -> None:
    """A found target's dependencies are never looked up; the decisions are those of one
    look-up of everything."""
    waves, decisions = _waves(workflow, targets, truth)
    assert waves == expected_waves
    assert decisions == _decide(workflow, targets, truth)


@settings(max_examples=300, deadline=None)
@given(
    workflow=st.sampled_from(list(Workflow)),
    targets=st.lists(st.sampled_from(ORDER), min_size=1, unique=True),
    local=st.sets(st.sampled_from(ORDER)),
    published=st.sets(st.sampled_from(ORDER)),
    unknown=st.booleans(),
    force=st.booleans(),
)
def test_lazy_lookups_decide_as_one_full_lookup(
    workflow: Workflow,
    targets: list[str],
    local: set[str],
    published: set[str],
    unknown: bool,
    force: bool,
) -> None:
    """Whatever the states, looking up in waves gives the decisions of looking up all."""
    truth = _found(local, published, unknown)
    _, decisions = _waves(workflow, targets, truth, force=force)
    assert decisions == _decide(workflow, targets, truth, force=force)


@settings(max_examples=300, deadline=None)
@given(
    workflow=st.sampled_from(list(Workflow)),
    targets=st.lists(st.sampled_from(ORDER), min_size=1, unique=True),
    local=st.sets(st.sampled_from(ORDER)),
    published=st.sets(st.sampled_from(ORDER)),
    force=st.booleans(),
    arrival=st.randoms(use_true_random=False),
)
def test_released_decisions_never_change(
    workflow: Workflow,
    targets: list[str],
    local: set[str],
    published: set[str],
    force: bool,
    arrival: random.Random,
) -> None:
    """Answers arrive one at a time in any order; what is released as settled is the final
    decision, everything is released by the end, and a build after what it needs."""
    from mzbuild_async.builds.decisions import settled_decisions
    from mzbuild_async.model.graph import ImageGraph

    graph = ImageGraph.build(IMAGES)
    images = _closure(targets)
    order = [i.name for i in images]
    truth = _found(local, published)
    found: dict[str, Found] = {}
    released: dict[str, Decision] = {}
    sequence: list[str] = []
    requested: set[str] = set()
    while True:
        missing: set[str] = set()
        decisions = decide(workflow, images, targets, SPECS, found, force=force, missing=missing)
        for name in settled_decisions(graph, order, decisions, found, missing, set(released)):
            released[name] = decisions[name]
            sequence.append(name)
        if not missing:
            break
        requested |= missing
        pending = sorted(requested - found.keys())
        name = arrival.choice(pending)
        found[name] = truth[name]
    final = decide(workflow, images, targets, SPECS, truth, force=force)
    assert released == final
    for name in sequence:
        decision = released[name]
        if decision.action is Action.BUILD:
            for dep in IMAGES[name].dependencies:
                if released[dep].action is not Action.NONE:
                    assert sequence.index(dep) < sequence.index(name)
