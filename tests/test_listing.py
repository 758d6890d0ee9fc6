"""One listing of the engine's tags for many lookups (engine/listing): the engine's
``reference`` filter as the real engine applies it (cases taken from Docker 20.10's
answers), the patterns a run asks for, and falling back to one question per image."""

from __future__ import annotations

import pytest

from mzbuild_async.engine.inmemory import MemoryEngine, MemoryImage
from mzbuild_async.engine.listing import LIST_FROM, TagSnapshot, familiar, matches, patterns
from mzbuild_async.errors import EngineError

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("pattern", "tag", "expected"),
    [
        ("127.0.0.1:5999/pfx/*", "127.0.0.1:5999/pfx/app:mzbuild-BBB", True),
        ("127.0.0.1:5999/pfx/*", "127.0.0.1:5999/pfx/sub/app:mzbuild-BBB", False),
        ("127.0.0.1:5999/pfx/*", "127.0.0.1:5999/pfxx/app:t", False),
        ("materialize/*", "materialize/foo:mzbuild-CCC", True),
        ("lprobe", "lprobe:x", True),
        ("library/lprobe", "lprobe:x", False),
        ("docker.io/materialize/*", "materialize/foo:t", False),
        ("127.0.0.1:5999/pfx/ap?", "127.0.0.1:5999/pfx/app:t", True),
        ("127.0.0.1:5999/pfx/a.p", "127.0.0.1:5999/pfx/app:t", False),  # (a dot is a dot)
    ],
)
def test_patterns_match_as_the_engines_reference_filter(
    pattern: str, tag: str, expected: bool
) -> None:
    assert matches(pattern, tag) is expected


def test_specs_are_asked_for_in_the_engines_own_spelling() -> None:
    assert familiar("docker.io/library/ubuntu:22.04") == "ubuntu:22.04"
    assert familiar("materialize/environmentd:mzbuild-X") == "materialize/environmentd:mzbuild-X"
    assert familiar("127.0.0.1:5000/ci/app:mzbuild-X") == "127.0.0.1:5000/ci/app:mzbuild-X"
    specs = ["127.0.0.1:5000/ci/a:t", "127.0.0.1:5000/ci/b:t", "docker.io/materialize/c:t"]
    assert patterns(specs) == ["127.0.0.1:5000/ci/*", "materialize/*"]
    assert patterns(["Not A Reference"]) is None


def _engine(count: int) -> tuple[MemoryEngine, list[str]]:
    engine = MemoryEngine()
    specs = [f"reg.test/many/i{i}:mzbuild-X" for i in range(count)]
    engine.images[specs[0]] = MemoryImage("sha256:" + "0" * 64)
    engine.images["reg.test/elsewhere/i1:mzbuild-X"] = MemoryImage("sha256:" + "1" * 64)
    return engine, specs


async def test_each_listed_answer_is_used_once_then_the_engine_is_asked() -> None:
    engine, specs = _engine(LIST_FROM)
    snapshot = TagSnapshot(engine)
    await snapshot.prefetch(specs)
    assert [await snapshot.exists(s) for s in specs[:2]] == [True, False]
    assert [m for m, _ in engine.calls] == ["tags"]
    del engine.images[specs[0]]
    assert await snapshot.exists(specs[0]) is False  # (asked again: the engine's answer)
    assert [m for m, _ in engine.calls] == ["tags", "exists"]
    snapshot.forget(specs)
    assert await snapshot.exists(specs[2]) is False
    assert [m for m, _ in engine.calls] == ["tags", "exists", "exists"]


async def test_few_images_or_a_failed_listing_are_asked_about_one_by_one() -> None:
    engine, specs = _engine(LIST_FROM - 1)
    snapshot = TagSnapshot(engine)
    await snapshot.prefetch(specs)
    assert engine.calls == []
    engine, specs = _engine(LIST_FROM)

    async def refused(patterns: object) -> set[str]:
        raise EngineError("the engine refused a listing")

    engine.tags = refused  # type: ignore[method-assign]
    snapshot = TagSnapshot(engine)
    await snapshot.prefetch(specs)
    assert await snapshot.exists(specs[0]) is True
    assert [m for m, _ in engine.calls] == ["exists"]
