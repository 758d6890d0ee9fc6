"""mzbuild.yml parsing into typed values, and the original's MZFROM rule."""

from __future__ import annotations

import pytest

from mzbuild_async.errors import ManifestError
from mzbuild_async.model.manifest import CargoBuild, Copy, MzFrom, parse_dockerfile, parse_manifest


def test_defaults() -> None:
    """A manifest with only a name publishes, is mainline, has no args or pre-images."""
    m = parse_manifest("name: a\n", "a/mzbuild.yml")
    assert (m.path, m.name, m.publish, m.mainline, m.description) == (
        "a/mzbuild.yml",
        "a",
        True,
        True,
        None,
    )
    assert m.build_args == {}
    assert m.pre_images == ()
    assert m.warnings == ()


def test_bytes_are_accepted() -> None:
    """The manifest may be given as the file's bytes."""
    assert parse_manifest(b"name: from-bytes\n", "m").name == "from-bytes"


def test_cargo_build_defaults() -> None:
    """A cargo-build with only a bin strips, has no examples, features or extract."""
    m = parse_manifest("name: a\npre-image:\n  - type: cargo-build\n    bin: x\n", "m")
    assert m.pre_images == (CargoBuild(bins=("x",)),)
    (cargo,) = m.pre_images
    assert isinstance(cargo, CargoBuild)
    assert (cargo.examples, cargo.strip, cargo.features, dict(cargo.extract)) == ((), True, (), {})


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


def test_pre_images_keep_manifest_order() -> None:
    """Pre-images keep their order in the file (their extras are hashed in it)."""
    m = parse_manifest(
        "name: a\npre-image:\n"
        "  - {type: copy, source: s, destination: d}\n"
        "  - {type: cargo-build, bin: b}\n"
        "  - {type: copy, source: t, destination: e}\n",
        "m",
    )
    assert [type(p).__name__ for p in m.pre_images] == ["Copy", "CargoBuild", "Copy"]


@pytest.mark.parametrize(
    ("entry", "bins", "examples", "features"),
    [
        pytest.param("bin: x", ("x",), (), (), id="bin-string"),
        pytest.param("bin: [x, y]", ("x", "y"), (), (), id="bin-list"),
        pytest.param("bin: [x]\n    example: e", ("x",), ("e",), (), id="example-string"),
        pytest.param("example: [e, f]", (), ("e", "f"), (), id="example-list-no-bin"),
        pytest.param("bin: []\n    example: e", (), ("e",), (), id="empty-bin-list"),
        pytest.param("bin: x\n    features: f", ("x",), (), ("f",), id="features-string"),
        pytest.param("bin: x\n    features: [f, g]", ("x",), (), ("f", "g"), id="features-list"),
        pytest.param("bin: x\n    features: []", ("x",), (), (), id="features-empty"),
    ],
)
def test_string_or_list(
    entry: str, bins: tuple[str, ...], examples: tuple[str, ...], features: tuple[str, ...]
) -> None:
    """bin, example and features each take a name or a list of names."""
    m = parse_manifest(f"name: a\npre-image:\n  - type: cargo-build\n    {entry}\n", "m")
    (cargo,) = m.pre_images
    assert isinstance(cargo, CargoBuild)
    assert (cargo.bins, cargo.examples, cargo.features) == (bins, examples, features)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param("x", "x", id="string"),
        pytest.param("'007'", "007", id="quoted"),
        pytest.param("2", "2", id="int"),
        pytest.param("-3", "-3", id="negative"),
        pytest.param("1.5", "1.5", id="float"),
        pytest.param("1.0", "1.0", id="float-keeps-its-zero"),
        pytest.param("1e3", "1e3", id="yaml11-exponent-without-dot-is-a-string"),
        pytest.param("true", "True", id="true"),
        pytest.param("false", "False", id="false"),
        pytest.param("yes", "True", id="yaml11-yes"),
        pytest.param("off", "False", id="yaml11-off"),
        pytest.param("0x10", "16", id="hex"),
        pytest.param("010", "8", id="yaml11-octal"),
        pytest.param("1_000", "1000", id="underscores"),
        pytest.param("12:30", "750", id="yaml11-sexagesimal"),
        pytest.param(".inf", "inf", id="infinity"),
    ],
)
def test_build_args_are_formatted_like_the_original(value: str, text: str) -> None:
    """Build-arg values become str(value) of what YAML loads, as the original passes them."""
    m = parse_manifest(f"name: a\nbuild-args:\n  V: {value}\n", "m")
    assert m.build_args == {"V": text}


