"""Documents from outside (support/documents): JSON and YAML nested past the limit are
refused with a ValueError, before a parser can recurse (or libyaml's composer can
overflow the C stack); everything of an ordinary depth reads as json and yaml do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from mzbuild_async.support.documents import MAX_DEPTH, DocumentError, parse_json, parse_yaml


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("kind", [str, bytes])
def test_json_past_the_limit_is_refused_at_any_depth(kind: type) -> None:
    for depth in (MAX_DEPTH + 1, 999, 5_000, 200_000):
        text = nested(depth)
        with pytest.raises(DocumentError, match=f"nested more than {MAX_DEPTH} levels deep"):
            parse_json(text if kind is str else text.encode())
    assert parse_json(nested(MAX_DEPTH)) == json.loads(nested(MAX_DEPTH))


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"a": "[" * 10_000, "b": [{"c": "{" * 500}]})
    assert parse_json(text) == json.loads(text)


def test_bytes_that_are_not_utf8_are_a_document_error() -> None:
    with pytest.raises(DocumentError, match="not UTF-8"):
        parse_json(b'{"a": "\xff"}')
    with pytest.raises(ValueError, match="Expecting value"):
        parse_json("garbage")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a: " + nested(100_000), id="flow lists 100k deep (libyaml would crash)"),
        pytest.param("".join(" " * i + "a:\n" for i in range(3_000)), id="block mappings"),
        pytest.param("".join(" " * i + "- \n" for i in range(0, 3_000, 1)), id="block lists"),
        pytest.param("- " * 500 + "x\n", id="lists on one line"),
    ],
)
def test_yaml_past_the_limit_is_refused_with_its_place(text: str) -> None:
    with pytest.raises(DocumentError) as caught:
        parse_yaml(text)
    assert str(caught.value) == f"nested more than {MAX_DEPTH} levels deep"
    assert caught.value.line >= 1
    assert caught.value.column >= 1


#: (Letters and digits: YAML's reading of JSON's escapes differs from JSON's own.)
words = st.text(st.characters(categories=["L", "Nd"]), max_size=5)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner),
    max_leaves=30,
)


@given(json_values)
def test_ordinary_documents_read_as_json_and_yaml_read_them(value: object) -> None:
    text = json.dumps(value)
    assert parse_json(text) == json.loads(text)
    assert parse_json(text.encode()) == json.loads(text)
    text = json.dumps(value, ensure_ascii=False)
    assert parse_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 100_000])
def test_toml_past_the_limit_is_tomls_own_error(depth: int) -> None:
    """tomllib recurses too: a Cargo.toml, lock file or settings file nested past the
    limit is a TOMLDecodeError (what every reader of them handles), never a
    RecursionError."""
    import tomllib

    from mzbuild_async.support.documents import parse_toml

    with pytest.raises(tomllib.TOMLDecodeError, match="nested more than 64 levels deep"):
        parse_toml("a = " + nested(depth) + "\n")
    assert parse_toml('[package]\nname = "x"\n') == {"package": {"name": "x"}}


def test_a_deep_cargo_toml_is_one_line(tmp_path: Path) -> None:
    """The CLI on a workspace whose Cargo.toml nests 100,000 arrays: one line naming it."""
    import subprocess
    import sys

    from tests.conftest import git, write_tree

    write_tree(
        tmp_path,
        {
            "Cargo.toml": "[workspace]\nmembers = " + nested(100_000) + "\n",
            "a/mzbuild.yml": "name: a\npre-image:\n  - type: cargo-build\n    bin: a\n",
            "a/Dockerfile": "FROM scratch\n",
        },
    )
    git(tmp_path, "init", "-q", "-b", "main")
    result = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "fingerprint", "a", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Cargo.toml: malformed TOML: nested more than 64 levels deep" in result.stderr
