"""The image DAG: the original's order, selection, dependents and cycles."""

from __future__ import annotations

import pytest

from mzbuild_async.errors import RepositoryError
from mzbuild_async.graph import Image, ImageGraph, nested_directories, topological_order
from mzbuild_async.manifest import Manifest, MzFrom


def image(name: str, *deps: str, directory: str | None = None) -> Image:
    mzfrom = tuple(MzFrom(d, i + 1) for i, d in enumerate(deps))
    where = name if directory is None else directory
    return Image(Manifest(path=f"{name}/mzbuild.yml", name=name), where, mzfrom)


def graph(*images: Image) -> ImageGraph:
    return ImageGraph.build({i.name: i for i in sorted(images, key=lambda i: i.name)})


def test_order_is_the_originals_depth_first_walk() -> None:
    """Targets sorted by name, each image's dependencies sorted by name, post-order."""
    g = graph(
        image("base"), image("zeta", "base"), image("alpha", "zeta", "base"), image("mid", "alpha")
    )
    assert g.order == ("base", "zeta", "alpha", "mid")
    assert topological_order(g.images, ["mid"]) == ("base", "zeta", "alpha", "mid")


def test_resolve_selects_transitive_dependencies_only() -> None:
    """resolve() returns the targets and what they need, nothing else, dependencies first."""
    g = graph(image("base"), image("a", "base"), image("b", "a"), image("other"))
    assert [i.name for i in g.resolve(["b"])] == ["base", "a", "b"]
    assert [i.name for i in g.resolve(["other", "a"])] == ["base", "a", "other"]


def test_duplicate_mzfrom_counts_once() -> None:
    """An image naming the same dependency twice depends on it once."""
    assert image("x", "base", "base").dependencies == ("base",)


def test_dependents_are_transitive() -> None:
    """dependents() lists every image above, directly or not, sorted."""
    g = graph(image("base"), image("a", "base"), image("b", "a"), image("c"), image("d", "b", "c"))
    assert g.dependents("base") == ("a", "b", "d")
    assert g.dependents("c") == ("d",)
    assert g.dependents("d") == ()


@pytest.mark.parametrize(
    ("images", "cycle"),
    [
        pytest.param([image("a", "b"), image("b", "a")], "a -> b -> a", id="two"),
        pytest.param(
            [image("a", "b"), image("b", "c"), image("c", "b")], "b -> c -> b", id="only-the-cycle"
        ),
        pytest.param([image("a", "a")], "a -> a", id="self"),
    ],
)
def test_cycles_show_just_the_cycle(images: list[Image], cycle: str) -> None:
    """A cycle is an error that prints the cycle itself, not the path that led to it."""
    with pytest.raises(RepositoryError, match=f"^dependency cycle: {cycle}; break it$"):
        graph(*images)


def test_nested_directories() -> None:
    """Each image knows the image directories strictly inside its own."""
    g = graph(
        image("outer", directory="i/outer"),
        image("inner", directory="i/outer/inner"),
        image("sibling", directory="i/outer-2"),
        image("root", directory=""),
    )
    nested = nested_directories(g.images)
    assert nested["outer"] == ("i/outer/inner",)
    assert nested["sibling"] == ()
    assert set(nested["root"]) == {"i/outer", "i/outer/inner", "i/outer-2"}
