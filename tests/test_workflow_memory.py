"""The workflow, the worker and the pool over the in-memory engine and registry.

No Docker engine, registry or cargo: :class:`MemoryEngine` builds from the
real streamed context (its Dockerfile's ``FROM``s must be there) and pushes to
:class:`MemoryRegistry` through the real registry client, so these tests walk
the same code as a real run, from lookups to pushes, in milliseconds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import structlog

from mzbuild_async.builds.decisions import Workflow
from mzbuild_async.engine.answers import give_up_retrying
from mzbuild_async.engine.endpoints import Endpoint
from mzbuild_async.engine.protocol import LineSink, drop
from mzbuild_async.errors import TransferError
from mzbuild_async.model.options import Arch, BuildOptions
from mzbuild_async.model.publication import Destination
from mzbuild_async.registry.auth import Credentials
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.source.repository import Repository
from mzbuild_async.support.events import Event, EventStatus, Phase
from mzbuild_async.testing import MemoryEngine, MemoryRegistry, no_wait
from mzbuild_async.workflow.lost import keep_pushed
from mzbuild_async.workflow.options import RunOptions
from mzbuild_async.workflow.plan import plan_workflow
from mzbuild_async.workflow.results import RunResult
from mzbuild_async.workflow.run import run_workflow
from tests.conftest import MakeRepo
from tests.support.chain import CHAIN

pytestmark = pytest.mark.anyio

REGISTRY = "reg.test/unit"
FAST = no_wait(2)
TIERS = ("memory", "disk", "registry", "manifest")

FILES = {
    **CHAIN,
    "hidden/mzbuild.yml": "name: hidden\npublish: false\n",
    "hidden/Dockerfile": "MZFROM base\n",
    "tool/mzbuild.yml": "name: tool\n",
    "tool/Dockerfile": "MZFROM hidden\n",
}


@dataclass
class World:
    """A repository, an in-memory registry, a client wired to it and an engine."""

    repo: Repository
    registry: MemoryRegistry
    client: RegistryClient
    engine: MemoryEngine
    cache: Path

    async def run(
        self, workflow: Workflow, *targets: str, engine: MemoryEngine | None = None, **options: Any
    ) -> RunResult:
        return await run_workflow(
            self.repo,
            workflow,
            list(targets) or list(self.repo.images),
            cache_dir=self.cache,
            docker=None if options.get("engines") else engine or self.engine,
            client=self.client,
            options=RunOptions(tiers=TIERS, jobs=2, **options),
        )

    def engine_like(self, name: str, **fields: Any) -> MemoryEngine:
        """Another engine on the same registry."""
        return MemoryEngine(name=name, client=self.client, **fields)

    def spec(self, name: str, result: RunResult) -> str:
        return result.images[name].spec


@pytest.fixture
def world(make_repo: MakeRepo, tmp_path: Path) -> Iterator[World]:
    root = make_repo(FILES)
    repo = anyio.run(
        lambda: Repository.open(root, BuildOptions(arch=Arch.X86_64, image_registry=REGISTRY))
    )
    registry = MemoryRegistry()
    client = RegistryClient(transport=registry.transport(), retry=FAST, deadline=10)
    yield World(repo, registry, client, MemoryEngine(client=client), tmp_path / "cache")
    anyio.run(client.aclose)


def actions(result: RunResult) -> dict[str, str]:
    return {name: image.action for name, image in result.images.items()}


async def test_ensure_builds_and_publishes_then_finds_everything(world: World) -> None:
    first = await world.run(Workflow.ENSURE)
    assert first.ok, first.to_json()
    assert set(actions(first).values()) == {"built"}
    published = {n for n, r in first.images.items() if r.pushed}
    assert published == {"base", "lib", "app", "tool"}  # hidden is publish: false
    for name in published:
        assert world.registry.manifest(world.spec(name, first)) is not None
    assert world.registry.manifest(world.spec("hidden", first)) is None
    # The image an engine built carries the fingerprint label, and its context came whole.
    app = world.engine.images[world.spec("app", first)]
    assert app.labels["io.mzbuild.fingerprint"] == world.spec("app", first).rsplit("-", 1)[1]
    assert app.files["lib.txt"] == b"lib\n"

    builds = sum(1 for c in world.engine.calls if c[0] == "build")
    assert builds == 5
    again = await world.run(Workflow.ENSURE)
    assert again.ok
    assert set(actions(again).values()) == {"none"}
    assert sum(1 for c in world.engine.calls if c[0] == "build") == builds  # none more


async def test_acquire_pulls_what_is_published_and_nothing_below_it(world: World) -> None:
    await world.run(Workflow.ENSURE, "app")
    fresh = world.engine_like("fresh")
    result = await world.run(Workflow.ACQUIRE, "app", engine=fresh)
    assert result.ok, result.to_json()
    assert actions(result) == {"app": "pulled"}
    assert set(fresh.images) == {world.spec("app", result)}


async def test_a_failed_build_skips_what_needs_it_and_the_rest_goes_on(world: World) -> None:
    specs = await world.repo.specs(["lib"])
    world.engine.failing[specs["lib"]] = "RUN exit 3: returned a non-zero code: 3"
    result = await world.run(Workflow.ENSURE)
    assert not result.ok
    assert actions(result) | {"hidden": "-", "tool": "-"} == {
        "base": "built",
        "lib": "failed",
        "app": "skipped",
        "hidden": "-",
        "tool": "-",
    }
    assert "returned a non-zero code" in result.images["lib"].error
    assert result.images["app"].error == "dependency lib failed"
    assert actions(result)["tool"] == "built"


VANISHED = (
    "failed to get digest sha256:4f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0:"
    " open /var/lib/docker/image/overlay2/imagedb/content/sha256/4f1e: no such file or directory"
)


async def test_a_cache_image_removed_under_a_build_builds_it_again_once(world: World) -> None:
    """Another job's ``docker rmi`` on a shared engine can take the image a classic
    build is using as cache: that build is tried once more, any other failure never."""
    specs = await world.repo.specs(["lib", "app"])
    world.engine.failing_once[specs["lib"]] = VANISHED
    result = await world.run(Workflow.ENSURE, "app")
    assert result.ok, result.to_json()
    assert actions(result) == {"base": "built", "lib": "built", "app": "built"}
    assert sum(1 for c in world.engine.calls if c == ("build", specs["lib"])) == 2

    other = world.engine_like("other")
    other.failing[specs["lib"]] = VANISHED  # vanishes every time: twice, then failed
    again = await world.run(Workflow.BUILD, "lib", engine=other, force=True)
    assert actions(again)["lib"] == "failed"
    assert sum(1 for c in other.calls if c == ("build", specs["lib"])) == 2

    broken = world.engine_like("broken")
    broken.failing[specs["lib"]] = "RUN exit 3: returned a non-zero code: 3"
    failed = await world.run(Workflow.BUILD, "lib", engine=broken, force=True)
    assert actions(failed)["lib"] == "failed"
    assert sum(1 for c in broken.calls if c == ("build", specs["lib"])) == 1


async def test_fail_fast_stops_everything_at_the_first_failure(world: World) -> None:
    specs = await world.repo.specs(["base"])
    world.engine.failing[specs["base"]] = "broken"
    result = await world.run(Workflow.ENSURE, fail_fast=True)
    assert not result.ok
    assert result.images["base"].action == "failed"
    assert all(r.action in ("failed", "skipped") for r in result.images.values())


async def test_build_force_rebuilds_what_the_engine_has(world: World) -> None:
    await world.run(Workflow.ENSURE, "base")
    forced = await world.run(Workflow.BUILD, "base", force=True)
    assert actions(forced) == {"base": "built"}
    assert sum(1 for c in world.engine.calls if c == ("build", world.spec("base", forced))) == 2


async def test_a_registry_that_cannot_tell_gets_nothing_pushed(world: World) -> None:
    """Unavailable (503 to everything, past the retries): ensure stops before any build."""
    from mzbuild_async.errors import UsageError

    world.registry.unavailable = True
    with pytest.raises(UsageError, match="could not be reached"):
        await world.run(Workflow.ENSURE, "base")
    world.registry.unavailable = False
    assert not [c for c in world.engine.calls if c[0] in ("build", "push")]
    assert not any(world.registry.manifests.values())


async def test_a_deleted_tag_is_found_out_and_built_again(world: World) -> None:
    first = await world.run(Workflow.ENSURE, "app")
    for name in ("app", "lib", "base"):
        spec = world.spec(name, first)
        host, _, rest = spec.partition("/")
        repository, _, tag = rest.rpartition(":")
        del world.registry.manifests[(host, repository)][tag]
    fresh = world.engine_like("fresh")
    # acquire trusts the disk cache: the pull meets "manifest unknown", the run decides again.
    result = await world.run(Workflow.ACQUIRE, "app", engine=fresh)
    assert result.ok, result.to_json()
    assert actions(result) == {"base": "built", "lib": "built", "app": "built"}


async def test_each_image_has_its_manifest_descriptor(world: World) -> None:
    """Pushed or found, an image's digest, size and media type are the registry's, and
    --metadata-file gives them as buildx's descriptor."""
    from mzbuild_async.report.metadata import metadata_document

    pushed = await world.run(Workflow.ENSURE, "lib")
    found = await world.run(Workflow.ENSURE, "lib", engine=world.engine_like("descr"))
    for result in (pushed, found):
        for name, image in result.images.items():
            host, _, rest = image.spec.partition("/")
            repository, _, tag = rest.rpartition(":")
            manifest = world.registry.manifests[(host, repository)][tag]
            stored = (manifest.digest, len(manifest.body), manifest.media_type)
            assert (image.digest, image.size, image.media_type) == stored, name
            descriptor = metadata_document(result)[name]["containerimage.descriptor"]
            assert descriptor == {"mediaType": stored[2], "digest": stored[0], "size": stored[1]}


