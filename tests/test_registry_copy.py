"""Copying images registry to registry over the API: real docker-registry servers."""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import anyio
import httpx
import pytest

from mzbuild_async.errors import TransferError
from mzbuild_async.registry.auth import CredentialStore
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.copy import CopyStats, copy_image
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.registry.writer import RegistryWriter
from tests.support.registry import PASSWORD, USER, Registry

pytestmark = [pytest.mark.anyio, pytest.mark.real]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def push_layered(
    registry: Registry, repo: str, tag: str, layers: int = 3, blobs: list[bytes] | None = None
) -> str:
    """An image with ``layers`` random layers (1 MiB and more), or with ``blobs``, at
    ``repo:tag``; its digest."""
    blobs = blobs or [os.urandom(1024 * 1024 + i) for i in range(layers)]
    config = json.dumps({"architecture": "amd64", "os": "linux", "run": uuid.uuid4().hex}).encode()
    with registry._client(repo) as client:
        for body in (config, *blobs):
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            started = client.post(f"/v2/{repo}/blobs/uploads/")
            started.raise_for_status()
            location = httpx.URL(started.headers["location"]).copy_add_param("digest", digest)
            client.put(location, content=body).raise_for_status()

        def descriptor(body: bytes, kind: str) -> dict[str, object]:
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
            return {"mediaType": kind, "digest": digest, "size": len(body)}

        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(config, "application/vnd.oci.image.config.v1+json"),
                "layers": [
                    descriptor(b, "application/vnd.oci.image.layer.v1.tar+gzip") for b in blobs
                ],
            }
        ).encode()
        response = client.put(
            f"/v2/{repo}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
        response.raise_for_status()
    return response.headers["docker-content-digest"]


async def _copy(source: str, target: str) -> tuple[CopyStats, str]:
    stats = CopyStats()
    async with RegistryClient() as client:
        copied = await copy_image(
            RegistryWriter(client), parse_reference(source), parse_reference(target), stats
        )
    return stats, copied.digest


async def test_a_copy_to_another_registry_streams_each_blob_once(
    registries: dict[str, Registry],
) -> None:
    source, target = registries["none"], registries["token"]
    repo = f"c{uuid.uuid4().hex[:8]}/img"
    digest = push_layered(source, repo, "mzbuild-A")
    stats, copied = await _copy(
        f"{source.host}/{repo}:mzbuild-A", f"{target.host}/{repo}:mzbuild-A"
    )
    assert copied == digest
    assert target.digest(repo, "mzbuild-A") == digest  # the same manifest, by the target
    assert (stats.uploaded, stats.mounted, stats.present) == (4, 0, 0)
    assert stats.bytes > 3 * 1024 * 1024

    # Again: every blob is there (a HEAD each), only the manifest is written.
    again, _ = await _copy(f"{source.host}/{repo}:mzbuild-A", f"{target.host}/{repo}:mzbuild-A")
    assert (again.uploaded, again.mounted, again.present) == (0, 0, 4)


async def test_a_copy_within_one_host_mounts_blobs(registries: dict[str, Registry]) -> None:
    registry = registries["token"]
    assert registry.issuer is not None
    repo = f"m{uuid.uuid4().hex[:8]}/img"
    digest = push_layered(registry, repo, "mzbuild-B")
    stats, copied = await _copy(
        f"{registry.host}/{repo}:mzbuild-B", f"{registry.host}/{repo}-mirror:mzbuild-B"
    )
    assert copied == digest == registry.digest(f"{repo}-mirror", "mzbuild-B")
    assert (stats.mounted, stats.uploaded, stats.bytes) == (4, 0, 0)
    # One token granted both: push to the target, pull from the source.
    assert any(
        {f"repository:{repo}-mirror:pull,push", f"repository:{repo}:pull"} <= set(scopes)
        for scopes in registry.issuer.scopes_seen
    )


async def test_an_index_copies_its_manifests_first(registries: dict[str, Registry]) -> None:
    source, target = registries["none"], registries["htpasswd"]
    repo = f"i{uuid.uuid4().hex[:8]}/img"
    amd = source.push(repo, "amd", architecture="amd64")
    arm = source.push(repo, "arm", architecture="arm64")
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": 1, "platform": p}
                for d, p in ((amd, {"os": "linux", "architecture": "amd64"}),
                             (arm, {"os": "linux", "architecture": "arm64"}))
            ],
        }
    ).encode()  # fmt: skip
    with source._client(repo) as client:
        put = client.put(
            f"/v2/{repo}/manifests/v1",
            content=index,
            headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
        )
        put.raise_for_status()
    env = {"MZBUILD_ASYNC_REGISTRY_USERNAME": USER, "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD}
    async with RegistryClient(credentials=CredentialStore(environ=env)) as client:
        copied = await copy_image(
            RegistryWriter(client),
            parse_reference(f"{source.host}/{repo}:v1"),
            parse_reference(f"{target.host}/{repo}:v1"),
        )
    assert copied.digest == put.headers["docker-content-digest"]
    with target._client(repo) as check:
        head = check.head(
            f"/v2/{repo}/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
    assert head.headers["docker-content-digest"] == copied.digest
    assert target.digest(repo, amd) == amd  # (by digest: the children came first)


async def test_a_missing_source_is_one_error(registries: dict[str, Registry]) -> None:
    registry = registries["none"]
    with pytest.raises(TransferError, match="not there to copy from"):
        await _copy(f"{registry.host}/nothing/here:mzbuild-X", f"{registry.host}/else:mzbuild-X")


async def test_images_that_share_layers_send_each_layer_once(
    registries: dict[str, Registry],
) -> None:
    """Two images copied at once to a new host: a shared layer is streamed once, then
    mounted from the repository it went to (as the engine's own pushes do)."""
    source, target = registries["none"], registries["token"]
    run = uuid.uuid4().hex[:8]
    shared = [os.urandom(1024 * 1024), os.urandom(1024 * 1024 + 1)]
    push_layered(source, f"s{run}/one", "mzbuild-A", blobs=shared)
    push_layered(source, f"s{run}/two", "mzbuild-A", blobs=shared)
    stats = CopyStats()
    async with RegistryClient() as client:
        writer = RegistryWriter(client)
        async with anyio.create_task_group() as tg:
            for name in ("one", "two"):
                tg.start_soon(
                    copy_image,
                    writer,
                    parse_reference(f"{source.host}/s{run}/{name}:mzbuild-A"),
                    parse_reference(f"{target.host}/t{run}/{name}:mzbuild-A"),
                    stats,
                )
    # Two configs (they differ) and the two shared layers streamed; the layers mounted once.
    assert (stats.uploaded, stats.mounted, stats.present) == (4, 2, 0)
    assert stats.bytes < 2 * 1024 * 1024 + 2 + 2 * 1024  # the layers' bytes went once
