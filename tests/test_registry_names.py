"""Image references parsed as Docker parses them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mzbuild_async.errors import UsageError
from mzbuild_async.registry.names import is_loopback, parse_reference


@pytest.mark.parametrize(
    ("text", "domain", "repository", "reference", "api_host"),
    [
        pytest.param(
            "ubuntu", "docker.io", "library/ubuntu", "latest", "registry-1.docker.io", id="hub"
        ),
        pytest.param(
            "acme/app:1", "docker.io", "acme/app", "1", "registry-1.docker.io", id="hub-org"
        ),
        pytest.param(
            "localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag", "localhost:5000", id="port"
        ),
        pytest.param(
            "ghcr.io/materializeinc/materialize/base:mzbuild-6E2BQ7E4",
            "ghcr.io",
            "materializeinc/materialize/base",
            "mzbuild-6E2BQ7E4",
            "ghcr.io",
            id="spec",
        ),
        pytest.param("localhost/x", "localhost", "x", "latest", "localhost", id="localhost"),
        pytest.param(
            "r.io/x@sha256:" + "a" * 64, "r.io", "x", "sha256:" + "a" * 64, "r.io", id="digest"
        ),
    ],
)
def test_parse(text: str, domain: str, repository: str, reference: str, api_host: str) -> None:
    """Domain, repository, tag or digest, and where the API answers."""
    ref = parse_reference(text)
    assert (ref.domain, ref.repository, ref.reference, ref.api_host) == (
        domain,
        repository,
        reference,
        api_host,
    )


@pytest.mark.parametrize(
    "text", ["", "UPPER/case", "a b", "x:", "r.io/x@sha256:zz", "r.io/x:" + "t" * 200, " x"]
)
def test_invalid(text: str) -> None:
    """Malformed references are one-line UsageErrors naming them."""
    with pytest.raises(UsageError, match="invalid image reference"):
        parse_reference(text)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost:5000", True),
        ("127.0.0.1", True),
        ("127.8.9.1:80", True),
        ("[::1]:5000", True),
        ("ghcr.io", False),
        ("10.0.0.1:5000", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    """Only loopback hosts are spoken to over plain HTTP by default."""
    assert is_loopback(host) is loopback


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet="abcXY09.-_:/;[] @", min_size=1, max_size=20),
    st.text(alphabet="ab9.-_X/", max_size=6),
)
def test_options_and_references_agree_on_what_is_valid(registry: str, prefix: str) -> None:
    """BuildOptions (model) refuses exactly the registries and prefixes that make image
    references parse_reference (registry) refuses: the grammar lives once."""
    from mzbuild_async.model.spec import repository_problem

    try:
        parse_reference(f"{registry}/{prefix}image:tag")
    except UsageError:
        parsed = False
    else:
        parsed = True
    assert (repository_problem(registry, prefix) is None) == parsed, (registry, prefix)
