"""The image DAG: the original's order, selection, dependents and cycles."""

from __future__ import annotations

import pytest

from mzbuild_async.errors import RepositoryError, UsageError
from mzbuild_async.model.graph import Image, ImageGraph, nested_directories, topological_order
from mzbuild_async.model.manifest import Manifest, MzFrom


def image(name: str, *deps: str, directory: str | None = None) -> Image:
    mzfrom = tuple(MzFrom(d, i + 1) for i, d in enumerate(deps))
    where = name if directory is None else directory
    return Image(Manifest(path=f"{where}/mzbuild.yml", name=name), where, mzfrom)


def graph(*images: Image) -> ImageGraph:
    return ImageGraph.build({i.name: i for i in sorted(images, key=lambda i: i.name)})


def images(*items: Image) -> dict[str, Image]:
    return {i.name: i for i in items}


DAG = images(
    image("base"),
    image("zeta", "base"),
    image("alpha", "zeta", "base"),
    image("mid", "alpha"),
    image("lone"),
    image("b-first", "y-dep", "c-dep"),
    image("y-dep"),
    image("c-dep", "y-dep"),
)


@pytest.mark.parametrize(
    ("targets", "order"),
    [
        pytest.param(["mid"], ("base", "zeta", "alpha", "mid"), id="chain"),
        pytest.param(["alpha"], ("base", "zeta", "alpha"), id="deps-sorted-by-name"),
        pytest.param(
            ["zeta", "lone"], ("lone", "base", "zeta"), id="targets-sorted-by-name-not-given-order"
        ),
        pytest.param(["mid", "mid", "alpha"], ("base", "zeta", "alpha", "mid"), id="duplicates"),
        pytest.param(["b-first"], ("y-dep", "c-dep", "b-first"), id="deps-of-deps-first"),
        pytest.param([], (), id="nothing"),
        pytest.param(
            list(DAG),
            ("base", "zeta", "alpha", "y-dep", "c-dep", "b-first", "lone", "mid"),
            id="everything",
        ),
    ],
)
def test_topological_order_is_the_originals_walk(
    targets: list[str], order: tuple[str, ...]
) -> None:
    """DFS over targets sorted by name, each image's deps sorted by name, post-order."""
    assert topological_order(DAG, targets) == order


def test_order_is_the_originals_depth_first_walk() -> None:
    """A graph's order is the walk over all its images; a lexicographic Kahn sort differs."""
    g = graph(image("a", "z"), image("b"), image("z"))
    # Kahn with a name-sorted queue would give ("b", "z", "a").
    assert g.order == ("z", "a", "b")


def test_resolve_selects_transitive_dependencies_only() -> None:
    """resolve() returns the targets and what they need, nothing else, dependencies first."""
    g = graph(image("base"), image("a", "base"), image("b", "a"), image("other"))
    assert [i.name for i in g.resolve(["b"])] == ["base", "a", "b"]
    assert [i.name for i in g.resolve(["other", "a"])] == ["base", "a", "other"]
    assert [i.name for i in g.resolve(["base"])] == ["base"]
    assert g.resolve([]) == ()


def test_resolve_returns_the_images() -> None:
    """resolve() yields the Image values of the graph, not copies or names."""
    g = graph(image("base"), image("a", "base"))
    assert g.resolve(["a"]) == (g.images["base"], g.images["a"])


def test_resolve_unknown_target_is_a_usage_error() -> None:
    """An unknown target is a one-line UsageError with a suggestion."""
    g = graph(image("materialized"), image("base"))
    with pytest.raises(
        UsageError, match=r"^unknown image 'materialize' \(did you mean 'materialized'\?\)"
    ):
        g.resolve(["materialize"])
    with pytest.raises(UsageError, match=r"^unknown image 'zzz';"):
        g.image("zzz")


@pytest.mark.parametrize(
    ("deps", "dependencies"),
    [
        pytest.param(("base", "base"), ("base",), id="twice"),
        pytest.param(("b", "a", "b", "a"), ("a", "b"), id="sorted-and-distinct"),
        pytest.param((), (), id="none"),
    ],
)
def test_duplicate_mzfrom_counts_once(deps: tuple[str, ...], dependencies: tuple[str, ...]) -> None:
    """An image naming the same dependency twice depends on it once; deps are sorted."""
    assert image("x", *deps).dependencies == dependencies


