"""One run of a workflow: fingerprints, lookups, decisions, then the scheduler.

``run_workflow`` is the API behind ``acquire``, ``ensure`` and ``build``:
it fingerprints the targets and their dependencies, asks the local engine
and the registry about every one of them at once, decides each image's
work (:mod:`.plan`) and hands the jobs to the :class:`Scheduler` with the
real :class:`EngineWorker`. The result is a value; the CLI prints it.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..builds.plan import AWAITED, Decision, Found, Workflow, decide, jobs, settled_decisions
from ..builds.scheduler import (
    LOCAL_ENGINE,
    Action,
    Outcome,
    RunLimits,
    Scheduler,
    Slots,
    Worker,
    predict_placement,
)
from ..engine.endpoints import Endpoint, default_endpoint
from ..engine.factory import open_engine
from ..engine.pool import Member, close_pool, open_pool
from ..engine.protocol import Engine
from ..errors import MzbuildError, UsageError, single_error

if TYPE_CHECKING:
    from ..engine.buildx import BuildxBuilder
from ..lookup.disk import DiskTier
from ..lookup.engine import Answer, LookupEngine, TierStatistics
from ..model.options import DEFAULT_TRANSFERS, default_jobs
from ..model.spec import fingerprint_of
from ..model.status import TIER_ORDER, Status
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from ..store.history import BuildHistory
from ..support import logs
from ..support.events import Event, EventStatus, Listener, Phase, ignore
from .steps import Interval, StepRecorder

#: Tiers that say "published" (the daemon only says "local").
PUBLISHED_TIERS = ("memory", "disk", "registry", "manifest")


@dataclass(frozen=True)
class RunOptions:
    """How a run goes about its work."""

    jobs: int = field(default_factory=default_jobs)
    transfers: int = DEFAULT_TRANSFERS
    fail_fast: bool = False
    #: ``build --force``: build the targets even when found.
    force: bool = False
    #: ``--cache-registry``: where ``NAME:buildcache`` layer caches live.
    cache_registry: str | None = None
    #: ``engine`` (the Docker engine API) or ``buildx`` (the ``docker buildx`` CLI).
    builder: str = "engine"
    #: Lookup tiers to consult (``[lookup] tiers``); only those that can say
    #: "published" are used for that (the engine is asked directly).
    tiers: tuple[str, ...] = TIER_ORDER
    #: The engines of a pool, home engine first (empty: the local engine alone).
    engines: tuple[Endpoint, ...] = ()
    #: ``--jobs`` given: builds at once on every engine of a pool.
    slots: int | None = None
    #: ``--transfer-registry``: where ``publish: false`` images travel between engines.
    transfer_registry: str | None = None
    #: A CI step (``--only``): the images this run may build, with the fingerprints
    #: the pipeline expects of them ("" when it does not say); others it would
    #: build are awaited in the registry. None: any image.
    only: Mapping[str, str] | None = None
    #: ``--wait``: seconds to await an image another step builds.
    wait: float = 3600.0
    #: ``--step``: the name of the CI step this run is.
    step: str | None = None
    #: The pipeline run of a CI step (:func:`~..ci.pipeline_run`).
    pipeline_run: str = ""
    #: ``[lookup] trust-cache``: take the disk tier's "present" without asking the
    #: registry, also in ``ensure`` and CI steps (for registries that never delete).
    trust_cache: bool = False

    def confirms(self, workflow: Workflow) -> bool:
        """Whether the run confirms cached "present" answers with the registry:
        ``ensure`` and CI steps guarantee publication, so they do (unless trusted)."""
        return (workflow is Workflow.ENSURE or self.only is not None) and not self.trust_cache


@dataclass(frozen=True)
class ImageResult:
    """One image's part in a run, for summaries and ``--json``."""

    name: str
    spec: str
    action: str
    pushed: bool
    seconds: float
    reason: str
    tier: str | None
    error: str = ""
    note: str = ""
    #: The engine that built or pulled it ("" when nothing was done).
    engine: str = ""
    #: Seconds into the run when cargo had built all it takes (cargo images built).
    landed: float | None = None
    #: Seconds this run waited for the image to be published by another step.
    awaited: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` record of this image."""
        record: dict[str, Any] = {
            "spec": self.spec,
            "action": self.action,
            "pushed": self.pushed,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "tier": self.tier,
            "engine": self.engine or None,
        }
        if self.error:
            record["error"] = self.error
        if self.note:
            record["note"] = self.note
        if self.landed is not None:
            record["artifacts_landed"] = round(self.landed, 3)
        if self.awaited is not None:
            record["awaited_seconds"] = round(self.awaited, 3)
        return record


@dataclass(frozen=True)
class RunResult:
    """Every image of a run, dependencies first."""

    workflow: Workflow
    images: Mapping[str, ImageResult]
    seconds: float
    plan: RunPlan | None = None
    #: Every piece of work with its times since the run started.
    steps: tuple[Interval, ...] = ()
    #: Per lookup tier: count and latencies (seconds).
    lookups: Mapping[str, TierStatistics] = field(default_factory=dict)
    #: HTTP requests sent, by registry host.
    requests: Mapping[str, int] = field(default_factory=dict)
    #: What each engine did, by name (the home engine first).
    engines: Mapping[str, EngineReport] = field(default_factory=dict)
    #: The CI step this run was (``--step``).
    step: str | None = None

    @property
    def pooled(self) -> bool:
        """Whether the run had engines other than the local one alone."""
        return len(self.engines) > 1 or any(e.configured for e in self.engines.values())

    @property
    def ok(self) -> bool:
        """Whether every image ended as wanted."""
        return all(r.action not in ("failed", "skipped") for r in self.images.values())

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        document: dict[str, Any] = {
            "workflow": self.workflow.value,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "images": {name: r.to_json() for name, r in self.images.items()},
        }
        if self.step is not None:
            document["step"] = self.step
        return document


@dataclass(frozen=True)
class EngineReport:
    """One engine of a run, for reports."""

    url: str
    platform: str
    slots: int
    builds: int = 0
    busy_seconds: float = 0.0
    transfers: int = 0
    lost: str = ""
    #: From ``--engine``/``[[engine]]`` (not the local engine by default).
    configured: bool = True

    def to_json(self) -> dict[str, Any]:
        """The ``--report`` record of this engine."""
        return {
            "url": self.url,
            "platform": self.platform,
            "slots": self.slots,
            "builds": self.builds,
            "busy_seconds": round(self.busy_seconds, 3),
            "transfers": self.transfers,
            "lost": self.lost or None,
        }


def _found(local: bool, answer: Answer | None) -> Found:
    """One image's state: in the engine or not, and the registry's answer (if asked)."""
    if answer is None:
        return Found(local, False)
    return Found(
        local,
        answer.status is Status.PRESENT,
        answer.tier,
        unknown=answer.status is Status.UNKNOWN,
        cached=answer.detail if answer.tier == "disk" else "",
    )


ACTION_WORDS = {Action.NONE: "none", Action.PULL: "pull", Action.BUILD: "build"}


@dataclass(frozen=True)
class RunPlan:
    """What a run would do and why, decided but not done."""

    workflow: Workflow
    decisions: Mapping[str, Decision]
    found: Mapping[str, Found]
    fingerprints: Mapping[str, str]
    dependencies: Mapping[str, tuple[str, ...]]
    #: Whether each image is ever published (``publish: false`` ones are not looked up).
    publish: Mapping[str, bool]
    #: The engine each build would go to (a pool only).
    placement: Mapping[str, str] = field(default_factory=dict)
    #: The CI step planned (``--step``).
    step: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``plan --json`` document (also the ``plan`` part of a report)."""
        images: dict[str, Any] = {}
        for name, decision in self.decisions.items():
            state = self.found[name]
            if not self.publish[name]:
                published = "never (publish: false)"
            elif state.published:
                published = "present"
            elif state.unknown:
                published = "unknown"
            else:
                published = "absent"
            action = ACTION_WORDS[decision.action]
            if decision.push:
                action = "push" if decision.action is Action.NONE else f"{action}+push"
            images[name] = {
                "fingerprint": self.fingerprints[name],
                "spec": decision.spec,
                "local": state.local,
                "published": published,
                "tier": decision.tier,
                "action": action,
                "reason": decision.reason,
                "dependencies": list(self.dependencies[name]),
            }
            if self.placement:
                images[name]["engine"] = self.placement.get(name)
            if state.cached:
                images[name]["cached"] = state.cached
        document: dict[str, Any] = {"workflow": self.workflow.value, "images": images}
        if self.step is not None:
            document["step"] = self.step
        return document


@dataclass(frozen=True)
class _Services:
    """A run's engines (home first), registry client and lookup engine."""

    members: list[Member]
    client: RegistryClient
    lookups: LookupEngine
    #: From ``--engine``/``[[engine]]``.
    configured: bool

    @property
    def home(self) -> Engine:
        """The engine the daemon tier asks, and where acquire leaves its targets."""
        return self.members[0].engine

    def slots(self, lost: AbstractSet[str] = frozenset()) -> list[Slots]:
        """The engines as the scheduler sees them (but those ``lost`` already)."""
        return [
            Slots(m.name, m.slots, m.platform or None) for m in self.members if m.name not in lost
        ]


@asynccontextmanager
async def _services(
    cache_dir: Path,
    docker: Engine | None,
    client: RegistryClient | None,
    tiers: Iterable[str] = TIER_ORDER,
    options: RunOptions | None = None,
    platform: str = "",
    confirm: bool = False,
    *,
    registry: str = "",
    alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> AsyncIterator[_Services]:
    """The engine connections and lookup engine of a run, closed at the end.

    While the engines connect, ``alongside`` runs (the fingerprints) and the
    ``registry`` host is made ready (scheme, TLS handshake, challenge) by a
    warm-up that goes on in the background until the block ends: nothing of
    it waits for the rest, and the lookups join what it has in flight.
    """
    options = options or RunOptions()
    own_docker = docker is None
    # Whoever made a resource closes it: the lookup engine closes the
    # registry client only if it was made here.
    engine = LookupEngine.create(
        tiers=[t for t in tiers if t in PUBLISHED_TIERS],
        client=client,
        cache_dir=cache_dir,
        owns_client=client is None,
        confirm=confirm,
    )
    members: list[Member] = []
    try:
        with single_error():
            async with anyio.create_task_group() as warm:
                if registry:
                    warm.start_soon(engine.client.warm_up, [registry])
                async with anyio.create_task_group() as tg:
                    if alongside is not None:
                        tg.start_soon(alongside)
                    members = await _connect(docker, options, platform)
                try:
                    yield _Services(members, engine.client, engine, bool(options.engines))
                finally:
                    warm.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()
            if own_docker:
                await close_pool([m.engine for m in members] or ([docker] if docker else []))


async def _connect(docker: Engine | None, options: RunOptions, platform: str) -> list[Member]:
    """The run's engines: the pool's members that build ``platform``, else one engine."""
    if options.engines and docker is None:
        return _usable_members(await open_pool(options.engines, slots=options.slots), platform)
    url = default_endpoint(os.environ) if docker is None else "(given)"
    docker = docker or open_engine()
    await docker.ping()
    return [Member(LOCAL_ENGINE, url, docker, platform, options.jobs)]


def registry_host(repo: Repository) -> str:
    """The API host of the run's image registry ("" when it is not a valid one)."""
    try:
        return parse_reference(f"{repo.options.image_registry}/probe:probe").api_host
    except UsageError:
        return ""


def _usable_members(members: list[Member], platform: str) -> list[Member]:
    """The members that build ``platform`` (one warning per other one)."""
    usable = [m for m in members if not platform or m.platform == platform]
    for member in members:
        if member not in usable:
            logs.warning(
                f"engine {member.name} ({member.url}) is {member.platform}; this run builds"
                f" {platform}, so it gets no builds"
            )
    if not usable:
        raise UsageError(
            f"no engine of the pool builds {platform} (they are"
            f" {', '.join(sorted({m.platform for m in members}))}); add one, or set"
            " platform in its [[engine]] table"
        )
    return usable


class _Answers:
    """Local and published state of images, each recorded the moment both are known."""

    def __init__(
        self, repo: Repository, specs: Mapping[str, str], docker: Engine, engine: LookupEngine
    ) -> None:
        self.repo = repo
        self.specs = specs
        self.docker = docker
        self.engine = engine
        self.found: dict[str, Found] = {}
        self._changed = anyio.Event()

    async def changed(self) -> None:
        """Wait until some state was recorded since the last call."""
        await self._changed.wait()
        self._changed = anyio.Event()

    async def look_up(self, names: list[str]) -> None:
        """Ask the engine and the registry about ``names``, all at once."""
        local: dict[str, bool] = {}
        answers: dict[str, Answer] = {}
        publishable = {self.specs[n]: n for n in names if self.repo.image(n).manifest.publish}

        def settle(name: str) -> None:
            if name in local and (name in answers or self.specs[name] not in publishable):
                self.found[name] = _found(local[name], answers.get(name))
                self._changed.set()

        async def check_local(name: str) -> None:
            local[name] = await self.docker.exists(self.specs[name])
            settle(name)

        def answered(answer: Answer) -> None:
            name = publishable[answer.spec]
            answers[name] = answer
            settle(name)

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(check_local, name)
            if publishable:
                tg.start_soon(self.engine.lookup_many, list(publishable), answered)


#: Receives, as they become final, the names of images whose decision can no
#: longer change (dependencies first), with every decision and state so far.
Release = Callable[[Sequence[str], Mapping[str, Decision], Mapping[str, Found]], None]


async def _plan(
    repo: Repository,
    workflow: Workflow,
    targets: list[str],
    docker: Engine,
    engine: LookupEngine,
    *,
    force: bool,
    listener: Listener = ignore,
    since: Callable[[], float] = lambda: 0.0,
    release: Release | None = None,
    fingerprinted: bool = False,
    only: AbstractSet[str] | None = None,
) -> RunPlan:
    """Fingerprints, lookups and decisions, each image released as soon as it is final.

    Lookups go out for the targets first; then, if some must be built, for
    everything below what those builds need, in one more round (a chain of
    builds is not a round per image; a found target's dependencies are
    never asked about). Each answer is acted on as it comes: an image whose
    decision no later answer can change (it is below no image still being
    looked up), and whose build's inputs are released too, goes to
    ``release`` at once, so its work can start while other lookups go on.
    """
    images = repo.resolve(targets)
    order = [i.name for i in images]
    if not fingerprinted:  # (else the caller did, and said so)
        listener(
            Event(since(), None, Phase.FINGERPRINT, EventStatus.START, f"{len(images)} images")
        )
    specs = await repo.specs(targets)
    if not fingerprinted:
        listener(Event(since(), None, Phase.FINGERPRINT, EventStatus.DONE))
    listener(Event(since(), None, Phase.LOOKUP, EventStatus.START, f"{len(images)} images"))
    answers = _Answers(repo, specs, docker, engine)
    found = answers.found
    requested: set[str] = set()
    released: set[str] = set()

    with single_error():
        async with anyio.create_task_group() as tg:
            while True:
                missing: set[str] = set()
                decisions = decide(
                    workflow, images, targets, specs, found, force=force, missing=missing, only=only
                )
                final = settled_decisions(repo.graph, order, decisions, found, missing, released)
                if final:
                    released.update(final)
                    if release is not None:
                        release(final, decisions, found)
                if not missing:
                    break
                ask = missing - requested
                if ask and requested:  # after the targets: all below what builds need
                    ask = {i.name for i in repo.resolve(ask)} - requested - found.keys()
                if ask:
                    requested.update(ask)
                    tg.start_soon(answers.look_up, [n for n in order if n in ask])
                await answers.changed()
            tg.cancel_scope.cancel()  # lookups nothing needs any more
    listener(Event(since(), None, Phase.LOOKUP, EventStatus.DONE, f"{len(found)} looked up"))
    return RunPlan(
        workflow,
        decisions,
        found,
        {name: fingerprint_of(specs[name]) for name in decisions},
        {name: repo.image(name).dependencies for name in decisions},
        {name: repo.image(name).manifest.publish for name in decisions},
    )


async def plan_workflow(
    repo: Repository,
    workflow: Workflow,
    targets: Iterable[str],
    *,
    cache_dir: Path,
    force: bool = False,
    docker: Engine | None = None,
    client: RegistryClient | None = None,
    tiers: Iterable[str] = TIER_ORDER,
    options: RunOptions | None = None,
) -> RunPlan:
    """What :func:`run_workflow` would do, with the same lookups, doing nothing
    (with a pool: also the engine each build would go to)."""
    options = options or RunOptions()
    targets = list(dict.fromkeys(targets))
    platform = run_platform(repo)

    async def fingerprint() -> None:
        await repo.fingerprints(targets)  # (the plan takes them from the repository)

    async with _services(
        cache_dir,
        docker,
        client,
        tiers,
        options,
        platform,
        registry=registry_host(repo),
        alongside=fingerprint,
    ) as services:
        await _check_fingerprints(repo, options)
        plan = await _plan(
            repo,
            workflow,
            targets,
            services.home,
            services.lookups,
            force=force,
            only=None if options.only is None else frozenset(options.only),
        )
        plan = replace(plan, step=options.step)
        if not services.configured:
            return plan
        history = BuildHistory.load(cache_dir)
        specs = {name: decision.spec for name, decision in plan.decisions.items()}
        planned = jobs(
            plan.decisions,
            repo.images,
            estimates=build_estimates(repo, specs, history),
            registry="",
            found=plan.found,
            **_job_settings(repo, workflow, targets, options, platform),
        )
        return replace(plan, placement=predict_placement(planned, services.slots()))


@dataclass
class _RunEvents:
    """Where a run's events go: its step recorder, the log, and the caller's listener.

    Scheduler events carry times from the scheduler's own start: ``offset``
    (seconds since the run started, set when the scheduler starts) moves
    them onto the run's clock.
    """

    listener: Listener
    started: float = field(default_factory=time.perf_counter)
    recorder: StepRecorder = field(default_factory=StepRecorder)
    fingerprints: dict[str, str] = field(default_factory=dict)
    offset: float = 0.0

    def since(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    async def fingerprint(self, repo: Repository, targets: list[str]) -> dict[str, str]:
        """The specs of the targets and their dependencies, the work shown as a step."""
        self.tee(
            Event(
                self.since(), None, Phase.FINGERPRINT, EventStatus.START, f"{len(targets)} targets"
            )
        )
        specs = await repo.specs(targets)
        self.tee(Event(self.since(), None, Phase.FINGERPRINT, EventStatus.DONE))
        self.fingerprints.update((n, fingerprint_of(spec)) for n, spec in specs.items())
        return specs

    def tee(self, event: Event) -> None:
        """One event, on the run's clock, to the recorder, the log and the listener
        (its detail without credentials: it reaches reports and the terminal)."""
        if event.detail:
            event = replace(event, detail=logs.redact_text(event.detail))
        self.recorder(event)
        if event.status != "line":  # the worker logs output lines itself, at debug level
            # Info level, failures too: at the default level the progress view
            # reports them; -v adds these structured events.
            logs.get_logger().info(
                f"{event.phase} {event.status}",
                image=event.image,
                fingerprint=self.fingerprints.get(event.image or ""),
                phase=event.phase,
                status=event.status,
                detail=event.detail or None,
            )
        self.listener(event)

    def shifted(self, event: Event) -> None:
        """A scheduler event, moved onto the run's clock."""
        self.tee(replace(event, at=event.at + self.offset))

    def record_lookups(self, engine: LookupEngine, origin: float) -> None:
        """Each lookup span as a step (span times count from ``origin``)."""
        for span in engine.spans:
            self.recorder.add(
                Interval(
                    f"lookup: {span.tier}",
                    span.spec.rsplit("/", 1)[-1],
                    "lookup",
                    span.start + origin,
                    span.end + origin,
                    span.status,
                )
            )


def build_estimates(
    repo: Repository, names: Iterable[str], history: BuildHistory
) -> dict[str, float]:
    """Expected build seconds of each image, from the build history."""
    return {
        name: history.estimate(name, cargo=bool(repo.image(name).manifest.cargo_builds))
        for name in names
    }


def _job_settings(
    repo: Repository, workflow: Workflow, targets: Sequence[str], options: RunOptions, platform: str
) -> dict[str, Any]:
    """What jobs() needs to know of the pool: homes, platform, transfers."""
    return {
        "homes": _homes(repo, workflow, targets),
        "platform": platform,
        "transfer": options.transfer_registry is not None,
    }


async def _builder(options: RunOptions, pooled: bool) -> BuildxBuilder | None:
    """``docker buildx`` when asked for (checked to be installed), else None."""
    if options.builder != "buildx":
        return None
    if pooled:
        raise UsageError("--builder buildx drives the local docker CLI; it takes no --engine")
    from ..engine.buildx import BuildxBuilder

    buildx = BuildxBuilder()
    await buildx.check()
    return buildx


async def run_workflow(
    repo: Repository,
    workflow: Workflow,
    targets: Iterable[str],
    *,
    cache_dir: Path,
    options: RunOptions | None = None,
    docker: Engine | None = None,
    client: RegistryClient | None = None,
    listener: Listener = ignore,
    worker_factory: Callable[..., Worker] | None = None,
) -> RunResult:
    """Make the targets available (acquire), published (ensure) or rebuilt (build).

    The steps: plan (fingerprints, lookups, decisions), jobs (estimated from
    the build history), the scheduler over a worker, then the history and
    the disk tier learn what the run did. A pull that meets "manifest
    unknown" (a tag deleted since it was seen, or a registry whose ``HEAD``
    and ``GET`` disagree) makes that tag absent for the run, and the images
    that failed for it are decided again, now confirming every answer of the
    lookup cache with the registry (at most :data:`ROUNDS` rounds in all).
    """
    options = options or RunOptions()
    targets = list(dict.fromkeys(targets))
    events = _RunEvents(listener)
    platform = run_platform(repo)
    confirm = options.confirms(workflow)
    # The lookup engine is created first thing inside _services: its span
    # times count from (about) now.
    engine_origin = events.since()
    specs: dict[str, str] = {}

    async def fingerprint() -> None:
        specs.update(await events.fingerprint(repo, targets))

    async with _services(
        cache_dir,
        docker,
        client,
        options.tiers,
        options,
        platform,
        confirm,
        registry=registry_host(repo),
        alongside=fingerprint,
    ) as services:
        await _check_fingerprints(repo, options)
        history = BuildHistory.load(cache_dir)
        rounds: list[_Round] = []
        stale: set[str] = set()
        while True:
            done = await _run_round(
                repo, workflow, targets, specs, services, options, events, history,
                worker_factory, frozenset(stale), cache_dir, platform,
                {n for r in rounds for n, load in r.scheduler.load.items() if load.lost},
            )  # fmt: skip
            rounds.append(done)
            fresh = done.stale - stale
            if not fresh or len(rounds) >= ROUNDS:
                break
            # Where one tag went, others may have gone (a retention policy): the
            # next round asks the registry about everything the cache vouches for.
            services.lookups.confirm_from_now()
            for spec in sorted(fresh):
                logs.warning(
                    f"{spec}: the registry no longer has it (seen present before); building it"
                )
                await services.lookups.found_absent(spec)
            stale |= fresh
        events.record_lookups(services.lookups, engine_origin)
        plan, outcomes = _merged(rounds)
        worker = rounds[-1].worker
        _learn(history, {k: v for r in rounds for k, v in r.build_seconds.items()})
        await _remember_pushed(services.lookups, outcomes, specs)
        await _mark_failures(services.client, options, outcomes, specs)
        engines = _engine_reports(services, [r.scheduler for r in rounds], platform)
    waits: Mapping[str, float] = getattr(worker, "waited", {})
    results = {
        name: replace(_result(decision, outcomes[name], events.offset), awaited=waits.get(name))
        for name, decision in plan.decisions.items()
        if name in outcomes
    }
    steps = tuple(sorted(events.recorder.steps, key=lambda s: (s.start, s.track)))
    engine = services.lookups
    return RunResult(
        workflow,
        results,
        events.since(),
        plan,
        steps,
        engine.statistics(),
        dict(engine.requests),
        engines,
        options.step,
    )


#: How many times a run decides at most: once, and again for the images that
#: failed because a tag it was told of was gone (a registry whose HEAD lies
#: may need one round per level of a chain).
ROUNDS = 3


@dataclass(frozen=True)
class _Round:
    """One pass of decisions and work over a run's targets."""

    plan: RunPlan
    scheduler: Scheduler
    worker: Worker
    outcomes: Mapping[str, Outcome]
    #: Specs a pull or push found missing although lookups said present.
    stale: AbstractSet[str]
    build_seconds: Mapping[str, float]


def _merged(rounds: Sequence[_Round]) -> tuple[RunPlan, dict[str, Outcome]]:
    """One plan and outcome per image: an image's first round that did not fail it."""
    plan = rounds[0].plan
    decisions = dict(plan.decisions)
    found = dict(plan.found)
    outcomes = dict(rounds[0].outcomes)
    for later in rounds[1:]:
        for name, outcome in later.outcomes.items():
            if name not in outcomes or outcomes[name].action in ("failed", "skipped"):
                outcomes[name] = outcome
                decisions[name] = later.plan.decisions[name]
                found[name] = later.plan.found[name]
    return replace(plan, decisions=decisions, found=found), outcomes


async def _run_round(
    repo: Repository,
    workflow: Workflow,
    targets: list[str],
    specs: Mapping[str, str],
    services: _Services,
    options: RunOptions,
    events: _RunEvents,
    history: BuildHistory,
    worker_factory: Callable[..., Worker] | None,
    stale: AbstractSet[str],
    cache_dir: Path,
    platform: str,
    lost: AbstractSet[str],
) -> _Round:
    """Decide and do the work of every target once (``stale``: specs known absent;
    ``lost``: engines an earlier round lost)."""
    from ..builds.worker import EngineWorker

    home, registry_client, engine = services.home, services.client, services.lookups
    # Filled as decisions are released: forced rebuilds, images other steps build.
    rebuild, awaited = set[str](), set[str]()
    extra = _worker_arguments(services, options, awaited)
    if stale:
        extra["absent"] = stale
    worker = (worker_factory or EngineWorker)(
        repo=repo,
        specs=specs,
        docker=home,
        client=registry_client,
        cache_dir=cache_dir,
        cache_registry=options.cache_registry,
        buildx=await _builder(options, services.configured),
        listener=events.shifted,
        rebuild=rebuild,
        **extra,
    )
    limits = RunLimits(jobs=options.jobs, transfers=options.transfers, fail_fast=options.fail_fast)
    scheduler = Scheduler(
        [], worker, limits, engines=services.slots(lost), listener=events.shifted, open_ended=True
    )
    estimates = build_estimates(repo, specs, history)
    registry = parse_reference(next(iter(specs.values()))).api_host if specs else ""
    settings = _job_settings(repo, workflow, targets, options, platform)
    forced = set(targets) if options.force else set()

    def release(
        names: Sequence[str], decisions: Mapping[str, Decision], found: Mapping[str, Found]
    ) -> None:
        # A build of an image an engine has is a forced rebuild (build --force).
        rebuild.update(n for n in names if found[n].local or n in forced)
        awaited.update(n for n in names if decisions[n].reason == AWAITED)
        scheduler.add(
            jobs(
                decisions,
                repo.images,
                estimates=estimates,
                registry=registry,
                names=names,
                found=found,
                **settings,
            )
        )

    # The work starts as decisions become final, while lookups go on.
    events.offset = events.since()
    try:
        with single_error():
            async with anyio.create_task_group() as tg:
                tg.start_soon(scheduler.run)
                try:
                    plan = await _plan(
                        repo,
                        workflow,
                        targets,
                        home,
                        engine,
                        force=options.force,
                        listener=events.tee,
                        since=events.since,
                        release=release,
                        fingerprinted=True,
                        only=None if options.only is None else frozenset(options.only),
                    )
                finally:
                    scheduler.close()
    finally:
        events.recorder.finish(events.since())
        closing = getattr(worker, "aclose", None)
        if closing is not None:
            await closing()
    return _Round(
        plan,
        scheduler,
        worker,
        scheduler.outcomes(),
        frozenset(getattr(worker, "stale", ())),
        dict(getattr(worker, "build_seconds", {})),
    )


def _worker_arguments(
    services: _Services, options: RunOptions, awaited: AbstractSet[str]
) -> dict[str, Any]:
    """The worker's pool and CI-step arguments (only when used: fakes take neither)."""
    arguments: dict[str, Any] = {}
    if services.configured:
        arguments["pool"] = {m.name: m.engine for m in services.members}
        arguments["transfer_registry"] = options.transfer_registry
    if options.only is not None:
        arguments["awaited"] = awaited
        arguments["wait"] = options.wait
        arguments["pipeline_run"] = options.pipeline_run
    return arguments


def _engine_reports(
    services: _Services, schedulers: Sequence[Scheduler], platform: str
) -> dict[str, EngineReport]:
    """What each engine did over every round of the run."""
    return {
        m.name: EngineReport(
            m.url,
            m.platform or platform,
            m.slots,
            sum(s.load[m.name].builds for s in schedulers if m.name in s.load),
            sum(s.load[m.name].busy_seconds for s in schedulers if m.name in s.load),
            sum(s.load[m.name].transfers for s in schedulers if m.name in s.load),
            next(
                (
                    s.load[m.name].lost
                    for s in schedulers
                    if m.name in s.load and s.load[m.name].lost
                ),
                "",
            ),
            services.configured,
        )
        for m in services.members
    }


async def _check_fingerprints(repo: Repository, options: RunOptions) -> None:
    """A CI step's images must fingerprint as the pipeline expects (same commit)."""
    if not options.only:
        return
    unknown = sorted(set(options.only) - set(repo.images))
    if unknown:
        raise UsageError(f"--only {unknown[0]}: no such image in {repo.root}")
    specs = await repo.specs(list(options.only))
    for name, expected in options.only.items():
        actual = fingerprint_of(specs[name])
        if expected and actual != expected:
            raise UsageError(
                f"image {name}: this checkout fingerprints it as {actual}, the pipeline expects"
                f" {expected}; the agents are on different commits (regenerate the pipeline)"
            )


def run_platform(repo: Repository) -> str:
    """The platform every build of the run is for (``linux/amd64``)."""
    from ..builds.worker import GO_ARCH

    return f"linux/{GO_ARCH[repo.options.arch]}"


def _homes(repo: Repository, workflow: Workflow, targets: Sequence[str]) -> frozenset[str]:
    """Targets that must end in the home engine: all but the ones ``ensure`` publishes."""
    return frozenset(
        name
        for name in targets
        if workflow is not Workflow.ENSURE or not repo.image(name).manifest.publish
    )


def _result(decision: Decision, outcome: Outcome, offset: float) -> ImageResult:
    """One image's result (``offset``: the scheduler's start on the run's clock)."""
    return ImageResult(
        name=decision.name,
        spec=decision.spec,
        action=outcome.action,
        pushed=outcome.pushed,
        seconds=outcome.seconds,
        reason=decision.reason,
        tier=decision.tier,
        error=logs.redact_text(outcome.error),
        note=logs.redact_text(outcome.note),
        engine=outcome.engine,
        landed=None if outcome.landed is None else outcome.landed + offset,
    )


def _learn(history: BuildHistory, seconds: Mapping[str, float]) -> None:
    """Fold the run's measured build seconds into the history and save it."""
    for name, value in seconds.items():
        history.record(name, value)
    history.save()


async def _mark_failures(
    client: RegistryClient,
    options: RunOptions,
    outcomes: Mapping[str, Outcome],
    specs: Mapping[str, str],
) -> None:
    """A CI step's own images that failed get a failure marker in the registry, so the
    steps awaiting them stop at once (best effort: a warning when it cannot)."""
    if not options.only:
        return
    writer = RegistryWriter(client)
    for name in options.only:
        outcome = outcomes.get(name)
        if outcome is None or outcome.action not in ("failed", "skipped"):
            continue
        with anyio.move_on_after(MARK_SECONDS) as scope:
            await _mark_failed(writer, name, specs[name], options, outcome)
        if scope.cancelled_caught:
            logs.warning(
                f"{name}: could not mark it failed for the steps awaiting it: no answer from"
                f" the registry in {MARK_SECONDS:g} s"
            )


#: Seconds a CI step's failure marker may take to write (best effort).
MARK_SECONDS = 10.0


async def _mark_failed(
    writer: RegistryWriter, name: str, spec: str, options: RunOptions, outcome: Outcome
) -> None:
    from ..builds.markers import mark_failed

    try:
        await mark_failed(writer, spec, options.step or "?", outcome.error, options.pipeline_run)
    except MzbuildError as exc:
        logs.warning(f"{name}: could not mark it failed for the steps awaiting it: {exc}")


async def _remember_pushed(
    engine: LookupEngine, outcomes: Mapping[str, Outcome], specs: Mapping[str, str]
) -> None:
    """Record pushed specs as published in the disk tier, for the next run."""
    disk = engine.tier("disk")
    if not isinstance(disk, DiskTier):
        return
    for name, outcome in outcomes.items():
        if outcome.pushed:
            await disk.record(specs[name], Status.PRESENT)
