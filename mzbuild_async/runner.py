"""One run of a workflow: fingerprints, lookups, decisions, then the scheduler.

``run_workflow`` is the API behind ``acquire``, ``ensure`` and ``build``:
it fingerprints the targets and their dependencies, asks the local engine
and the registry about every one of them at once, decides each image's
work (:mod:`.plan`) and hands the jobs to the :class:`Scheduler` with the
real :class:`EngineWorker`. The result is a value; the CLI prints it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from . import logs
from .builders.docker import DockerEngine
from .cache.disk import DiskTier
from .events import Event, Listener, ignore
from .history import BuildHistory
from .lookup import Answer, LookupEngine, TierStatistics
from .manifest import CargoBuild
from .plan import Decision, Found, Workflow, decide, jobs
from .registry.client import RegistryClient, Status
from .registry.names import parse_reference
from .report.steps import Step, StepRecorder
from .repository import Repository
from .scheduler import DEFAULT_TRANSFERS, Action, Limits, Outcome, Scheduler, Worker, default_jobs

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

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` record of this image."""
        record: dict[str, Any] = {
            "spec": self.spec,
            "action": self.action,
            "pushed": self.pushed,
            "seconds": round(self.seconds, 3),
            "reason": self.reason,
            "tier": self.tier,
        }
        if self.error:
            record["error"] = self.error
        if self.note:
            record["note"] = self.note
        return record