async def test_plan_says_what_a_run_would_do(world: World) -> None:
    await world.run(Workflow.ENSURE, "lib")
    plan = await plan_workflow(
        world.repo,
        Workflow.ENSURE,
        ["app"],
        cache_dir=world.cache,
        docker=world.engine,
        client=world.client,
        tiers=TIERS,
    )
    document = plan.to_json()["images"]
    assert document["app"]["action"] == "build+push"
    assert document["lib"]["action"] == "none"
    assert document["lib"]["published"] == "present"
    json.dumps(document)


async def test_plan_ensure_asks_the_registry_again_as_ensure_would(world: World) -> None:
    """A tag deleted since the disk cache saw it: plan --workflow ensure confirms the
    cache's "present" with the registry (as ensure does) and says build; plan of an
    acquire trusts the cache, as acquire does (its pull would find it out)."""
    first = await world.run(Workflow.ENSURE, "base")
    _drop(world, world.spec("base", first))
    fresh = world.engine_like("plan-fresh")

    async def planned(workflow: Workflow) -> str:
        plan = await plan_workflow(
            world.repo, workflow, ["base"], cache_dir=world.cache, docker=fresh,
            client=world.client, tiers=TIERS,
        )  # fmt: skip
        return str(plan.to_json()["images"]["base"]["action"])

    assert await planned(Workflow.ACQUIRE) == "pull"
    assert await planned(Workflow.ENSURE) == "build+push"


