"""Provenance statements: in-toto Statement v1 with a SLSA Provenance v1 predicate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from mzbuild_async.attest.statement import (
    BUILD_TYPE,
    Base,
    Build,
    Input,
    Parent,
    Subject,
    provenance,
    timestamp,
)

SCHEMAS = Path(__file__).parents[1] / "mzbuild_async" / "attest" / "schemas"
DIGEST = "sha256:" + "ab" * 32


def validate(statement: dict[str, Any]) -> None:
    """Against the Statement v1 schema, and the predicate against SLSA Provenance v1."""
    statement_schema = json.loads((SCHEMAS / "statement-v1.json").read_text())
    predicate_schema = json.loads((SCHEMAS / "slsa-provenance-v1.json").read_text())
    registry = Registry().with_resource(
        "statement-v1.json", Resource.from_contents(statement_schema)
    )
    jsonschema.Draft202012Validator(statement_schema).validate(statement)
    jsonschema.Draft202012Validator(predicate_schema, registry=registry).validate(
        statement["predicate"]
    )


BUILD = Build(
    name="demo-lib",
    fingerprint="NVMXCASFVBOKCEAARMKR7BR5ICEOQTE3",
    options={"profile": "release", "arch": "x86_64", "coverage": False, "sanitizer": "none"},
    inputs=[Input("images/lib/Dockerfile", "1" * 40), Input("images/lib/lib.txt", "2" * 40)],
    parents=[Parent("demo-base", "reg.test/demo-base:mzbuild-X", "sha256:" + "cd" * 32)],
    bases=[Base("debian:12-slim", "sha256:" + "ef" * 32)],
    source="https://git.example.test/org/demo",
    revision="3" * 40,
    engine="e2",
    platform="linux/amd64",
    invocation="https://ci.example.test/builds/7",
    started=1_764_590_400.0,
    finished=1_764_590_412.5,
    version="0.1.0",
)


def test_a_statement_is_valid_and_says_what_decided_the_image() -> None:
    statement = provenance(Subject("reg.test/demo-lib", DIGEST), BUILD)
    validate(statement)
    assert statement["subject"] == [{"name": "reg.test/demo-lib", "digest": {"sha256": "ab" * 32}}]
    definition = statement["predicate"]["buildDefinition"]
    assert definition["buildType"] == BUILD_TYPE
    assert definition["externalParameters"]["options"]["profile"] == "release"
    deps = definition["resolvedDependencies"]
    assert deps[0] == {"name": "images/lib/Dockerfile", "digest": {"sha1": "1" * 40}}
    assert deps[2]["digest"] == {"sha256": "cd" * 32}
    assert deps[3] == {
        "name": "source",
        "uri": "git+https://git.example.test/org/demo",
        "digest": {"gitCommit": "3" * 40},
    }
    assert deps[4] == {
        "name": "debian:12-slim",
        "uri": "oci://debian:12-slim",
        "digest": {"sha256": "ef" * 32},
    }
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == "urn:mzbuild-async:engine:e2"
    assert run["metadata"] == {
        "invocationId": "https://ci.example.test/builds/7",
        "startedOn": "2025-12-01T12:00:00Z",
        "finishedOn": "2025-12-01T12:00:12Z",
    }


def test_a_statement_without_optional_facts_is_valid() -> None:
    bare = Build(name="x", fingerprint="F", options={}, inputs=[], parents=[])
    statement = provenance(Subject("reg.test/x", DIGEST), bare)
    validate(statement)
    assert statement["predicate"]["runDetails"]["metadata"] == {}


@pytest.mark.parametrize(
    "broken",
    [
        {"_type": "https://in-toto.io/Statement/v0.1"},
        {"subject": []},
        {"subject": [{"name": "x", "digest": {"sha256": "short"}}]},
    ],
)
def test_the_schema_refuses_what_is_not_a_statement(broken: dict[str, Any]) -> None:
    statement = provenance(Subject("reg.test/x", DIGEST), BUILD)
    with pytest.raises(jsonschema.ValidationError):
        validate({**statement, **broken})


def test_timestamps_are_utc_seconds() -> None:
    assert timestamp(0.9) == "1970-01-01T00:00:00Z"


def test_check_statement_names_the_first_difference() -> None:
    from mzbuild_async.attest.verify import Mismatch, check_statement

    statement = provenance(Subject("reg.test/demo-lib", DIGEST), BUILD)
    inputs = {i.path: i.sha1 for i in BUILD.inputs}
    parents = {"demo-base": "reg.test/demo-base:mzbuild-X"}
    check_statement(statement, DIGEST, inputs, parents)  # describes the image: no error
    cases = [
        ("sha256:" + "ef" * 32, inputs, parents, "its subject is another image"),
        (DIGEST, {**inputs, "images/lib/new.txt": "4" * 40}, parents, "is not in the statement"),
        (DIGEST, {"images/lib/Dockerfile": "1" * 40}, parents, "this checkout does not"),
        (
            DIGEST,
            {**inputs, "images/lib/lib.txt": "5" * 40},
            parents,
            "input images/lib/lib.txt differs",
        ),
        (DIGEST, inputs, {"demo-base": "reg.test/demo-base:mzbuild-Y"}, "parent demo-base differs"),
    ]
    for digest, want_inputs, want_parents, message in cases:
        with pytest.raises(Mismatch, match=message):
            check_statement(statement, digest, want_inputs, want_parents)
    with pytest.raises(Mismatch, match="not SLSA provenance"):
        check_statement({**statement, "predicateType": "x"}, DIGEST, inputs, parents)