@dataclass(frozen=True)
class RunResult:
    """Every image of a run, dependencies first."""

    workflow: Workflow
    images: Mapping[str, ImageResult]
    seconds: float
    plan: RunPlan | None = None
    #: Every piece of work with its times since the run started.
    steps: tuple[Step, ...] = ()
    #: Per lookup tier: count and latencies (seconds).
    lookups: Mapping[str, TierStatistics] = field(default_factory=dict)
    #: HTTP requests sent, by registry host.
    requests: Mapping[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every image ended as wanted."""
        return all(r.action not in ("failed", "skipped") for r in self.images.values())

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        return {
            "workflow": self.workflow.value,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "images": {name: r.to_json() for name, r in self.images.items()},
        }


async def lookup_all(
    repo: Repository,
    names: Iterable[str],
    specs: Mapping[str, str],
    docker: DockerEngine,
    engine: LookupEngine,
) -> dict[str, Found]:
    """Local and published state of every image, all asked at once."""
    names = list(names)
    local: dict[str, bool] = {}
    answers: dict[str, Answer] = {}
    publishable = [specs[n] for n in names if repo.image(n).manifest.publish]

    async def check_local(name: str) -> None:
        local[name] = await docker.exists(specs[name])

    async def check_published() -> None:
        answers.update(await engine.lookup_many(publishable))

    async with anyio.create_task_group() as tg:
        for name in names:
            tg.start_soon(check_local, name)
        tg.start_soon(check_published)
    found: dict[str, Found] = {}
    for name in names:
        answer = answers.get(specs[name])
        if answer is None:
            found[name] = Found(local[name], False)
            continue
        found[name] = Found(
            local[name],
            answer.status is Status.PRESENT,
            answer.tier,
            unknown=answer.status is Status.UNKNOWN,
        )
    return found


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
        return {"workflow": self.workflow.value, "images": images}


@asynccontextmanager
async def _services(
    cache_dir: Path, docker: DockerEngine | None, client: RegistryClient | None
) -> AsyncIterator[tuple[DockerEngine, RegistryClient, LookupEngine]]:
    """The engine connection and lookup engine of a run, closed at the end."""
    own_docker = docker is None
    docker = docker or DockerEngine()
    client = client or RegistryClient()
    engine = LookupEngine.create(tiers=PUBLISHED_TIERS, client=client, cache_dir=cache_dir)
    try:
        await docker.ping()
        yield docker, client, engine
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()
            if own_docker:
                await docker.aclose()


async def _plan(
    repo: Repository,
    workflow: Workflow,
    targets: list[str],
    docker: DockerEngine,
    engine: LookupEngine,
    *,
    force: bool,
    listener: Listener = ignore,
    since: Callable[[], float] = lambda: 0.0,
) -> RunPlan:
    images = repo.resolve(targets)
    listener(Event(since(), None, "fingerprint", "start", f"{len(images)} images"))
    specs = await repo.specs(targets)
    listener(Event(since(), None, "fingerprint", "done"))
    listener(Event(since(), None, "lookup", "start", f"{len(images)} images"))
    found = await lookup_all(repo, [i.name for i in images], specs, docker, engine)
    listener(Event(since(), None, "lookup", "done"))
    decisions = decide(workflow, images, targets, specs, found, force=force)
    return RunPlan(
        workflow,
        decisions,
        found,
        {name: specs[name].rsplit(":mzbuild-", 1)[-1] for name in decisions},
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
    docker: DockerEngine | None = None,
    client: RegistryClient | None = None,
) -> RunPlan:
    """What :func:`run_workflow` would do, with the same lookups, doing nothing."""
    async with _services(cache_dir, docker, client) as (engine_api, _client, engine):
        return await _plan(
            repo, workflow, list(dict.fromkeys(targets)), engine_api, engine, force=force
        )


async def run_workflow(
    repo: Repository,
    workflow: Workflow,
    targets: Iterable[str],
    *,
    cache_dir: Path,
    options: RunOptions | None = None,
    docker: DockerEngine | None = None,
    client: RegistryClient | None = None,
    listener: Listener = ignore,
    worker_factory: Callable[..., Worker] | None = None,
) -> RunResult:
    """Make the targets available (acquire), published (ensure) or rebuilt (build)."""
    from .builders.buildx import BuildxBuilder
    from .builders.worker import EngineWorker

    options = options or RunOptions()
    started = time.perf_counter()
    targets = list(dict.fromkeys(targets))
    recorder = StepRecorder()

    def since() -> float:
        return time.perf_counter() - started

    fingerprints: dict[str, str] = {}
    log = logs.get_logger()

    def log_event(event: Event) -> None:
        if event.status == "line":
            return  # the worker logs output lines itself, at debug level
        # Info level, failures too: at the default level the progress view
        # reports them; -v adds these structured events.
        log.info(
            f"{event.phase} {event.status}",
            image=event.image,
            fingerprint=fingerprints.get(event.image or ""),
            phase=event.phase,
            status=event.status,
            detail=event.detail or None,
        )

    def tee(event: Event) -> None:
        recorder(event)
        log_event(event)
        listener(event)

    offset = 0.0

    def shifted(event: Event) -> None:
        tee(replace(event, at=event.at + offset))

    # The lookup engine is created first thing inside _services: its span
    # times count from (about) now.
    engine_origin = since()
    async with _services(cache_dir, docker, client) as (engine_api, registry_client, engine):
        plan = await _plan(
            repo,
            workflow,
            targets,
            engine_api,
            engine,
            force=options.force,
            listener=tee,
            since=since,
        )
        fingerprints.update(plan.fingerprints)
        for span in engine.spans:
            recorder.add(
                Step(
                    f"lookup: {span.tier}",
                    span.spec.rsplit("/", 1)[-1],
                    "lookup",
                    span.start + engine_origin,
                    span.end + engine_origin,
                    span.status,
                )
            )
        decisions = plan.decisions
        specs = {name: d.spec for name, d in decisions.items()}
        history = BuildHistory.load(cache_dir)
        estimates = {
            name: history.estimate(
                name,
                cargo=any(isinstance(p, CargoBuild) for p in repo.image(name).manifest.pre_images),
            )
            for name in decisions
        }
        registry = parse_reference(next(iter(specs.values()))).api_host if specs else ""
        job_list = jobs(decisions, repo.images, estimates=estimates, registry=registry)
        buildx = None
        if options.builder == "buildx":
            buildx = BuildxBuilder()
            await buildx.check()
        factory = worker_factory or EngineWorker
        worker = factory(
            repo=repo,
            specs=specs,
            docker=engine_api,
            client=registry_client,
            cache_dir=cache_dir,
            cache_registry=options.cache_registry,
            buildx=buildx,
            listener=shifted,
            rebuild=frozenset(name for name in decisions if plan.found[name].local),
        )
        limits = Limits(jobs=options.jobs, transfers=options.transfers, fail_fast=options.fail_fast)
        offset = since()
        try:
            outcomes = await Scheduler(job_list, worker, limits, listener=shifted).run()
        finally:
            recorder.finish(since())
        for name, seconds in getattr(worker, "build_seconds", {}).items():
            history.record(name, seconds)
        history.save()
        await _remember_pushed(engine, outcomes, specs)
        lookups = engine.statistics()
        requests = dict(engine.requests)
    results = {
        name: _result(decisions[name], outcomes[name]) for name in decisions if name in outcomes
    }
    steps = tuple(sorted(recorder.steps, key=lambda s: (s.start, s.track)))
    return RunResult(
        workflow, results, time.perf_counter() - started, plan, steps, lookups, requests
    )


def _result(decision: Decision, outcome: Outcome) -> ImageResult:
    return ImageResult(
        name=decision.name,
        spec=decision.spec,
        action=outcome.action,
        pushed=outcome.pushed,
        seconds=outcome.seconds,
        reason=decision.reason,
        tier=decision.tier,
        error=outcome.error,
        note=outcome.note,
    )


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
