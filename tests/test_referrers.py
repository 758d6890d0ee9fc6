"""Artifacts attached to images: the referrers tag schema against the real docker-registry
(it has no referrers API), read back with skopeo."""

from __future__ import annotations

import json
import uuid

import pytest

from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.registry.referrers import Descriptor, attach, fallback_tag, referrers
from mzbuild_async.registry.writer import RegistryWriter
from tests.support.registry import Registry
from tests.support.skopeo import raw_manifest

pytestmark = [pytest.mark.anyio, pytest.mark.real]
IN_TOTO = "application/vnd.in-toto+json"
DSSE = "application/vnd.dsse.envelope.v1+json"


async def test_attach_keeps_the_fallback_index_and_lists_it(
    registries: dict[str, Registry],
) -> None:
    registry = registries["none"]
    repo = f"r{uuid.uuid4().hex[:8]}/img"
    digest = registry.push(repo, "mzbuild-A")
    async with RegistryClient() as client:
        writer = RegistryWriter(client)
        image = await writer.manifest(parse_reference(f"{registry.host}/{repo}:mzbuild-A"))
        assert image is not None
        subject = Descriptor.of(image)
        where = parse_reference(f"{registry.host}/{repo}")
        first = await attach(
            writer, where, subject, IN_TOTO, DSSE, b'{"payload": 1}',
            {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"},
        )  # fmt: skip
        second = await attach(writer, where, subject, "application/vnd.cyclonedx+json", DSSE, b"{}")
        again = await attach(
            writer, where, subject, IN_TOTO, DSSE, b'{"payload": 1}',
            {"in-toto.io/predicate-type": "https://slsa.dev/provenance/v1"},
        )  # fmt: skip
        assert again == first
        listed = await referrers(writer, where, digest)
        provenance = await referrers(writer, where, digest, IN_TOTO)
    assert [d.digest for d in listed] == [first.digest, second.digest]  # no duplicate
    assert [d.digest for d in provenance] == [first.digest]
    assert provenance[0].annotations == (
        ("in-toto.io/predicate-type", "https://slsa.dev/provenance/v1"),
    )
    # skopeo reads the artifact manifest and the fallback index.
    artifact = json.loads(raw_manifest(f"{registry.host}/{repo}@{first.digest}"))
    assert artifact["subject"]["digest"] == digest
    assert artifact["artifactType"] == IN_TOTO
    assert artifact["layers"][0]["mediaType"] == DSSE
    index = json.loads(raw_manifest(f"{registry.host}/{repo}:{fallback_tag(digest)}"))
    assert [m["digest"] for m in index["manifests"]] == [first.digest, second.digest]


async def test_an_image_without_referrers_has_none(registries: dict[str, Registry]) -> None:
    registry = registries["none"]
    repo = f"r{uuid.uuid4().hex[:8]}/img"
    digest = registry.push(repo, "mzbuild-B")
    async with RegistryClient() as client:
        assert (
            await referrers(
                RegistryWriter(client), parse_reference(f"{registry.host}/{repo}"), digest
            )
            == []
        )


async def test_a_registry_with_the_referrers_api_is_asked_not_the_fallback_tag(
    registries: dict[str, Registry],
) -> None:
    """In front of docker-registry, a server that answers the referrers API and says
    ``OCI-Subject``: no fallback index is written, and the API's list is read."""
    from tests.support.faultproxy import Faults, proxy_thread

    registry = registries["none"]
    repo = f"r{uuid.uuid4().hex[:8]}/img"
    digest = registry.push(repo, "mzbuild-C")
    with proxy_thread(f"http://{registry.host}", Faults(referrers_api=True)) as proxy:
        async with RegistryClient() as client:
            writer = RegistryWriter(client)
            where = parse_reference(f"{proxy.host}/{repo}")
            image = await writer.manifest(parse_reference(f"{proxy.host}/{repo}:mzbuild-C"))
            assert image is not None
            attached = await attach(writer, where, Descriptor.of(image), IN_TOTO, DSSE, b"{}")
            listed = await referrers(writer, where, digest, IN_TOTO)
    assert [d.digest for d in listed] == [attached.digest]
    assert registry.digest(repo, fallback_tag(digest)) is None  # no fallback index
    assert proxy.referrers[(repo, digest)][0]["digest"] == attached.digest