async def test_ensure_with_its_registry_unreachable_builds_nothing(world: World) -> None:
    """A registry refusing every connection: ensure says so in one line before any build
    (it could push nothing); acquire, which needs no registry to build, goes on."""
    import httpx

    from mzbuild_async.errors import UsageError

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    engine = world.engine_like("unreached")
    async with RegistryClient(transport=httpx.MockTransport(refuse), retry=FAST) as client:
        with pytest.raises(UsageError, match=r"ensure: the registry reg\.test could not be"):
            await run_workflow(
                world.repo, Workflow.ENSURE, ["base"], cache_dir=world.cache / "unreached",
                docker=engine, client=client, options=RunOptions(tiers=TIERS, jobs=1),
            )  # fmt: skip
        assert not [c for c in engine.calls if c[0] in ("build", "push")]
        acquired = await run_workflow(
            world.repo, Workflow.ACQUIRE, ["base"], cache_dir=world.cache / "unreached",
            docker=engine, client=client, options=RunOptions(tiers=TIERS, jobs=1),
        )  # fmt: skip
    assert acquired.images["base"].action == "built"


# -- mirrors and digests ----------------------------------------------------------------

MIRROR = Destination("mirror.test/m", "")


def _drop(world: World, spec: str) -> None:
    host, _, rest = spec.partition("/")
    repository, _, tag = rest.rpartition(":")
    del world.registry.manifests[(host, repository)][tag]


def _at_mirror(spec: str) -> str:
    return spec.replace(REGISTRY, MIRROR.registry, 1)


async def test_ensure_copies_to_mirrors_and_back_never_rebuilding(world: World) -> None:
    first = await world.run(Workflow.ENSURE, "lib", mirrors=(MIRROR,))
    assert first.ok, first.to_json()
    for name in ("base", "lib"):
        image = first.images[name]
        assert image.registries == {REGISTRY: "pushed", MIRROR.registry: "copied"}
        assert world.registry.manifest(_at_mirror(image.spec)) == world.registry.manifest(
            image.spec
        )
        assert image.digest.startswith("sha256:")
        assert image.size > 0
    builds = sum(1 for c in world.engine.calls if c[0] == "build")

    _drop(world, _at_mirror(first.images["lib"].spec))  # the mirror lost it
    _drop(world, first.images["base"].spec)  # the primary lost this one
    again = await world.run(Workflow.ENSURE, "base", "lib", mirrors=(MIRROR,))
    assert again.ok, again.to_json()
    assert actions(again) == {"base": "none", "lib": "none"}
    assert again.images["lib"].registries == {REGISTRY: "present", MIRROR.registry: "copied"}
    assert again.images["base"].registries == {REGISTRY: "copied", MIRROR.registry: "present"}
    assert again.images["base"].digest == first.images["base"].digest
    assert sum(1 for c in world.engine.calls if c[0] == "build") == builds  # nothing rebuilt
    assert world.registry.manifest(first.images["base"].spec) is not None


async def test_a_mirror_that_cannot_tell_fails_the_image(world: World) -> None:
    down = Destination("down.test", "")
    original = world.registry.handle

    def handle(request: Any) -> Any:
        if request.url.host == "down.test":
            return httpx.Response(503)
        return original(request)

    world.registry.handle = handle  # type: ignore[method-assign]
    world.client.transport = httpx.MockTransport(handle)
    result = await world.run(Workflow.ENSURE, "base", mirrors=(down,))
    image = result.images["base"]
    assert image.action == "failed"
    assert image.registries == {REGISTRY: "pushed", "down.test": "unknown"}
    assert "down.test could not tell whether it has" in image.error
    assert world.registry.manifest("down.test/base:" + image.spec.rsplit(":", 1)[1]) is None


async def test_a_plans_digests_come_from_the_heads_it_sent(world: World) -> None:
    ran = await world.run(Workflow.ENSURE, "app")
    before = dict(world.registry.requests)
    plan = await plan_workflow(
        world.repo, Workflow.ENSURE, ["base", "lib", "app"], cache_dir=world.cache,
        docker=world.engine, client=world.client, tiers=("registry",),
    )  # fmt: skip
    sent = {m: n - before.get(m, 0) for m, n in world.registry.requests.items()}
    assert {m: n for m, n in sent.items() if n} == {"HEAD": 3}  # one HEAD each, nothing more
    for name, found in plan.found.items():
        assert found.digest == ran.images[name].digest, name
        assert plan.to_json()["images"][name]["digest"] == found.digest


