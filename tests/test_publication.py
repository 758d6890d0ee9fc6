"""[[publish]] mirrors, [promote] moving tags and tag names, as the settings file gives them."""

from __future__ import annotations

import pytest

from mzbuild_async.errors import UsageError
from mzbuild_async.model.publication import (
    DEFAULT_MOVING,
    Destination,
    check_tag,
    publish_config,
)

PRIMARY = Destination("ghcr.io/materializeinc", "")


def test_mirrors_take_the_primary_prefix_unless_they_name_one() -> None:
    config = publish_config(
        {
            "publish": [
                {"registry": "docker.io/materialize/"},
                {"registry": "127.0.0.1:5000", "prefix": "mz-"},
            ]
        }
    )
    publication = config.publication(Destination("ghcr.io/mz", "pre-"), ["mirror.test:443"])
    assert publication.destinations == (
        Destination("ghcr.io/mz", "pre-"),
        Destination("docker.io/materialize", "pre-"),
        Destination("127.0.0.1:5000", "mz-"),
        Destination("mirror.test:443", "pre-"),
    )
    assert publication.moving == frozenset(DEFAULT_MOVING)


def test_the_primary_and_repeats_are_not_mirrors() -> None:
    config = publish_config({"publish": [{"registry": "ghcr.io/materializeinc"}]})
    publication = config.publication(PRIMARY, ["reg.test", "reg.test"])
    assert publication.mirrors == (Destination("reg.test", ""),)
    assert publication.destinations[0] == PRIMARY


def test_destination_spec() -> None:
    assert Destination("reg.test/a", "p-").spec("img", "v1") == "reg.test/a/p-img:v1"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param({"publish": {"registry": "x"}}, "array of tables", id="not-array"),
        pytest.param({"publish": [{"registr": "x"}]}, "unknown setting 'registr'", id="key"),
        pytest.param({"publish": [{}]}, "registry must be", id="no-registry"),
        pytest.param({"publish": [{"registry": "x", "prefix": 1}]}, "prefix must", id="prefix"),
        pytest.param({"promote": {"move": []}}, "unknown setting 'move'", id="promote-key"),
        pytest.param({"promote": {"moving": "latest"}}, "list of tags", id="moving-kind"),
        pytest.param({"promote": {"moving": ["a:b"]}}, "not a valid tag", id="moving-tag"),
        pytest.param({"promote": []}, "must be a table", id="promote-kind"),
    ],
)
def test_bad_tables_are_one_line_naming_the_file(data: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=r"mzbuild-async\.toml") as info:
        publish_config(data)
    assert message in str(info.value)


def test_a_bad_mirror_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match="--mirror-registry") as info:
        publish_config({}).publication(PRIMARY, ["Bad Host"])
    assert "Bad Host" in str(info.value)


@pytest.mark.parametrize("tag", ["v1.2.3", "latest", "v0.1.0--main.gabc123", "_x", "a" * 128])
def test_valid_tags(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", ".x", "-x", "a/b", "a:b", "a b", "a" * 129, "é"])
def test_invalid_tags(tag: str) -> None:
    with pytest.raises(UsageError, match="not a valid tag"):
        check_tag(tag)
