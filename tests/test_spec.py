"""Image specs are parsed and formatted in one place."""

from __future__ import annotations

import pytest

from mzbuild_async.model.spec import SPEC_PATTERN, Spec, fingerprint_of, format_spec

FP = "WCEDPPSGRP3PXJASJ2OCHGFWEGWDMBFD"


@pytest.mark.parametrize(
    ("text", "registry", "repository"),
    [
        pytest.param(
            f"ghcr.io/materializeinc/materialize/environmentd:mzbuild-{FP}",
            "ghcr.io/materializeinc/materialize",
            "environmentd",
            id="ghcr",
        ),
        pytest.param(
            f"127.0.0.1:5000/ci/pre-app:mzbuild-{FP}", "127.0.0.1:5000/ci", "pre-app", id="port"
        ),
    ],
)
def test_round_trip(text: str, registry: str, repository: str) -> None:
    """parse and str() are inverses; the pieces are where the original puts them."""
    spec = Spec.parse(text)
    assert (spec.registry, spec.repository, spec.fingerprint) == (registry, repository, FP)
    assert str(spec) == text == format_spec(registry, repository, FP)
    assert fingerprint_of(text) == FP
    assert SPEC_PATTERN.fullmatch(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("ghcr.io/x/y:latest", id="other-tag"),
        pytest.param(f"noslash:mzbuild-{FP}", id="no-registry"),
        pytest.param("ghcr.io/x/y:mzbuild-", id="empty-fingerprint"),
    ],
)
def test_not_a_spec(text: str) -> None:
    """Anything else is a ValueError naming the text."""
    with pytest.raises(ValueError, match="not an mzbuild image spec"):
        Spec.parse(text)