# -- a pool of in-memory engines ---------------------------------------------------------


def pool(world: World, *names: str, **fields: Any) -> tuple[Endpoint, ...]:
    """Engines registered under ``names`` (memory://NAME), on the world's registry."""
    for name in names:
        MemoryEngine.register(world.engine_like(name, **fields))
    return tuple(Endpoint(name, f"memory://{name}", slots=1) for name in names)


async def test_a_pool_spreads_builds_and_moves_parents_through_the_registry(
    world: World,
) -> None:
    engines = pool(world, "p1", "p2", "p3", build_seconds=0.01)
    result = await world.run(Workflow.ENSURE, engines=engines)
    assert result.ok, result.to_json()
    assert set(actions(result).values()) == {"built"}
    assert len({r.engine for r in result.images.values()}) > 1
    # hidden (publish: false) and tool, which needs it, stayed on one engine.
    assert result.images["hidden"].engine == result.images["tool"].engine
    built = sum(
        1 for n in ("p1", "p2", "p3") for c in MemoryEngine.named(n).calls if c[0] == "build"
    )
    assert built == len(FILES) // 3 + 1  # every image once


async def test_an_engine_that_vanishes_mid_build_loses_its_work_to_the_others(
    world: World,
) -> None:
    engines = pool(world, "v1", "v2")
    victim = MemoryEngine.named("v2")
    victim.stall()

    async def vanish_once_it_builds() -> None:
        while not any(c[0] == "build" for c in victim.calls):
            await anyio.sleep(0.005)
        victim.vanish("killed")

    async with anyio.create_task_group() as tg:
        tg.start_soon(vanish_once_it_builds)
        result = await world.run(Workflow.ENSURE, engines=engines)
    assert result.ok, result.to_json()
    assert {r.engine for r in result.images.values() if r.action == "built"} == {"v1"}
    assert result.engines["v2"].lost


async def test_an_engine_cut_from_the_registry_gives_its_work_to_the_others(
    world: World,
) -> None:
    """An engine that answers us but cannot reach the registry (its pushes and pulls
    fail as dockerd says "dial tcp ...: network is unreachable"): what it built is built
    again on the others and pushed from there, it takes no more work for that
    registry, and the run succeeds, saying why, once."""
    engines = pool(world, "c1", "c2")
    MemoryEngine.named("c2").cut_from.add("reg.test")  # (c1 is home: it keeps hidden)
    with structlog.testing.capture_logs() as logged:
        result = await world.run(Workflow.ENSURE, engines=engines)
    assert result.ok, result.to_json()
    published = {n for n, r in result.images.items() if r.pushed}
    assert published == {"base", "lib", "app", "tool"}
    assert {r.engine for r in result.images.values() if r.pushed} == {"c1"}
    said = [e["event"] for e in logged if "cannot reach the registry" in e["event"]]
    assert len(said) == 1
    assert said[0].startswith("engine c2 cannot reach the registry reg.test")
    # c2 reached for the registry once (the first work it took), never after.
    assert sum(1 for c in MemoryEngine.named("c2").calls if c[0] in ("push", "pull")) == 1


async def test_no_engine_reaching_the_registry_ends_the_run_in_a_bounded_time(
    world: World,
) -> None:
    """Every engine cut from the registry: each image is tried on each engine at most
    once and fails with one line naming the registry; nothing is endless."""
    engines = pool(world, "n1", "n2")
    for name in ("n1", "n2"):
        MemoryEngine.named(name).cut_from.add("reg.test")
    with anyio.fail_after(30):
        result = await world.run(Workflow.ENSURE, engines=engines)
    assert not result.ok
    errors = {r.error for r in result.images.values() if r.action == "failed"}
    assert any("no engine of the pool reaches reg.test" in e for e in errors), errors
    pushes = [
        (n, c[1]) for n in ("n1", "n2") for c in MemoryEngine.named(n).calls if c[0] == "push"
    ]
    assert pushes
    assert len(set(pushes)) == len(pushes)  # (no image tried twice on one engine)


async def test_a_flapping_link_ends_the_run_within_its_bound(world: World) -> None:
    """Every engine's link to the registry goes down and up every few milliseconds
    (each pull or push may meet it down): the run ends within its bound, each image
    built, pushed and verified, or failed with one line; no image is tried on one
    engine more than the pool's attempts allow."""
    engines = pool(world, "f1", "f2")
    flapping = [MemoryEngine.named(n) for n in ("f1", "f2")]

    async def flap() -> None:
        while True:
            for engine in flapping:
                engine.cut_from ^= {"reg.test"}
            await anyio.sleep(0.002)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(flap)
            result = await world.run(Workflow.ENSURE, engines=engines)
            tg.cancel_scope.cancel()
    for name, image in result.images.items():
        assert image.action in ("built", "failed", "skipped"), (name, image)
        if image.action == "built" and image.pushed:
            assert world.registry.manifest(image.spec), name
        if image.action == "failed":
            assert "reach" in image.error, image.error  # (the link, not something else)
            assert "\n" not in image.error, image.error
    builds = [
        (n, c[1]) for n in ("f1", "f2") for c in MemoryEngine.named(n).calls if c[0] == "build"
    ]
    assert max(Counter(builds).values()) <= 3  # (DEFAULT_ATTEMPTS engines, never more)


