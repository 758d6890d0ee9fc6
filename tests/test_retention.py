"""Retention verdicts, byte accounting and safe deletion (retention/), over the
in-memory registry: every kind of tag, the guards against a concurrent push, a
registry that refuses deletion, and the requests a plan sends (counted)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest

from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.names import Reference, parse_reference
from mzbuild_async.registry.writer import OCI_INDEX, RegistryWriter
from mzbuild_async.retention.deletions import apply
from mzbuild_async.retention.policy import Kind, Policy, kind_of, plan
from mzbuild_async.testing import MemoryRegistry, no_wait

pytestmark = pytest.mark.anyio
HOST = "reg.test"
NOW = 1_900_000_000.0
DAY = 86400.0
OURS = "application/vnd.dsse.envelope.v1+json"
FAST = no_wait(1)
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def tag_of(n: int) -> str:
    """The ``n``th fingerprint tag."""
    return "mzbuild-" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[n] * 32


def repo(name: str = "app") -> Reference:
    return parse_reference(f"{HOST}/p/{name}")


def at(ref: Reference, tag: str) -> Reference:
    return replace(ref, tag=tag)


def config_of(created: float | None, extra: str = "") -> bytes:
    """An image config dated ``created``."""
    config = {"architecture": "amd64", "os": "linux", "extra": extra}
    if created is not None:
        config["created"] = datetime.fromtimestamp(created, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(config).encode()


async def image(
    writer: RegistryWriter,
    ref: Reference,
    tag: str,
    *,
    created: float | None,
    layer: bytes,
    config_extra: str = "",
) -> str:
    """An image manifest with one layer, its config dated ``created``."""
    config_body = config_of(created, config_extra)
    config_digest = await writer.put_blob(ref, config_body)
    layer_digest = await writer.put_blob(ref, layer)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config_body),
            },
            "layers": [
                {
                    "mediaType": "application/octet-stream",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return await writer.put_manifest(at(ref, tag), MANIFEST, body)


async def index(
    writer: RegistryWriter,
    ref: Reference,
    tag: str,
    children: dict[str, str],
    annotations: dict[str, str] | None = None,
) -> str:
    """An index over ``children`` (digest -> artifactType)."""
    manifests = [
        {"mediaType": MANIFEST, "digest": d, "size": 1, **({"artifactType": t} if t else {})}
        for d, t in children.items()
    ]
    document: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    }
    if annotations:
        document["annotations"] = annotations
    return await writer.put_manifest(at(ref, tag), OCI_INDEX, json.dumps(document).encode())


async def artifact(writer: RegistryWriter, ref: Reference, subject: str, payload: bytes) -> str:
    """An attestation manifest (by digest only, as attach writes it)."""
    blob = await writer.put_blob(ref, payload)
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "artifactType": OURS,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": blob,
                "size": len(payload),
            },
            "layers": [],
            "subject": {"mediaType": MANIFEST, "digest": subject, "size": 1},
        }
    ).encode()
    from mzbuild_async.registry.writer import digest_of

    return await writer.put_manifest(at(ref, digest_of(body)), MANIFEST, body)


@pytest.fixture
async def world() -> AsyncIterator[tuple[MemoryRegistry, RegistryWriter]]:
    registry = MemoryRegistry()
    client = RegistryClient(transport=registry.transport(), retry=FAST, deadline=10)
    async with client:
        yield registry, RegistryWriter(client)


def policy(*keep: str, younger: float = DAY) -> Policy:
    return Policy(frozenset(keep), younger, NOW, frozenset({OURS}))


def verdicts(result: object) -> dict[str, tuple[bool, str]]:
    return {
        v.tag: (v.delete, v.reason)
        for r in result.repositories  # type: ignore[attr-defined]
        for v in r.verdicts
    }


def test_kind_of_knows_our_tags_by_name() -> None:
    assert kind_of(tag_of(1)) is Kind.IMAGE
    assert kind_of(tag_of(1) + ".failed") is Kind.MARKER
    assert kind_of("sha256-" + "a" * 64) is Kind.REFERRERS
    for foreign in ("latest", "v1.2", "mzbuild-short", tag_of(1).lower(), "sha256-abc"):
        assert kind_of(foreign) is Kind.FOREIGN


async def test_every_kind_of_tag_gets_its_verdict(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    _, writer = world
    ref = repo()
    name = f"{HOST}/p/app"
    old, young = NOW - 10 * DAY, NOW - 60
    await image(writer, ref, tag_of(0), created=old, layer=b"kept")
    gone = await image(writer, ref, tag_of(1), created=old, layer=b"old")
    await image(writer, ref, tag_of(2), created=young, layer=b"young")
    await image(writer, ref, tag_of(3), created=None, layer=b"undated")
    await image(writer, ref, tag_of(4), created=old, layer=b"shared")
    same = await writer.manifest(at(ref, tag_of(4)))
    assert same is not None
    await writer.put_manifest(at(ref, "v1"), MANIFEST, same.body)  # the same manifest
    child = await image(writer, ref, tag_of(5), created=old, layer=b"in-index")
    await index(writer, ref, "release", {child: ""})
    await index(writer, ref, tag_of(6) + ".failed", {}, {"io.mzbuild.failed-at": str(old)})
    await index(writer, ref, tag_of(7) + ".failed", {}, {"io.mzbuild.failed-at": str(young)})
    # Attestations: of a deleted image, of a kept one, of nothing any more, and cosign's.
    kept_digest = (await writer.manifest(at(ref, tag_of(0)))).digest  # type: ignore[union-attr]
    for subject, payload in ((gone, b"a"), (kept_digest, b"b"), ("sha256:" + "e" * 64, b"c")):
        made = await artifact(writer, ref, subject, payload)
        await index(writer, ref, subject.replace(":", "-"), {made: OURS})
    await index(writer, ref, "sha256-" + "f" * 64, {child: "application/vnd.cosign"})

    result = await plan(writer, [ref], policy(f"{name}:{tag_of(0)}"))
    got = verdicts(result)
    assert got[tag_of(0)] == (False, "a kept commit's image")
    assert got[tag_of(1)] == (True, "no kept commit asks for it")
    assert got[tag_of(2)] == (False, "younger than the age guard")
    assert got[tag_of(3)] == (False, "age unknown")
    assert got[tag_of(4)] == (False, "its manifest is also a kept tag's")
    assert got["v1"] == (False, "not ours")
    assert got[tag_of(5)] == (False, "its manifest is also a kept tag's")
    assert got["release"] == (False, "not ours")
    assert got[tag_of(6) + ".failed"] == (True, "an old failure marker")
    assert got[tag_of(7) + ".failed"] == (False, "younger than the age guard")
    assert got[gone.replace(":", "-")] == (True, "its image is deleted")
    assert got[kept_digest.replace(":", "-")] == (False, "its image is kept")
    assert got["sha256-" + "e" * 64] == (True, "its image is gone")
    assert got["sha256-" + "f" * 64] == (False, "not ours")


async def test_bytes_freed_count_each_blob_once_and_never_a_kept_ones(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    _, writer = world
    old = NOW - 10 * DAY
    a, b = repo("a"), repo("b")
    await image(writer, a, tag_of(0), created=old, layer=b"K" * 1000)  # kept
    await image(writer, a, tag_of(1), created=old, layer=b"K" * 1000, config_extra="x")
    await image(writer, a, tag_of(2), created=old, layer=b"D" * 500, config_extra="y")
    await image(writer, b, tag_of(3), created=old, layer=b"D" * 500, config_extra="z")
    result = await plan(writer, [a, b], policy(f"{HOST}/p/a:{tag_of(0)}"))
    deleted = [v for r in result.repositories for v in r.verdicts if v.delete]
    assert {v.tag for v in deleted} == {tag_of(1), tag_of(2), tag_of(3)}
    sizes = 0
    for v in deleted:
        found = await writer.manifest(at(repo(v.repository.rsplit("/", 1)[1]), v.tag))
        assert found is not None
        sizes += found.size
    configs = sum(len(config_of(old, extra)) for extra in "xyz")
    # The layer a kept image shares (K) is not counted; the D layer once across both.
    assert result.freed == sizes + configs + 500
    assert sum(v.freed for v in deleted) == result.freed


async def test_apply_deletes_and_skips_what_changed_since_the_plan(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    registry, writer = world
    ref = repo()
    old = NOW - 10 * DAY
    first = await image(writer, ref, tag_of(1), created=old, layer=b"1")
    second = await image(writer, ref, tag_of(2), created=old, layer=b"2")
    await image(writer, ref, tag_of(3), created=old, layer=b"3")
    made = await artifact(writer, ref, first, b"att")
    await index(writer, ref, first.replace(":", "-"), {made: OURS})
    result = await plan(writer, [ref], policy())
    assert len(result.deletions) == 4
    # Since the plan: a new tag names the second image (an ensure that found the same
    # content), and the third tag was pushed again with other content.
    body = (await writer.manifest(at(ref, tag_of(2)))).body  # type: ignore[union-attr]
    await writer.put_manifest(at(ref, tag_of(9)), MANIFEST, body)
    await image(writer, ref, tag_of(3), created=NOW, layer=b"3 again")
    done = {d.verdict.tag: d.outcome for d in await apply(writer, result)}
    assert done[tag_of(1)] == "deleted"
    assert done[first.replace(":", "-")] == "deleted"
    assert done[tag_of(2)] == "skipped"
    assert done[tag_of(3)] == "skipped"
    left = set(registry.tags(HOST, "p/app"))
    assert left == {tag_of(2), tag_of(3), tag_of(9)}
    assert made not in registry.manifests[(HOST, "p/app")]  # the attestation went too
    assert second in registry.manifests[(HOST, "p/app")]


async def test_a_registry_refusing_delete_is_one_line_and_asked_once(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    registry, writer = world
    ref = repo()
    for n in range(3):
        await image(writer, ref, tag_of(n), created=NOW - 10 * DAY, layer=bytes([n]))
    result = await plan(writer, [ref], policy())

    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            registry.requests["refused"] += 1
            return httpx.Response(405, json={"errors": [{"code": "UNSUPPORTED"}]})
        return registry.handle(request)

    refusing = RegistryClient(transport=httpx.MockTransport(refuse), retry=FAST, deadline=10)
    async with refusing:
        done = await apply(RegistryWriter(refusing), result)
    assert {d.outcome for d in done} == {"failed"}
    assert {d.detail for d in done} == {
        f"{HOST} refuses to delete manifests (405); enable deletion there, or use the"
        " registry's own clean-up"
    }
    assert registry.requests["refused"] == 1
    assert len(registry.tags(HOST, "p/app")) == 3


async def test_a_plan_sends_one_list_one_get_per_tag_and_one_config_per_candidate(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    registry, writer = world
    ref = repo()
    name = f"{HOST}/p/app"
    for n in range(6):
        await image(writer, ref, tag_of(n), created=NOW - 10 * DAY, layer=bytes([n]))
    registry.requests.clear()
    await plan(writer, [ref], policy(*(f"{name}:{tag_of(n)}" for n in range(4))))
    # The list, 6 manifests, 2 configs (the candidates'), one question whether the
    # referrers API is there: nothing else.
    assert registry.requests["GET"] == 1 + 6 + 2 + 1
    assert set(registry.requests) == {"GET"}


async def test_where_the_referrers_api_is_our_attestations_go_with_their_image(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    registry, writer = world
    registry.referrers_api = True
    ref = repo()
    name = f"{HOST}/p/app"
    doomed = await image(writer, ref, tag_of(1), created=NOW - 10 * DAY, layer=b"1")
    kept = await image(writer, ref, tag_of(2), created=NOW - 10 * DAY, layer=b"2")
    ours = await artifact(writer, ref, doomed, b"provenance")
    theirs = await artifact(writer, ref, kept, b"kept provenance")
    result = await plan(writer, [ref], policy(f"{name}:{tag_of(2)}"))
    (deletion,) = result.deletions
    assert deletion.tag == tag_of(1)
    assert deletion.artifacts == (ours,)
    assert deletion.freed > len(b"provenance")
    await apply(writer, result)
    stored = registry.manifests[(HOST, "p/app")]
    assert ours not in stored
    assert doomed not in stored
    assert theirs in stored
    assert kept in stored


async def test_a_listed_tag_that_cannot_be_read_makes_its_repository_delete_nothing(
    world: tuple[MemoryRegistry, RegistryWriter],
) -> None:
    """A foreign tag listed but answering 404 protects what it names, which is then
    unknown: that repository deletes nothing; a repository beside it goes on."""
    registry, writer = world
    ref, other = repo(), repo("other")
    old = NOW - 10 * DAY
    digest = await image(writer, ref, tag_of(1), created=old, layer=b"1")
    body = (await writer.manifest(at(ref, tag_of(1)))).body  # type: ignore[union-attr]
    await writer.put_manifest(at(ref, "release"), MANIFEST, body)
    await image(writer, other, tag_of(2), created=old, layer=b"2")

    def hide(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/p/app/manifests/release"):
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        return registry.handle(request)

    hiding = RegistryClient(transport=httpx.MockTransport(hide), retry=FAST, deadline=10)
    async with hiding:
        result = await plan(RegistryWriter(hiding), [ref, other], policy())
    by_name = {r.ref.repository: r for r in result.repositories}
    assert by_name["p/app"].error == "tag release is listed but its manifest is not found (404)"
    assert by_name["p/app"].verdicts == []
    assert [v.tag for v in by_name["p/other"].verdicts if v.delete] == [tag_of(2)]
    await apply(writer, result)
    assert digest in registry.manifests[(HOST, "p/app")]
    assert registry.tags(HOST, "p/other") == []


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        pytest.param("503", "could not ask the registry: reg.test: server error 503", id="a 503"),
        pytest.param("nul", "it lists 'bad\\x00tag', which is no valid tag name", id="a NUL"),
        pytest.param("newline", "it lists 'bad\\ntag', which is no valid tag name", id="a newline"),
        pytest.param("config", "reg.test: server error 500", id="a config that cannot be read"),
    ],
)
async def test_a_failed_read_is_one_line_for_its_repository_and_the_others_go_on(
    world: tuple[MemoryRegistry, RegistryWriter], fault: str, error: str
) -> None:
    """A 503 on a manifest, a listed tag no registry could hold (NUL, newline), a
    config that cannot be read: one error for that repository, never an exception."""
    registry, writer = world
    ref, other = repo(), repo("other")
    old = NOW - 10 * DAY
    await image(writer, ref, tag_of(1), created=old, layer=b"1")
    await image(writer, other, tag_of(2), created=old, layer=b"2")

    def broken(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if "/p/app/" in path:
            if fault == "503" and "/manifests/" in path:
                return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]})
            if fault == "config" and "/blobs/" in path:
                return httpx.Response(500)
            if fault in ("nul", "newline") and path.endswith("/tags/list"):
                bad = "bad\x00tag" if fault == "nul" else "bad\ntag"
                return httpx.Response(200, json={"name": "p/app", "tags": [tag_of(1), bad]})
        return registry.handle(request)

    client = RegistryClient(transport=httpx.MockTransport(broken), retry=FAST, deadline=10)
    async with client:
        result = await plan(RegistryWriter(client), [ref, other], policy())
    by_name = {r.ref.repository: r for r in result.repositories}
    assert error in by_name["p/app"].error
    assert "\n" not in by_name["p/app"].error
    assert by_name["p/app"].verdicts == []
    assert [v.tag for v in by_name["p/other"].verdicts if v.delete] == [tag_of(2)]


@pytest.mark.parametrize("how", ["moved", "index", "unreadable"])
async def test_the_guard_rereads_the_protecting_tags(
    world: tuple[MemoryRegistry, RegistryWriter], how: str
) -> None:
    """Right before deleting, a protecting tag moved onto a doomed manifest (or onto
    an index over one) protects it; one that cannot be read stops the repository."""
    registry, writer = world
    ref = repo()
    old = NOW - 10 * DAY
    doomed = await image(writer, ref, tag_of(1), created=old, layer=b"1")
    kept = await image(writer, ref, tag_of(2), created=NOW, layer=b"2")
    body = (await writer.manifest(at(ref, tag_of(2)))).body  # type: ignore[union-attr]
    await writer.put_manifest(at(ref, "release"), MANIFEST, body)
    result = await plan(writer, [ref], policy())
    assert [v.tag for v in result.deletions] == [tag_of(1)]
    if how == "moved":  # `release` now names the doomed image
        doomed_body = (await writer.manifest(at(ref, tag_of(1)))).body  # type: ignore[union-attr]
        await writer.put_manifest(at(ref, "release"), MANIFEST, doomed_body)
    elif how == "index":
        await index(writer, ref, "release", {kept: "", doomed: ""})
    done: list[object]
    if how == "unreadable":

        def hide(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/manifests/release"):
                return httpx.Response(404)
            return registry.handle(request)

        hiding = RegistryClient(transport=httpx.MockTransport(hide), retry=FAST, deadline=10)
        async with hiding:
            done = list(await apply(RegistryWriter(hiding), result))
    else:
        done = list(await apply(writer, result))
    [deletion] = done
    assert deletion.outcome == "skipped"  # type: ignore[attr-defined]
    assert doomed in registry.manifests[(HOST, "p/app")]


def test_applied_says_what_the_deletions_free_not_what_the_plan_would() -> None:
    """A registry that refused every delete frees nothing, and the summary says so; one
    that deleted some frees what those freed."""
    from mzbuild_async.report.gc import gc_text
    from mzbuild_async.retention.deletions import Deletion
    from mzbuild_async.retention.policy import Plan, RepositoryPlan, Verdict
    from mzbuild_async.workflow.gc import GcResult, KeepSet

    verdicts = [
        Verdict(
            "reg.test/a",
            f"mzbuild-{n}",
            Kind.IMAGE,
            f"sha256:{n}",
            True,
            "not kept",
            freed=512 * 1024,
        )
        for n in ("x", "y")
    ]
    gc_plan = Plan([RepositoryPlan(parse_reference("reg.test/a"), verdicts)], freed=1024 * 1024)
    keep = KeepSet({"c1": ["main"]})
    refused = [Deletion(v, "failed", "405 method not allowed") for v in verdicts]
    text = gc_text(GcResult(keep, gc_plan, refused))
    assert "applied: 2 failed; nothing freed" in text
    assert "to free" not in text
    half = [Deletion(verdicts[0], "deleted"), Deletion(verdicts[1], "failed", "405")]
    assert "applied: 1 deleted, 1 failed; about 512.0 KiB to free" in gc_text(
        GcResult(keep, gc_plan, half)
    )
    assert "freeing about 1.0 MiB" in gc_text(GcResult(keep, gc_plan))  # (the dry run's plan)