def test_duplicate_mzfrom_in_the_graph() -> None:
    """A repeated MZFROM neither repeats the dependency in the order nor in dependents."""
    g = graph(image("base"), image("x", "base", "base"))
    assert g.order == ("base", "x")
    assert g.dependents("base") == ("x",)


def test_dependents_are_transitive() -> None:
    """dependents() lists every image above, directly or not, sorted."""
    g = graph(image("base"), image("a", "base"), image("b", "a"), image("c"), image("d", "b", "c"))
    assert g.dependents("base") == ("a", "b", "d")
    assert g.dependents("a") == ("b", "d")
    assert g.dependents("c") == ("d",)
    assert g.dependents("d") == ()


def test_dependents_through_a_diamond() -> None:
    """An image reached along two paths is listed once."""
    g = graph(image("base"), image("l", "base"), image("r", "base"), image("top", "l", "r"))
    assert g.dependents("base") == ("l", "r", "top")


@pytest.mark.parametrize(
    ("items", "cycle"),
    [
        pytest.param([image("a", "b"), image("b", "a")], "a -> b -> a", id="two"),
        pytest.param(
            [image("a", "b"), image("b", "c"), image("c", "b")], "b -> c -> b", id="only-the-cycle"
        ),
        pytest.param(
            [image("a", "b"), image("b", "c"), image("c", "d"), image("d", "b")],
            "b -> c -> d -> b",
            id="long-cycle-after-a-path",
        ),
        pytest.param([image("a", "a")], "a -> a", id="self"),
        pytest.param([image("a", "a", "a")], "a -> a", id="self-twice"),
        pytest.param(
            [image("x"), image("m", "x", "n"), image("n", "m")], "m -> n -> m", id="first-by-name"
        ),
    ],
)
def test_cycles_show_just_the_cycle(items: list[Image], cycle: str) -> None:
    """A cycle is an error that prints the cycle itself, not the path that led to it."""
    with pytest.raises(RepositoryError, match=f"^dependency cycle: {cycle}; break it$"):
        graph(*items)


def test_cycle_error_from_topological_order() -> None:
    """topological_order itself refuses a cycle reachable from the targets."""
    with pytest.raises(RepositoryError, match=r"^dependency cycle: b -> c -> b; break it$"):
        topological_order(images(image("a", "b"), image("b", "c"), image("c", "b")), ["a"])


def test_unknown_mzfrom_names_the_dockerfile_line() -> None:
    """MZFROM of an unknown image is an error at FILE:LINE, with a close name if one exists."""
    with pytest.raises(
        RepositoryError,
        match=r"^img/Dockerfile:2: MZFROM names unknown image 'bsae' \(did you mean 'base'\?\)$",
    ):
        graph(image("base"), image("x", "base", "bsae", directory="img"))


def test_dockerfile_path() -> None:
    """An image's Dockerfile sits in its directory; at the root it is just `Dockerfile`."""
    assert image("a", directory="x/y").dockerfile == "x/y/Dockerfile"
    assert image("a", directory="").dockerfile == "Dockerfile"


def test_nested_directories() -> None:
    """Each image knows the image directories strictly inside its own."""
    g = graph(
        image("outer", directory="i/outer"),
        image("inner", directory="i/outer/inner"),
        image("deepest", directory="i/outer/inner/deepest"),
        image("sibling", directory="i/outer-2"),
        image("root", directory=""),
    )
    nested = nested_directories(g.images)
    assert nested["outer"] == ("i/outer/inner", "i/outer/inner/deepest")
    assert nested["inner"] == ("i/outer/inner/deepest",)
    assert nested["sibling"] == ()
    assert nested["deepest"] == ()
    assert set(nested["root"]) == {
        "i/outer",
        "i/outer/inner",
        "i/outer/inner/deepest",
        "i/outer-2",
    }