async def test_a_lost_engines_late_push_does_not_change_what_the_run_pushed(
    world: World,
) -> None:
    """An engine lost mid-run may still push (we no longer reach it; it reaches the
    registry): here, right after each of the run's pushes, a push of another build
    moves the tag. Each such tag is put back to the digest this run pushed (its
    manifest is in the registry under that digest), one warning each, and that is the
    digest the run reports."""
    engines = pool(world, "l1", "l2")
    victim = MemoryEngine.named("l2")
    victim.stall()
    specs = {name: await world.repo.spec(name) for name in world.repo.images}
    late: dict[str, str] = {}

    async def vanish_once_it_builds() -> None:
        while not any(c[0] == "build" for c in victim.calls):
            await anyio.sleep(0.005)
        victim.vanish("cut from us")

    def late_push(event: Event) -> None:
        if event.phase is Phase.PUSH and event.status is EventStatus.DONE and event.image:
            body = json.dumps({"schemaVersion": 2, "late": event.image}).encode()
            late[event.image] = _put_manifest(world.registry, specs[event.image], body)

    async with anyio.create_task_group() as tg:
        tg.start_soon(vanish_once_it_builds)
        with structlog.testing.capture_logs() as logged:
            result = await run_workflow(
                world.repo, Workflow.ENSURE, list(world.repo.images), cache_dir=world.cache,
                client=world.client, listener=late_push,
                options=RunOptions(tiers=TIERS, jobs=2, engines=engines),
            )  # fmt: skip
    assert result.ok, result.to_json()
    assert result.engines["l2"].lost
    pushed = {n: r for n, r in result.images.items() if r.pushed}
    assert pushed
    assert set(late) == set(pushed)
    for name, image in pushed.items():
        now = world.registry.manifests[_repository(image.spec)][image.spec.rsplit(":", 1)[1]]
        assert now.digest == image.digest != late[name], name
    said = [e["event"] for e in logged if "put back" in e["event"]]
    assert len(said) == len(pushed), said
    assert all("an engine lost during the run: l2" in line for line in said), said


class CutMidPush(MemoryEngine):
    """An engine cut from us the moment it starts a push: the push fails for us, but
    the engine still reaches the registry and its push lands later, when the test
    says (:attr:`landing`: spec to the manifest it will put)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.landing: dict[str, bytes] = {}

    async def push(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = drop
    ) -> str:
        if not self.landing:
            self.landing[spec] = json.dumps({"schemaVersion": 2, "late": spec}).encode()
            self.vanish("cut from us")
        return await super().push(spec, credentials, on_line)


async def test_a_push_in_flight_on_a_lost_engine_is_watched_until_it_lands(
    world: World,
) -> None:
    """c2 is lost while it pushes (cut from us; it still reaches the registry): the
    image is built and pushed again on c1, and once the run is done its tag is watched
    (one warning says so). c2's push lands then, after the run's own: the tag is put
    back to the run's digest, and the watch ends (long before its 60 s bound)."""
    victim = CutMidPush(name="c2", client=world.client)
    MemoryEngine.register(victim)
    engines = (*pool(world, "c1"), Endpoint("c2", "memory://c2", slots=1))
    late: list[str] = []

    async def land_once_watched(logged: list[MutableMapping[str, Any]]) -> None:
        while not any("watched for up to" in e["event"] for e in logged):
            await anyio.sleep(0.005)
        ((spec, body),) = victim.landing.items()
        late.append(_put_manifest(world.registry, spec, body))

    with structlog.testing.capture_logs() as logged, anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(land_once_watched, logged)
            result = await world.run(Workflow.ENSURE, engines=engines)
    assert result.ok, result.to_json()
    assert result.engines["c2"].lost
    ((spec, _),) = victim.landing.items()
    (name,) = [n for n, r in result.images.items() if r.spec == spec]
    image = result.images[name]
    assert image.pushed
    assert image.engine == "c1"
    now = world.registry.manifests[_repository(spec)][spec.rsplit(":", 1)[1]]
    assert now.digest == image.digest != late[0]
    watching = [e["event"] for e in logged if "watched for up to" in e["event"]]
    assert watching == [
        f"engine c2 was lost while pushing {name}; their tags are watched for up to 60 s in"
        " case those pushes still land (an engine cut from us may still reach the registry)"
    ]
    put_back = [e["event"] for e in logged if "put back" in e["event"]]
    assert len(put_back) == 1
    assert put_back[0].startswith(f"{spec}: the tag showed {late[0]}")


