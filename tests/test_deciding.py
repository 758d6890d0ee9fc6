"""The incremental decider (builds/deciding) against the decisions from scratch: on
random DAGs, whatever the states and the order and batches answers come in, after
every batch its decisions, what it still misses and what it has released are those
of :func:`decide` and :func:`settled_decisions` asked again with everything so far."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mzbuild_async.builds.deciding import Decider
from mzbuild_async.builds.decisions import Found, Workflow, decide, settled_decisions
from mzbuild_async.model.graph import Image, ImageGraph
from mzbuild_async.model.manifest import Manifest, MzFrom


def _graph(data: st.DataObject, size: int) -> ImageGraph:
    images: dict[str, Image] = {}
    for i in range(size):
        name = f"i{i:02}"
        deps = data.draw(st.sets(st.sampled_from(sorted(images)), max_size=3)) if images else set()
        publish = data.draw(st.booleans()) or i % 5 != 4
        manifest = Manifest(path=f"{name}/mzbuild.yml", name=name, publish=publish)
        mzfrom = tuple(MzFrom(dep, n + 1) for n, dep in enumerate(sorted(deps)))
        images[name] = Image(manifest, name, mzfrom)
    return ImageGraph.build(images)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), size=st.integers(1, 24), workflow=st.sampled_from(list(Workflow)))
def test_the_decider_gives_the_decisions_from_scratch_after_every_batch(
    data: st.DataObject, size: int, workflow: Workflow
) -> None:
    graph = _graph(data, size)
    names = list(graph.order)
    targets = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    force = data.draw(st.booleans())
    only = data.draw(st.none() | st.sets(st.sampled_from(names)))
    states = {
        n: Found(
            local=data.draw(st.booleans()),
            published=(published := data.draw(st.booleans())),
            tier="registry" if published else None,
            unknown=data.draw(st.booleans()) and not published,
        )
        for n in names
    }
    images = list(graph.resolve(targets))
    order = [i.name for i in images]
    specs = {n: f"reg.test/{n}:mzbuild-X" for n in names}
    decider = Decider(workflow, images, targets, specs, force=force, only=only)
    found: dict[str, Found] = {}
    released: set[str] = set()
    requested: set[str] = set()
    got: list[str] = []  # (none before the first answers)
    while True:
        missing: set[str] = set()
        decisions = decide(
            workflow, images, targets, specs, found, force=force, missing=missing, only=only
        )
        expected = settled_decisions(graph, order, decisions, found, missing, released)
        assert got == (expected if found else [])  # (in dependency order)
        released.update(expected)
        assert decider.ordered() == decisions
        assert decider.missing == missing
        assert decider.released == released
        if not missing:
            break
        requested |= missing
        if data.draw(st.booleans()):  # (as the walk does: also what is below, at once)
            requested |= {i.name for i in graph.resolve(missing)}
        pending = sorted(requested - found.keys())
        batch = data.draw(st.lists(st.sampled_from(pending), min_size=1, unique=True))
        found.update((n, states[n]) for n in batch)
        got = decider.answer(found, batch)