def test_build_arg_date_is_formatted_like_the_original() -> None:
    """A date value is str(date), as the original formats it; the manifest is valid."""
    m = parse_manifest("name: a\nbuild-args:\n  DATE: 2024-01-01\n", "m")
    assert m.build_args == {"DATE": "2024-01-01"}


def test_copy_defaults_to_matching_everything() -> None:
    """A copy without `matching` copies every file under its source."""
    m = parse_manifest(
        "name: a\npre-image:\n  - type: copy\n    source: s\n    destination: .\n", "m"
    )
    assert m.pre_images == (Copy(source="s", destination="", matching="*"),)


@pytest.mark.parametrize(
    ("source", "normalized"),
    [
        pytest.param("misc/www/", "misc/www", id="trailing-slash"),
        pytest.param("./misc//www", "misc/www", id="dot-and-double-slash"),
        pytest.param("misc/../www", "www", id="dot-dot-inside"),
        pytest.param(".", "", id="root"),
    ],
)
def test_copy_source_is_normalized(source: str, normalized: str) -> None:
    """The copy source is a normalized repository-relative directory ('' for the root)."""
    m = parse_manifest(
        f"name: a\npre-image:\n  - type: copy\n    source: '{source}'\n    destination: d\n", "m"
    )
    assert m.pre_images == (Copy(source=normalized, destination="d"),)


@pytest.mark.parametrize(
    "name", ["a", "A-9", "materialized", "0", "-", "x-y-z"], ids=lambda n: f"valid-{n}"
)
def test_valid_names(name: str) -> None:
    """Names use only letters, digits and '-'."""
    assert parse_manifest(f"name: '{name}'\n", "m").name == name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "name: a\nmainline: 1\n", "m:2:11: 'mainline' must be true or false", id="mainline"
        ),
        pytest.param(
            "name: a\npublish: 'no'\n", "m:2:10: 'publish' must be true or false", id="publish"
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
        pytest.param(
            "name: a\nbuild-args:\n  A: [1]\n", "m:3:3: build arg 'A' must map", id="arg-list"
        ),
        pytest.param("name: a\npre-image: x\n", "m:2:12: 'pre-image' must be a list", id="pre"),
        pytest.param(
            "name: a\npre-image: [x]\n", "m:2:13: pre-image 1 must be a mapping", id="item"
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: docker\n",
            "m:3:11: unknown pre-image type 'docker' (str) in pre-image 1;"
            " use 'cargo-build' or 'copy'",
            id="unknown-type",
        ),
        pytest.param(
            "name: a\npre-image:\n  - bin: x\n",
            "m:3:5: unknown pre-image type nothing in pre-image 1",
            id="missing-type",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n",
            "m:3:5: cargo-build pre-image 1 names no 'bin' or 'example'",
            id="no-target",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: ''\n",
            "m:4:10: 'bin' must be a name or a list of names",
            id="empty-bin",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: [a, 1]\n",
            "m:4:10: 'bin' must be a name or a list of names",
            id="bin-number",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    example: null\n",
            "m:4:14: 'example' must be a name or a list of names",
            id="example-null",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    strip: 'yes'\n",
            "m:5:12: 'strip' must be true or false",
            id="strip",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    extract: [x]\n",
            "m:5:14: 'extract' must map packages",
            id="extract",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    extract: {p: [x]}\n",
            "m:5:14: 'extract' must map packages",
            id="extract-files-not-a-mapping",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    extract: {p: {s: 1}}\n",
            "m:5:14: 'extract' must map packages",
            id="extract-destination-not-a-string",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n    features: [1]\n",
            "m:5:15: 'features' must be a name or a list of names",
            id="features",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: copy\n    destination: d\n",
            "m:3:5: copy pre-image 1 is missing required key 'source'",
            id="copy-no-source",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: copy\n    source: s\n",
            "m:3:5: copy pre-image 1 is missing required key 'destination'",
            id="copy-no-destination",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: copy\n    source: ../x\n    destination: d\n",
            "m:4:13: copy source '../x' points outside the repository",
            id="copy-source-outside",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: copy\n    source: /etc\n    destination: d\n",
            "m:4:13: copy source '/etc' points outside the repository",
            id="copy-source-absolute",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: copy\n    source: s\n    destination: ../d\n",
            "m:5:18: copy destination '../d' points outside the image directory",
            id="copy-destination-outside",
        ),
        pytest.param(
            "name: a\npre-image:\n  - type: copy\n    source: s\n    destination: d\n"
            "    matching: ''\n",
            "m:6:15: 'matching' must be a path string",
            id="copy-matching-empty",
        ),
        pytest.param("name: ''\n", "m:1:7: invalid image name ''", id="empty-name"),
        pytest.param("name: a_b\n", "m:1:7: invalid image name 'a_b'", id="underscore"),
        pytest.param("name: a.b\n", "m:1:7: invalid image name 'a.b'", id="dot"),
        pytest.param("name: a b\n", "m:1:7: invalid image name 'a b'", id="space"),
        pytest.param("name: 123\n", "m:1:7: invalid image name 123 (int)", id="number"),
        pytest.param("publish: true\n", "m:1:1: missing required key 'name'", id="no-name"),
        pytest.param("", "m: the manifest must be a mapping", id="empty-file"),
        pytest.param("- name: a\n", "m: the manifest must be a mapping", id="a-list"),
        pytest.param("name: [a\n", "m:2:1: malformed YAML", id="malformed"),
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
        "  - type: cargo-build\n    bin: b\n    split_debuginfo: true\n"
        "  - type: copy\n    source: s\n    destination: d\n    mode: 0o644\n",
        "m",
    )
    assert m.warnings == (
        "m:2:1: unknown key 'flavor' (mzbuild ignores it; --strict makes it an error)",
        "m:6:5: unknown key 'split_debuginfo' in cargo-build pre-image 1"
        " (mzbuild ignores it; --strict makes it an error)",
        "m:10:5: unknown key 'mode' in copy pre-image 2"
        " (mzbuild ignores it; --strict makes it an error)",
    )