async def test_a_watched_tag_that_never_moves_is_watched_until_the_bound(world: World) -> None:
    """keep_pushed looks at a watched tag again and again until ``watch`` runs out, at
    one that is not watched once; neither moved, so nothing is put back."""
    first = await world.run(Workflow.ENSURE, "lib")
    watched, once = (first.images[n] for n in ("base", "lib"))
    assert watched.pushed
    assert once.pushed
    heads = world.registry.requests["HEAD"]
    with structlog.testing.capture_logs() as logged:
        await keep_pushed(
            world.client, dict(first.images), ["gone"], {"base": "gone"}, watch=0.3, poll=0.05
        )
    looks = world.registry.requests["HEAD"] - heads
    assert looks >= 4  # (one for lib, and base's first look then at least two more)
    assert not [e for e in logged if "put back" in e["event"]]
    with structlog.testing.capture_logs() as logged:
        await keep_pushed(world.client, dict(first.images), [], {"base": "gone"}, watch=30)
    assert world.registry.requests["HEAD"] - heads == looks  # (no engine lost: no look)
    assert not logged


class Retrying(MemoryEngine):
    """An engine whose every push first meets dockerd's countdowns to a layer's retries
    (its link to the registry keeps failing, then the push goes through)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.tried: list[str] = []

    async def push(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = drop
    ) -> str:
        self.tried.append(spec)
        for seconds in (5, 4, 3, 2, 1, 10):
            on_line(f"0123456789ab: Retrying in {seconds} second{'s' * (seconds > 1)}")
        return await super().push(spec, credentials, on_line)


async def test_a_pool_engine_whose_push_dockerd_retries_twice_gives_it_to_another(
    world: World,
) -> None:
    """In a pool, a push whose layer dockerd counts down to a second retry (10 s: the
    first retry failed too) is given up: the engine's link to the registry keeps
    failing, so its work moves, with the one "cannot reach" warning. With one engine
    the sink is the plain one: dockerd's retries are waited out."""
    flaky = Retrying(name="r2", client=world.client)
    MemoryEngine.register(flaky)
    engines = (*pool(world, "r1"), Endpoint("r2", "memory://r2", slots=1))
    with structlog.testing.capture_logs() as logged:
        result = await world.run(Workflow.ENSURE, engines=engines)
    assert result.ok, result.to_json()
    pushed = {n: r.engine for n, r in result.images.items() if r.pushed}
    assert pushed
    assert set(pushed.values()) == {"r1"}
    assert flaky.tried  # (it tried, and gave up)
    cut = [e["event"] for e in logged if "cannot reach the registry" in e["event"]]
    assert len(cut) == 1
    assert "keeps failing" in cut[0]
    assert "Retrying in 10 seconds" in cut[0]

    lines: list[str] = []
    alone = give_up_retrying(lines.append, "push of x", pooled=False)
    assert alone == lines.append  # (one engine: dockerd's retries are waited out)
    watched = give_up_retrying(lines.append, "push of x", pooled=True)
    watched("0123456789ab: Retrying in 5 seconds")  # (the first retry: waited for)
    with pytest.raises(TransferError) as raised:
        watched("0123456789ab: Retrying in 15 seconds")
    assert raised.value.unreachable
    assert lines == [f"0123456789ab: Retrying in {n} seconds" for n in (5, 15)]


def _repository(spec: str) -> tuple[str, str]:
    host, _, rest = spec.partition("/")
    return host, rest.rsplit(":", 1)[0]


def _put_manifest(registry: MemoryRegistry, spec: str, body: bytes) -> str:
    """PUT ``body`` at ``spec``'s tag, as a push would; its digest."""
    (host, repository), tag = _repository(spec), spec.rsplit(":", 1)[1]
    response = registry.handle(
        httpx.Request(
            "PUT",
            f"https://{host}/v2/{repository}/manifests/{tag}",
            content=body,
            headers={"content-type": "application/vnd.oci.image.manifest.v1+json"},
        )
    )
    assert response.status_code == 201
    return response.headers["Docker-Content-Digest"]


async def test_a_lost_unpublished_parent_is_built_again(world: World) -> None:
    """hidden (publish: false) only on an engine that vanishes: built again elsewhere."""
    engines = pool(world, "h1", "h2")
    first, second = MemoryEngine.named("h1"), MemoryEngine.named("h2")
    second.stall()  # (h2 gets tool's build and holds it)

    async def vanish_when_tool_builds_there() -> None:
        while True:
            tools = [
                c for c in (*first.calls, *second.calls) if c[0] == "build" and "/tool:" in c[1]
            ]
            if tools:
                holder = first if tools[0] in first.calls else second
                holder.vanish("killed")
                second.release()
                return
            await anyio.sleep(0.005)

    async with anyio.create_task_group() as tg:
        tg.start_soon(vanish_when_tool_builds_there)
        result = await world.run(Workflow.ENSURE, "tool", engines=engines)
    assert result.ok, result.to_json()
    assert result.images["hidden"].engine == result.images["tool"].engine


# -- CI steps ----------------------------------------------------------------------------


