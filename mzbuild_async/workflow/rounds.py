"""One round of a run (decisions and work over every target), and what rounds leave
behind: merged outcomes, engine reports, learned build times, pushed specs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from ..builds.decisions import AWAITED, Decision, Found, Workflow, jobs
from ..builds.jobs import RunWorker
from ..builds.links import Links
from ..builds.scheduler import Outcome, RunLimits, Scheduler
from ..errors import single_error
from ..lookup.disk import DiskTier
from ..lookup.lookups import Lookups
from ..model.status import Status
from ..registry.names import parse_reference
from ..registry.writer import RegistryWriter
from ..release.mirrors import restore
from ..source.repository import Repository
from ..store.history import BuildHistory
from ..store.links import LinkHistory
from ..support import logs
from .events import RunEvents
from .options import RunOptions
from .results import EngineReport, RunPlan
from .services import Services, open_builder
from .walk import build_estimates, job_settings, walk

#: How many times a run decides at most: once, and again for the images that
#: failed because a tag it was told of was gone (a registry whose HEAD lies
#: may need one round per level of a chain).
ROUNDS = 3


@dataclass(frozen=True)
class Round:
    """One pass of decisions and work over a run's targets."""

    plan: RunPlan
    scheduler: Scheduler
    worker: RunWorker
    outcomes: Mapping[str, Outcome]
    #: Specs a pull or push found missing although lookups said present.
    stale: AbstractSet[str]
    build_seconds: Mapping[str, float]


def merged(rounds: Sequence[Round]) -> tuple[RunPlan, dict[str, Outcome]]:
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


@dataclass(frozen=True)
class Run:
    """What every round of one run shares."""

    repo: Repository
    workflow: Workflow
    targets: list[str]
    #: Each target's spec (filled while the services open: read only once they have).
    specs: Mapping[str, str]
    services: Services
    options: RunOptions
    events: RunEvents
    history: BuildHistory
    cache_dir: Path
    platform: str
    #: Makes the round's worker (None: :class:`~..builds.worker.EngineWorker`).
    worker_factory: Callable[..., RunWorker] | None = None
    #: Link rates and image bytes: what earlier runs learned, and this one learns.
    links: Links = field(default_factory=Links)


async def run_rounds(run: Run) -> list[Round]:
    """Rounds until no tag the run was told of turns out gone (at most :data:`ROUNDS`).

    Where one tag went, others may have gone (a retention policy): the next
    round asks the registry about everything the cache vouches for.
    """
    rounds: list[Round] = []
    stale: set[str] = set()
    while True:
        lost = {n for r in rounds for n, load in r.scheduler.load.items() if load.lost}
        done = await run_round(run, stale=frozenset(stale), lost=lost)
        rounds.append(done)
        fresh = done.stale - stale
        if not fresh or len(rounds) >= ROUNDS:
            return rounds
        run.services.lookups.confirm_from_now()
        for spec in sorted(fresh):
            logs.warning(
                f"{spec}: the registry no longer has it (seen present before); building it"
            )
            await run.services.lookups.found_absent(spec)
        stale |= fresh


