"""mzbuild.yml parsing into typed values, and the original's MZFROM rule."""

from __future__ import annotations

import pytest

from mzbuild_async.errors import ManifestError
from mzbuild_async.manifest import CargoBuild, Copy, parse_dockerfile, parse_manifest


def test_defaults() -> None:
    """A manifest with only a name publishes, is mainline, has no args or pre-images."""
    m = parse_manifest("name: a\n", "a/mzbuild.yml")
    assert (m.name, m.publish, m.mainline, m.description) == ("a", True, True, None)
    assert m.build_args == {}
    assert m.pre_images == ()
    assert m.warnings == ()


def test_every_key() -> None:
    """Every key and pre-image type lands in a frozen typed value."""
    m = parse_manifest(
        "name: full\npublish: false\nmainline: false\ndescription: d\n"
        "build-args:\n  A: x\n  N: 2\n  B: true\n"
        "pre-image:\n"
        "  - type: cargo-build\n    bin: one\n    example: [ex1, ex2]\n    strip: false\n"
        "    features: f\n    extract:\n      pkg:\n        src: dst\n"
        "  - type: copy\n    source: misc/www/\n    destination: www\n    matching: '*.js'\n",
        "x/mzbuild.yml",
    )
    assert (m.publish, m.mainline, m.description) == (False, False, "d")
    # Values are passed to docker as the original formats them: str(value).
    assert m.build_args == {"A": "x", "N": "2", "B": "True"}
    cargo, copy = m.pre_images
    assert cargo == CargoBuild(
        bins=("one",),
        examples=("ex1", "ex2"),
        strip=False,
        features=("f",),
        extract={"pkg": {"src": "dst"}},
    )
    assert copy == Copy(source="misc/www", destination="www", matching="*.js")


def test_copy_defaults_to_matching_everything() -> None:
    """A copy without `matching` copies every file under its source."""
    m = parse_manifest(
        "name: a\npre-image:\n  - type: copy\n    source: s\n    destination: .\n", "m"
    )
    assert m.pre_images == (Copy(source="s", destination="", matching="*"),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "name: a\nmainline: 1\n", "m:2:11: 'mainline' must be true or false", id="mainline"
        ),
        pytest.param(
            "name: a\ndescription: [x]\n", "m:2:14: 'description' must be a string", id="desc"
        ),
        pytest.param(
            "name: a\nbuild-args: [x]\n", "m:2:13: 'build-args' must be a mapping", id="args"
        ),
        pytest.param(
            "name: a\nbuild-args:\n  A: null\n", "m:3:3: build arg 'A' must map", id="arg-null"
        ),
        pytest.param("name: a\npre-image: x\n", "m:2:12: 'pre-image' must be a list", id="pre"),
        pytest.param(
            "name: a\npre-image: [x]\n", "m:2:13: pre-image 1 must be a mapping", id="item"
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    extract: [x]\n",
            "m:5:14: 'extract' must map packages",
            id="extract",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    features: [1]\n",
            "m:5:15: 'features' must be a name or a list of names",
            id="features",
        ),
        pytest.param("name: ''\n", "m:1:7: invalid image name ''", id="empty-name"),
        pytest.param("name: a\n? [x]\n: y\n", "m:", id="complex-key"),
    ],
)
def test_invalid_values(text: str, message: str) -> None:
    """Each invalid value is a ManifestError pointing at its line and column."""
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "m")
    assert str(info.value).startswith(message)


def test_unknown_keys_are_warnings_with_places() -> None:
    """Unknown keys at the top and in a pre-image are collected, with line and column."""
    m = parse_manifest(
        "name: a\nflavor: x\npre-image:\n"
        "  - type: cargo-build\n    bin: b\n    split_debuginfo: true\n",
        "m",
    )
    assert m.warnings == (
        "m:2:1: unknown key 'flavor' (mzbuild ignores it; --strict makes it an error)",
        "m:6:5: unknown key 'split_debuginfo' in cargo-build pre-image 1"
        " (mzbuild ignores it; --strict makes it an error)",
    )


@pytest.mark.parametrize(
    ("dockerfile", "names"),
    [
        pytest.param(b"MZFROM base\nRUN x\n", ["base"], id="plain"),
        pytest.param(b"MZFROM tools AS t\n", ["tools"], id="as"),
        pytest.param(b"MZFROM base\r\nRUN x\r\n", ["base"], id="crlf"),
        pytest.param(b"  MZFROM base\n", [], id="indented-is-not"),
        pytest.param(b"# MZFROM base\n", [], id="comment-is-not"),
        pytest.param(b"mzfrom base\n", [], id="lowercase-is-not"),
        pytest.param(b"MZFROMbase\n", ["base"], id="no-space-counts-as-the-original"),
        pytest.param(b"MZFROM\tbase\n", ["base"], id="tab"),
        pytest.param(b"MZFROM\n", [], id="no-name"),
        pytest.param(b"MZFROM a\nMZFROM b\nMZFROM a\n", ["a", "b", "a"], id="repeated"),
    ],
)
def test_mzfrom_lines(dockerfile: bytes, names: list[str]) -> None:
    """Dependencies are the original's `^MZFROM\\s*(\\S+)` matches, with their line numbers."""
    found = parse_dockerfile(dockerfile, "Dockerfile")
    assert [m.name for m in found] == names
    if names:
        assert found[0].line == 1