async def test_a_step_awaits_what_another_step_publishes(world: World) -> None:
    fingerprints = {n: str(fp) for n, fp in (await world.repo.fingerprints(["app"])).items()}

    async def the_other_step() -> None:
        await anyio.sleep(0.3)
        await world.run(Workflow.ENSURE, "lib", engine=world.engine_like("other"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(the_other_step)
        result = await world.run(
            Workflow.ENSURE, "app", only={"app": fingerprints["app"]}, wait=30.0, step="s2"
        )
    assert result.ok, result.to_json()
    assert actions(result) == {"lib": "pulled", "app": "built"}
    assert result.images["lib"].awaited is not None
    assert result.step == "s2"


async def test_a_failed_step_stops_the_steps_awaiting_it_at_once(world: World) -> None:
    """The awaiting step started first; the step that builds its parent fails and leaves
    a marker: the awaiting step stops then, not at the end of its --wait."""
    fingerprints = {n: str(fp) for n, fp in (await world.repo.fingerprints(["app"])).items()}
    specs = await world.repo.specs(["lib"])
    failing = world.engine_like("failing")
    failing.failing[specs["lib"]] = "broken"
    results: dict[str, RunResult] = {}

    async def awaiting_step() -> None:
        results["s2"] = await world.run(
            Workflow.ENSURE, "app", only={"app": fingerprints["app"]}, wait=600.0, step="s2"
        )

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(awaiting_step)
            await anyio.sleep(0.2)
            results["s1"] = await world.run(
                Workflow.ENSURE, "lib", engine=failing, only={"lib": "", "base": ""}, step="s1"
            )
    assert not results["s1"].ok
    assert not results["s2"].ok
    assert "the step that builds it failed (step s1: " in results["s2"].images["lib"].error


async def test_wait_is_a_bound(world: World) -> None:
    fingerprints = {n: str(fp) for n, fp in (await world.repo.fingerprints(["app"])).items()}
    result = await world.run(Workflow.ENSURE, "app", only={"app": fingerprints["app"]}, wait=0.5)
    assert not result.ok
    assert "was not published within 0.5 s" in result.images["lib"].error
    assert result.images["lib"].wait_ran_out
    assert result.only_waits_ran_out


def test_options_round_trip() -> None:
    """(RunOptions stays a frozen value: replace works, as the CLI relies on.)"""
    assert replace(RunOptions(), jobs=3).jobs == 3


# -- multi-arch indexes over the in-memory registry ---------------------------------------


async def test_publish_indexes_points_a_tag_at_each_arch(world: World) -> None:
    from mzbuild_async.registry.writer import RegistryWriter
    from mzbuild_async.release.promote import publish_indexes

    amd = world.engine_like("amd64")
    arm = world.engine_like("arm64", platform="linux/arm64")
    specs: dict[str, dict[Arch, str]] = {}
    for arch, engine in ((Arch.X86_64, amd), (Arch.AARCH64, arm)):
        repo = await Repository.open(
            world.repo.root, BuildOptions(arch=arch, image_registry=REGISTRY)
        )
        result = await run_workflow(
            repo, Workflow.ENSURE, ["base"], cache_dir=world.cache, docker=engine,
            client=world.client, options=RunOptions(tiers=TIERS),
        )  # fmt: skip
        assert result.ok, result.to_json()
        specs.setdefault("base", {})[arch] = result.images["base"].spec
    writer = RegistryWriter(world.client)
    first = await publish_indexes(writer, "v1.0", specs)
    again = await publish_indexes(writer, "v1.0", specs)
    assert not isinstance(first["base"], Exception)
    assert not isinstance(again["base"], Exception)
    assert (first["base"].status, again["base"].status) == ("created", "unchanged")
    index = json.loads(world.registry.manifest(f"{REGISTRY}/base:v1.0") or b"{}")
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    missing = await publish_indexes(
        writer, "v1.0", {"lib": {Arch.X86_64: specs["base"][Arch.X86_64].replace("base", "lib")}}
    )
    assert isinstance(missing["lib"], Exception)


async def test_a_cache_registry_gets_each_build_and_gives_it_back(world: World) -> None:
    first = await world.run(Workflow.ENSURE, "base", cache_registry="reg.test/cache")
    assert first.ok, first.to_json()
    assert world.registry.manifest("reg.test/cache/base:buildcache") is not None
    fresh = world.engine_like("fresh")
    again = await world.run(
        Workflow.BUILD, "base", engine=fresh, force=True, cache_registry="reg.test/cache"
    )
    assert again.ok, again.to_json()
    assert ("pull", "reg.test/cache/base:buildcache") in fresh.calls  # the cache came back


# -- attestations over the in-memory registry, with an injected signer -------------------


class _Injected:
    """A signer behind the Signer seam (as a keyless one would be): HMAC, recorded."""

    keyid = "injected:test"

    def __init__(self) -> None:
        self.signed: list[bytes] = []

    def sign(self, data: bytes) -> bytes:
        import hashlib
        import hmac

        self.signed.append(data)
        return hmac.new(b"k", data, hashlib.sha256).digest()


async def test_ensure_attest_signs_with_any_signer(world: World) -> None:
    import base64

    from mzbuild_async.registry.names import parse_reference
    from mzbuild_async.registry.referrers import referrers
    from mzbuild_async.registry.writer import RegistryWriter

    signer = _Injected()
    result = await world.run(Workflow.ENSURE, "lib", attest=True, signers=(signer,))
    assert result.ok, result.to_json()
    for name in ("base", "lib"):
        image = result.images[name]
        assert image.attestation is not None
        assert image.attestation["provenance"] == "attached"
    # Two statements per image (provenance, SBOM), each signed once by the injected signer.
    assert len(signer.signed) == 4
    writer = RegistryWriter(world.client)
    lib = result.images["lib"]
    attached = await referrers(
        writer,
        parse_reference(lib.spec.rsplit(":", 1)[0]),
        lib.digest,
        "application/vnd.in-toto+json",
    )
    assert len(attached) == 2
    host, _, repository = lib.spec.rsplit(":", 1)[0].partition("/")
    artifact = world.registry.manifests[(host, repository)][attached[0].digest].body
    layer = json.loads(artifact)["layers"][0]["digest"]
    envelope = json.loads(world.registry.blobs[layer])
    assert envelope["signatures"][0]["keyid"] == "injected:test"
    payload = base64.b64decode(envelope["payload"])
    assert any(payload in message for message in signer.signed)
    again = await world.run(Workflow.ENSURE, "lib", attest=True, signers=(signer,))
    assert again.images["lib"].attestation == {"provenance": "present"}


async def test_the_cosign_layout_goes_at_the_att_tag_and_verifies(world: World) -> None:
    """``attest_layout="cosign"``: both statements as layers of the ``.att`` tag's
    manifest (no OCI artifacts), which verify reads; ``both`` adds the artifacts."""
    from mzbuild_async.attest.dsse import KeySigner
    from mzbuild_async.registry.cosign import DSSE_LAYER, SIGNATURE_ANNOTATION
    from mzbuild_async.registry.names import parse_reference
    from mzbuild_async.registry.referrers import attestation_tag, referrers
    from mzbuild_async.registry.writer import RegistryWriter
    from mzbuild_async.workflow.verify import verify_images
    from tests.support.chain import memory_settings

    signer = KeySigner.generate()
    result = await world.run(
        Workflow.ENSURE, "lib", attest=True, signers=(signer,), attest_layout="cosign"
    )
    assert result.ok, result.to_json()
    lib = result.images["lib"]
    assert lib.attestation is not None
    host, _, repository = lib.spec.rsplit(":", 1)[0].partition("/")
    held = world.registry.manifests[(host, repository)]
    manifest = json.loads(held[attestation_tag(lib.digest)].body)
    assert lib.attestation["cosign"] == held[attestation_tag(lib.digest)].digest
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DSSE_LAYER, DSSE_LAYER]
    assert all(layer["annotations"][SIGNATURE_ANNOTATION] == "" for layer in manifest["layers"])
    assert sorted(layer["annotations"]["predicateType"] for layer in manifest["layers"]) == [
        "https://cyclonedx.org/bom",
        "https://slsa.dev/provenance/v1",
    ]
    writer = RegistryWriter(world.client)
    where = parse_reference(lib.spec.rsplit(":", 1)[0])
    assert await referrers(writer, where, lib.digest) == []
    settings = memory_settings(world.registry.transport())
    verdicts = await verify_images(
        world.repo, ["base", "lib"], [signer.public], cache_dir=world.cache, settings=settings
    )
    assert all(v.ok for v in verdicts.values()), verdicts
    again = await world.run(
        Workflow.ENSURE, "lib", attest=True, signers=(signer,), attest_layout="cosign"
    )
    assert again.images["lib"].attestation == {"provenance": "present"}
    both = await world.run(
        Workflow.ENSURE, "lib", attest=True, signers=(signer,), attest_layout="both"
    )
    assert both.images["lib"].attestation is not None
    assert both.images["lib"].attestation["provenance"] == "attached"
    assert len(await referrers(writer, where, lib.digest)) == 2
    layers = json.loads(held[attestation_tag(lib.digest)].body)["layers"]
    assert len(layers) == 2  # (ours replaced, not added again)


class _Keyless:
    """A keyless signer behind the BundleSigner seam (sigstore's place), recorded."""

    identity = "ci@example.test"

    def __init__(self) -> None:
        self.statements: list[bytes] = []

    def sign_statement(self, statement: bytes) -> str:
        self.statements.append(statement)
        return json.dumps({"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
                           "dsseEnvelope": {"payload": len(statement)}})  # fmt: skip


async def test_ensure_keyless_attaches_a_bundle_per_statement(world: World) -> None:
    from mzbuild_async.registry.names import parse_reference
    from mzbuild_async.registry.referrers import referrers
    from mzbuild_async.registry.writer import RegistryWriter

    keyless = _Keyless()
    result = await world.run(Workflow.ENSURE, "base", attest=True, keyless=keyless)
    assert result.ok, result.to_json()
    base = result.images["base"]
    assert len(keyless.statements) == 2  # provenance and SBOM
    assert all(b'"_type": "https://in-toto.io/Statement/v1"' in s for s in keyless.statements)
    attached = await referrers(
        RegistryWriter(world.client), parse_reference(base.spec.rsplit(":", 1)[0]), base.digest
    )
    bundles = [d for d in attached if dict(d.annotations).get("dev.sigstore.bundle.identity")]
    assert [dict(d.annotations)["dev.sigstore.bundle.identity"] for d in bundles] == [
        "ci@example.test"
    ] * 2
    host, _, repository = base.spec.rsplit(":", 1)[0].partition("/")
    layer = json.loads(world.registry.manifests[(host, repository)][bundles[0].digest].body)
    assert layer["layers"][0]["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