async def run_round(run: Run, *, stale: AbstractSet[str], lost: AbstractSet[str]) -> Round:
    """Decide and do the work of every target once (``stale``: specs known absent;
    ``lost``: engines an earlier round lost)."""
    from ..builds.worker import EngineWorker

    repo, workflow, targets, specs = run.repo, run.workflow, run.targets, run.specs
    services, options, events = run.services, run.options, run.events
    home, registry_client, engine = services.home, services.client, services.lookups
    # Filled as decisions are released: forced rebuilds, images other steps build.
    rebuild, awaited, unanswered = set[str](), set[str](), set[str]()
    # A CI step's --wait runs from here: the awaited images' lookups count to it.
    wait_until = anyio.current_time() + options.wait if options.only is not None else None
    extra = worker_arguments(services, options, awaited, wait_until, unanswered)
    if stale:
        extra["absent"] = stale
    worker = (run.worker_factory or EngineWorker)(
        repo=repo,
        specs=specs,
        docker=home,
        client=registry_client,
        cache_dir=run.cache_dir,
        cache_registry=options.cache_registry,
        buildx=await open_builder(options, services.configured),
        listener=events.now,
        rebuild=rebuild,
        environ=options.environ,
        **extra,
    )
    limits = RunLimits(jobs=options.jobs, transfers=options.transfers, fail_fast=options.fail_fast)
    scheduler = Scheduler(
        [],
        worker,
        limits,
        engines=services.slots(lost),
        listener=events.now,
        open_ended=True,
        links=run.links,
    )
    estimates = build_estimates(repo, specs, run.history)
    registry = parse_reference(next(iter(specs.values()))).api_host if specs else ""
    settings = job_settings(repo, workflow, targets, options, run.platform)
    forced = set(targets) if options.force else set()

    def release(
        names: Sequence[str], decisions: Mapping[str, Decision], found: Mapping[str, Found]
    ) -> None:
        # A build of an image an engine has is a forced rebuild (build --force).
        rebuild.update(n for n in names if found[n].local or n in forced)
        awaited.update(n for n in names if decisions[n].reason == AWAITED)
        unanswered.update(n for n in names if decisions[n].reason == AWAITED and found[n].unknown)
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
                    plan = await walk(
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
                        wait_until=wait_until,
                        mirrors=options.mirrors,
                        restore=partial(restore, RegistryWriter(registry_client)),
                    )
                finally:
                    scheduler.close()
    finally:
        events.recorder.finish(events.since())
        await worker.aclose()
    return Round(
        plan,
        scheduler,
        worker,
        scheduler.outcomes(),
        frozenset(worker.stale),
        dict(worker.build_seconds),
    )


def worker_arguments(
    services: Services,
    options: RunOptions,
    awaited: AbstractSet[str],
    wait_until: float | None = None,
    unanswered: AbstractSet[str] = frozenset(),
) -> dict[str, Any]:
    """The worker's pool and CI-step arguments (only when used: fakes take neither)."""
    arguments: dict[str, Any] = {}
    if options.secrets:
        arguments["secrets"] = options.secrets
    if options.ssh:
        arguments["ssh"] = options.ssh
    if options.base_mirrors:
        arguments["base_mirrors"] = options.base_mirrors
    if services.configured:
        arguments["pool"] = {m.name: m.engine for m in services.members}
        arguments["transfer_registry"] = options.transfer_registry
    if options.only is not None:
        arguments["awaited"] = awaited
        arguments["wait"] = options.wait
        arguments["wait_until"] = wait_until
        arguments["unanswered"] = unanswered
        arguments["pipeline_run"] = options.pipeline_run
    return arguments


def engine_reports(
    services: Services, schedulers: Sequence[Scheduler], platform: str
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


def learn(history: BuildHistory, seconds: Mapping[str, float]) -> None:
    """Fold the run's measured build seconds into the history and save it."""
    for name, value in seconds.items():
        history.record(name, value)
    history.save()


def load_links(cache_dir: Path) -> tuple[LinkHistory, Links]:
    """What earlier runs learned of the pool's links, as the run's starting point."""
    kept = LinkHistory.load(cache_dir)
    return kept, Links(dict(kept.rates), dict(kept.sizes))


def learn_links(kept: LinkHistory, links: Links) -> None:
    """Keep what the run learned of its links (when it moved anything between engines)."""
    if links.moved or links.sizes != kept.sizes:
        kept.save(links.rates, links.sizes, links.moved)


async def remember_pushed(
    engine: Lookups, outcomes: Mapping[str, Outcome], specs: Mapping[str, str]
) -> None:
    """Record pushed specs as published in the disk tier, for the next run."""
    disk = engine.tier("disk")
    if not isinstance(disk, DiskTier):
        return
    for name, outcome in outcomes.items():
        if outcome.pushed:
            await disk.record(specs[name], Status.PRESENT)
    await disk.flush()
