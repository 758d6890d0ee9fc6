"""The real worker: cargo, Docker builds, pulls and pushes for the scheduler.

Implements :class:`mzbuild_async.builds.scheduler.Worker` over a Docker
engine or the engines of a pool (:class:`~..engine.protocol.Engine`),
cargo (:mod:`.cargo`: each image's outputs staged as they land) and the
registry client. Pulls and pushes retry transient failures with the one
retry policy; before a push the tag is looked up again (another job may
have published it) and after it the tag is confirmed with a ``HEAD``. A
fingerprint tag is pushed only over a definite "absent" of this run: when
the registry cannot tell, nothing is pushed (it may hold another digest).
A pull that meets "manifest unknown" records the tag as ``stale``: the run
decides again.
Images another CI step builds are awaited in the registry (or its failure
marker, :mod:`.markers`) before they are pulled; images move between the
engines of a pool through the registry (``send``, ``fetch``).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import anyio

from ..engine.answers import cache_vanished, give_up_retrying, retries_exhausted
from ..engine.protocol import Builder, BuildRequest, Engine
from ..errors import (
    BuildError,
    CargoBuildError,
    DockerBuildError,
    EngineError,
    ManifestUnknown,
    TransferError,
)
from ..model.dockerfile import secret_mounts, ssh_mounts
from ..model.manifest import CargoBuild, Copy
from ..model.spec import fingerprint_of
from ..model.status import Status
from ..registry.auth import Credentials
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..source.pins import mirrored_dockerfile, pinned_dockerfile, read_lock
from ..source.repository import Repository
from ..store.locks import spec_lock
from ..support import logs
from ..support.events import BuildStep, Event, EventStatus, Listener, Phase, ignore
from ..support.retry import DEFAULT_RETRY, RetryPolicy, Transient, call_with_retries
from .cargo import stage_outputs as stage_cargo_outputs
from .context import (
    CONTEXT_DOCKERFILE,
    context_entries,
    input_list_digest,
    rewrite_dockerfile,
    stream_context,
)
from .layercache import cache_logins, cache_ref, cache_usable, credentials_for
from .markers import await_published
from .request import build_args, copy_entries, mounted
from .staging import CargoStage

T = TypeVar("T")
LABEL_FINGERPRINT = "io.mzbuild.fingerprint"
LABEL_INPUTS = "io.mzbuild.inputs-digest"


@dataclass
class EngineWorker:
    """Does a run's work on the local Docker engine, or on the engines of a pool."""

    repo: Repository
    specs: Mapping[str, str]
    #: The home engine (the only one without a pool).
    docker: Engine
    client: RegistryClient
    cache_dir: Path
    cache_registry: str | None = None
    #: Build with ``docker buildx`` (and its registry cache) instead of the engine API.
    buildx: Builder | None = None
    retry: RetryPolicy = DEFAULT_RETRY
    listener: Listener = ignore
    clock: Callable[[], float] = anyio.current_time
    #: Images to build although the engine had them when the run was planned
    #: (``build --force``); any other image found local at build time was
    #: built by another process meanwhile.
    rebuild: AbstractSet[str] = frozenset()
    #: Measured build seconds, by image (for the history).
    build_seconds: dict[str, float] = field(default_factory=dict)
    #: The engines of a pool, by name (empty: ``docker`` does everything).
    pool: Mapping[str, Engine] = field(default_factory=dict)
    #: ``--transfer-registry``: where ``publish: false`` images travel between engines.
    transfer_registry: str | None = None
    #: Images another CI step builds: awaited in the registry before they are pulled.
    awaited: AbstractSet[str] = frozenset()
    #: Build secrets by id (``--secret``): each build gets those its Dockerfile mounts.
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    #: SSH agents by id (``--ssh``): the socket of each, for ``--mount=type=ssh``.
    ssh: Mapping[str, str] = field(default_factory=dict)
    #: ``[mirrors]``: each registry's mirror external base images are pulled from.
    base_mirrors: Mapping[str, str] = field(default_factory=dict)
    #: ``--wait``: how long to await each of them.
    wait: float = 3600.0
    #: When (on ``clock``) the step's ``--wait`` runs out, counted from its start
    #: (its lookups of these images took some of it); None: ``wait`` from each await.
    wait_until: float | None = None
    #: The awaited images whose lookup got no answer (the registry's fault).
    unanswered: AbstractSet[str] = frozenset()
    #: The pipeline run this CI step is part of (failure markers of others are ignored).
    pipeline_run: str = ""
    #: The environment cargo and rustc run with (the run's, from its settings).
    environ: Mapping[str, str] = field(default_factory=dict)
    #: Seconds waited for each awaited image.
    waited: dict[str, float] = field(default_factory=dict)
    #: The awaited images whose ``--wait`` ran out (they never came).
    timed_out: set[str] = field(default_factory=set)
    #: The manifest digest of each image pushed (or found pushed by another run), as
    #: the registry's ``HEAD`` gave it.
    digests: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    #: Specs this run found absent although a lookup said present (a failed
    #: pull's "manifest unknown"): pushed without asking the registry again.
    absent: AbstractSet[str] = frozenset()
    #: Specs a pull found missing in this round (the run decides again).
    stale: set[str] = field(default_factory=set)
    #: When this run started (UNIX time): older failure markers are ignored.
    _since: float = field(default_factory=time.time)
    _pushed: dict[str, int | None] = field(default_factory=dict)
    #: The run's cargo build and the outputs it staged for each image.
    _cargo: CargoStage = field(init=False)

    def __post_init__(self) -> None:
        self._cargo = CargoStage(self.repo, self.environ, self._line(None, Phase.CARGO))

    def _engine(self, engine: str) -> Engine:
        return self.pool.get(engine, self.docker)

    @property
    def pooled(self) -> bool:
        """Whether the work is spread over a pool (another engine may take it)."""
        return len(self.pool) > 1

    def _line(self, image: str | None, phase: Phase) -> Callable[[str], None]:
        fingerprint = fingerprint_of(self.specs[image]) if image else None
        log = logs.get_logger().bind(image=image, fingerprint=fingerprint, phase=phase)

        def sink(line: str) -> None:
            if line.strip():
                log.debug(line)
                self.listener(Event(0.0, image, phase, EventStatus.LINE, line))

        return sink

    def _step(self, image: str) -> Callable[[BuildStep], None]:
        fingerprint = fingerprint_of(self.specs[image])
        log = logs.get_logger().bind(image=image, fingerprint=fingerprint, phase=Phase.BUILD)

        def sink(step: BuildStep) -> None:
            log.debug(f"build step {step.outcome}", step=step.name, seconds=round(step.seconds, 3))
            self.listener(Event(0.0, image, Phase.BUILD, EventStatus.STEP, step.name, step=step))

        return sink

    async def _retrying(self, what: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                return await what()
            except TransferError as exc:
                if exc.transient:  # the engine's boundary decided
                    raise Transient(str(exc)) from exc
                raise

        return await call_with_retries(self.retry, attempt)

    async def _auth(self, spec: str) -> Credentials | None:
        """Our credentials for ``spec``'s registry (None: anonymous)."""
        return await credentials_for(self.client, spec)

    # -- Worker protocol ------------------------------------------------------

    async def cargo(
        self, names: Sequence[str], landed: Callable[[str], None] = lambda name: None
    ) -> None:
        """One ``cargo build`` for every cargo-build pre-image of ``names``, each image
        staged and released as its artifacts land (:class:`.staging.CargoStage`)."""
        await self._cargo.build(names, landed)

    async def aclose(self) -> None:
        """Remove what the run staged (also when it was cancelled)."""
        await self._cargo.aclose()

    async def pull(self, name: str, engine: str = "") -> None:
        """Pull the image's spec into ``engine``, retrying transient failures (an
        image another CI step builds: once the registry has it)."""
        if name in self.awaited:
            await self._await_published(name)
        await self._pull(name, self.specs[name], engine)

    async def _await_published(self, name: str) -> None:
        """Wait for the image another step builds (:func:`.markers.await_published`)."""
        awaited = await await_published(
            self.client,
            name,
            self.specs[name],
            wait=self.wait,
            wait_until=self.wait_until,
            unanswered=name in self.unanswered,
            since=self._since,
            run=self.pipeline_run,
            clock=self.clock,
        )
        self.waited[name] = awaited.seconds
        if awaited.ran_out:
            self.timed_out.add(name)
        if awaited.error:
            raise TransferError(awaited.error)

    async def _pull(self, name: str, ref: str, engine: str) -> None:
        docker = self._engine(engine)
        auth = await self._auth(ref)
        sink = give_up_retrying(self._line(name, Phase.PULL), f"pull of {ref}", self.pooled)
        try:
            await self._retrying(lambda: docker.pull(ref, auth, sink))
        except Transient as exc:
            raise retries_exhausted(f"pull of {ref}", exc) from None
        except ManifestUnknown as exc:
            if ref == self.specs[name]:
                self.stale.add(ref)
            raise ManifestUnknown(
                f"{name}: the registry does not have {ref}, which a lookup said it has"
                f" (deleted since?): {exc}"
            ) from None

    async def _may_push(self, name: str, ref: str) -> str:
        """Empty when ``ref`` may be pushed (definitely absent), else why it need not be;
        raises when the registry cannot tell (it may hold another digest there)."""
        if ref in self.absent:
            return ""
        probe = await self.client.lookup(parse_reference(ref))
        if probe.get_may_help:
            probe = await self.client.lookup(parse_reference(ref), method="GET")
        if probe.status is Status.PRESENT:
            if probe.digest and ref == self.specs.get(name):
                self.digests[name] = (probe.digest, probe.size, probe.media_type)
            return "already published (by another run)"
        if probe.status is Status.UNKNOWN:
            raise TransferError(
                f"{name}: the registry could not tell whether it has {ref}"
                f" ({probe.detail or 'no answer'}); nothing pushed"
            )
        return ""

    async def build(self, name: str, engine: str = "") -> str:
        """Build the image on ``engine``; "" when we did, else why not (another
        process built it)."""
        spec = self.specs[name]
        docker = self._engine(engine)
        async with spec_lock(self.cache_dir, spec):
            # Planned as missing: if it is there now, another process built it
            # (while we waited for the lock, or before we got to it).
            if name not in self.rebuild and await docker.exists(spec):
                logs.get_logger().info(
                    BUILT_ELSEWHERE,
                    image=name,
                    fingerprint=fingerprint_of(spec),
                    phase="build",
                )
                return BUILT_ELSEWHERE
            start = self.clock()
            await self._build(name, spec, docker)
            self.build_seconds[name] = self.clock() - start
            return ""

    def transfer_ref(self, name: str) -> str:
        """Where image ``name`` travels between engines: its own spec when it is
        published, else under ``--transfer-registry``."""
        spec = self.specs[name]
        if self.repo.image(name).manifest.publish or not self.transfer_registry:
            return spec
        return f"{self.transfer_registry.rstrip('/')}/{name}:mzbuild-{fingerprint_of(spec)}"

    def pushed_bytes(self, name: str) -> int | None:
        """Bytes the last push of ``name`` moved (its engine's count)."""
        return self._pushed.get(name)

    async def send(self, name: str, engine: str) -> int | None:
        """Push image ``name`` from ``engine`` to its transfer reference (once: a
        reference the registry has is not pushed again); the bytes that moved."""
        spec, ref = self.specs[name], self.transfer_ref(name)
        docker = self._engine(engine)
        if ref != spec:
            await docker.tag(spec, ref)
        async with spec_lock(self.cache_dir, f"push {ref}"):
            if await self._may_push(name, ref):
                return 0
            auth = await self._auth(ref)
            try:
                await self._retrying(lambda: docker.push(ref, auth, self._line(name, Phase.SEND)))
            except Transient as exc:
                raise retries_exhausted(f"push of {ref}", exc) from None
        return docker.moved(ref)

    async def fetch(self, name: str, engine: str) -> int | None:
        """Bring image ``name`` into ``engine`` from the registry, tagged with its spec;
        the bytes that moved."""
        spec, ref = self.specs[name], self.transfer_ref(name)
        docker = self._engine(engine)
        if await docker.exists(spec):
            return 0
        await self._pull(name, ref, engine)
        if ref != spec:
            await docker.tag(ref, spec)
        return docker.moved(ref)

    async def alive(self, engine: str) -> bool:
        """Whether ``engine`` answers a ping."""
        try:
            await self._engine(engine).ping()
        except EngineError:
            return False
        return True

    async def _build(self, name: str, spec: str, docker: Engine) -> None:
        image = self.repo.image(name)
        repo = self.repo
        if name in self._cargo.errors:
            raise CargoBuildError(self._cargo.errors[name])
        # Cargo outputs staged when they landed stay until the run ends (a
        # build re-queued to another engine takes them again).
        own = name not in self._cargo.staged
        staging = (
            Path(tempfile.mkdtemp(prefix=f"mzbuild-{name}-")) if own else self._cargo.staged[name]
        )
        try:
            copies: list[tuple[str, str]] = []
            for pre_image in image.manifest.pre_images:
                if isinstance(pre_image, CargoBuild) and own:
                    if self._cargo.artifacts is None:
                        raise CargoBuildError(f"{name}: the cargo build did not run")
                    await stage_cargo_outputs(
                        pre_image,
                        self._cargo.artifacts,
                        staging,
                        where=image.manifest.path,
                        arch=repo.options.arch,
                    )
                elif isinstance(pre_image, Copy):
                    copies += copy_entries(repo, pre_image)
            files = repo.context_files(name)
            ignore_path = repo.root / image.directory / ".dockerignore"
            ignore_text = ignore_path.read_text() if ignore_path.is_file() else None
            entries = context_entries(
                repo.root,
                image.directory,
                files,
                copies=copies,
                staged=staging,
                dockerignore=ignore_text,
            )
            dockerfile = (repo.root / image.dockerfile).read_bytes()
            secrets, agents = mounted(image.dockerfile, dockerfile, self.secrets, self.ssh)
            # Its mzbuild.lock's digests (where it has one), its bases through their
            # registries' mirrors, then MZFROM: our own images, never mirrored.
            pinned = pinned_dockerfile(dockerfile, read_lock(repo.root / image.directory))
            rewritten = rewrite_dockerfile(
                mirrored_dockerfile(pinned, self.base_mirrors),
                {d: self.specs[d] for d in image.dependencies},
            )
            fingerprint = fingerprint_of(spec)
            cache_from: list[str] = []
            cache_tag = cache_ref(self.cache_registry, name) if self.cache_registry else None
            if (
                cache_tag
                and self.buildx is None
                and await cache_usable(
                    cache_tag, docker, self.client, self._fields(cache_tag, Phase.BUILD)
                )
            ):
                cache_from.append(cache_tag)
            request = BuildRequest(
                tag=spec,
                dockerfile=CONTEXT_DOCKERFILE,
                buildargs=build_args(repo, name),
                labels={
                    **await repo.source_labels(),
                    LABEL_FINGERPRINT: fingerprint,
                    LABEL_INPUTS: input_list_digest(repo.inputs(name)),
                },
                platform=repo.options.arch.platform,
                cache_from=cache_from,
                logins=await cache_logins(cache_from, docker, self.client),
                inline_cache=cache_tag is not None,
                secrets=secrets,
                ssh=agents,
                session=bool(secret_mounts(dockerfile) or ssh_mounts(dockerfile)),
            )
            if self.buildx is not None:
                context = stream_context(entries, rewritten, dockerignore=ignore_text)
                await self.buildx.build(
                    request, context, self._line(name, Phase.BUILD), cache_ref=cache_tag
                )
                return
            await self._engine_build(
                name,
                request,
                lambda: stream_context(entries, rewritten, dockerignore=ignore_text),
                docker,
            )
            if cache_tag:
                await self._push_cache(spec, cache_tag, docker)
        finally:
            if own:
                with anyio.CancelScope(shield=True):  # also when the run is cancelled
                    await anyio.to_thread.run_sync(shutil.rmtree, staging, True)

    async def _engine_build(
        self,
        name: str,
        request: BuildRequest,
        context: Callable[[], AsyncIterable[bytes]],
        docker: Engine,
    ) -> None:
        """Build on ``docker``; once more if the engine removed an image the build used
        as cache while it ran (another job's clean-up on a shared engine)."""
        for again in (False, True):
            try:
                await docker.build(
                    request, context(), self._line(name, Phase.BUILD), self._step(name)
                )
                return
            except DockerBuildError as exc:
                if again or not cache_vanished(str(exc)):
                    raise
                logs.warning(
                    f"{name}: an image its build used as cache was removed from the"
                    " engine while it ran (another job's clean-up?); building it again",
                    **self._fields(request.tag, Phase.BUILD),
                )

    def _fields(self, ref: str, phase: Phase) -> dict[str, str | None]:
        """The image, fingerprint and phase fields of a log event about ``ref``."""
        for name, spec in self.specs.items():
            if spec == ref or ref.endswith(f"/{name}:buildcache"):
                return {
                    "image": name,
                    "fingerprint": fingerprint_of(spec),
                    "phase": phase,
                }
        return {"image": None, "fingerprint": None, "phase": phase}

    async def _push_cache(self, spec: str, tag: str, docker: Engine) -> None:
        try:
            await docker.tag(spec, tag)
            auth = await self._auth(tag)
            await self._retrying(lambda: docker.push(tag, auth, self._line(None, Phase.PUSH)))
        except (BuildError, Transient) as exc:
            logs.warning(f"layer cache {tag} not updated: {exc}", **self._fields(spec, Phase.PUSH))

    async def push(self, name: str, engine: str = "") -> str:
        """Push from ``engine`` unless already published; confirm the tag with a HEAD
        afterwards."""
        spec = self.specs[name]
        docker = self._engine(engine)
        ref = parse_reference(spec)
        # Another process on this machine pushing the same tag holds this lock:
        # waiting for it, then asking the registry, pushes each tag once.
        async with spec_lock(self.cache_dir, f"push {spec}"):
            published = await self._may_push(name, spec)
            if published:
                return published
            auth = await self._auth(spec)
            sink = give_up_retrying(self._line(name, Phase.PUSH), f"push of {spec}", self.pooled)
            try:
                ours = await self._retrying(lambda: docker.push(spec, auth, sink))
            except Transient as exc:
                raise retries_exhausted(f"push of {spec}", exc) from None
        self._pushed[name] = docker.moved(spec)
        # (by the digest the engine pushed: the tag may show another already, a lost
        # engine's late push; workflow/lost.py puts it back)
        after = await self.client.lookup(replace(ref, digest=ours) if ours else ref)
        if after.status is not Status.PRESENT:
            raise TransferError(
                f"pushed {spec} but the registry does not show it ({after.status}"
                f"{': ' + after.detail if after.detail else ''})"
            )
        if after.digest:
            self.digests[name] = (after.digest, after.size, after.media_type)
        return ""


#: The note of an image another process built while we waited for its lock.
BUILT_ELSEWHERE = "built by another process"