@pytest.mark.parametrize(
    ("dockerfile", "names"),
    [
        pytest.param(b"MZFROM base\nRUN x\n", ["base"], id="plain"),
        pytest.param(b"MZFROM tools AS t\n", ["tools"], id="as"),
        pytest.param(b"MZFROM base\r\nRUN x\r\n", ["base"], id="crlf"),
        pytest.param(b"MZFROM base", ["base"], id="no-final-newline"),
        pytest.param(b"  MZFROM base\n", [], id="indented-is-not"),
        pytest.param(b"\tMZFROM base\n", [], id="tab-indented-is-not"),
        pytest.param(b"# MZFROM base\n", [], id="comment-is-not"),
        pytest.param(b"RUN echo MZFROM base\n", [], id="mid-line-is-not"),
        pytest.param(b"mzfrom base\n", [], id="lowercase-is-not"),
        pytest.param(b"MZFROMbase\n", ["base"], id="no-space-counts-as-the-original"),
        pytest.param(b"MZFROM\tbase\n", ["base"], id="tab"),
        pytest.param(b"MZFROM    base   \n", ["base"], id="many-spaces"),
        pytest.param(b"MZFROM\n", [], id="no-name"),
        pytest.param(b"MZFROM   \r\n", [], id="no-name-crlf"),
        pytest.param(b"MZFROM\nbase\n", [], id="name-on-the-next-line-is-not"),
        pytest.param(b"MZFROM a\rMZFROM b\n", ["a"], id="lone-cr-is-no-line-break"),
        pytest.param(b"MZFROM a:latest\n", ["a:latest"], id="whole-token"),
        pytest.param(b"MZFROM a\nMZFROM b\nMZFROM a\n", ["a", "b", "a"], id="repeated"),
        pytest.param(b"FROM scratch\n", [], id="plain-from"),
        pytest.param(b"", [], id="empty"),
    ],
)
def test_mzfrom_lines(dockerfile: bytes, names: list[str]) -> None:
    """Dependencies are the original's `^MZFROM\\s*(\\S+)` matches at a line's very start."""
    found = parse_dockerfile(dockerfile, "Dockerfile")
    assert [m.name for m in found] == names


def test_mzfrom_line_numbers() -> None:
    """Each MZFROM records its 1-based line, counting blank and CRLF lines."""
    content = b"# syntax\r\n\nMZFROM base\r\nRUN x\n\n  MZFROM not\nMZFROM tools AS t\n"
    assert parse_dockerfile(content, "d") == (MzFrom("base", 3), MzFrom("tools", 7))


def test_mzfrom_name_must_be_utf8() -> None:
    """A name that is not UTF-8 is a ManifestError at FILE:LINE."""
    with pytest.raises(ManifestError, match=r"^img/Dockerfile:2: MZFROM names an image"):
        parse_dockerfile(b"FROM x\nMZFROM caf\xe9\n", "img/Dockerfile")
