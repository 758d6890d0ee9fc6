"""``acquire``, ``ensure``, ``build`` and ``run``: the recipe of one run.

:func:`run_workflow` opens the run's services (:mod:`.services`) while it
fingerprints, then runs rounds (:mod:`.rounds`: decisions released as they
become final, :mod:`.walk`, with the scheduler working meanwhile) until no
tag it was told of turns out gone, and returns a :class:`RunResult`. The
CLI renders it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from ..attest.dsse import KeySigner
from ..builds.plan import Workflow
from ..builds.scheduler import Worker
from ..engine.endpoints import Endpoint
from ..engine.factory import open_engine
from ..engine.protocol import Engine
from ..registry.client import RegistryClient
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from ..store.history import BuildHistory
from ..support import logs
from ..support.events import Listener, ignore
from .attest import attest_images, build_windows
from .ci_steps import check_fingerprints, mark_failures
from .events import RunEvents
from .options import RunOptions
from .publish import primary_state, publish_to_mirrors
from .results import (
    RunResult,
    attested_result,
    descriptor_of,
    image_result,
    mirrored_result,
    published_result,
)
from .rounds import ROUNDS, Round, engine_reports, learn, merged, remember_pushed, run_round
from .services import open_services, registry_host, run_platform
from .settings import RegistrySettings
from .verify import holding


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
    events = RunEvents(listener)
    platform = run_platform(repo)
    confirm = options.confirms(workflow)
    # The lookup engine is created first thing inside open_services: its span
    # times count from (about) now.
    engine_origin = events.since()
    specs: dict[str, str] = {}

    async def fingerprint() -> None:
        specs.update(await events.fingerprint(repo, targets))

    async with open_services(
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
        await check_fingerprints(repo, options)
        history = BuildHistory.load(cache_dir)
        rounds: list[Round] = []
        stale: set[str] = set()
        while True:
            done = await run_round(
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
        plan, outcomes = merged(rounds)
        worker = rounds[-1].worker
        learn(history, {k: v for r in rounds for k, v in r.build_seconds.items()})
        await remember_pushed(services.lookups, outcomes, specs)
        await mark_failures(services.client, options, outcomes, specs)
        engines = engine_reports(services, [r.scheduler for r in rounds], platform)
        waits: Mapping[str, float] = getattr(worker, "waited", {})
        ran_out: set[str] = getattr(worker, "timed_out", set())
        pushed: Mapping[str, tuple[str, int]] = getattr(worker, "digests", {})
        results = {
            name: published_result(
                replace(
                    image_result(decision, outcomes[name], events.offset),
                    awaited=waits.get(name),
                    wait_ran_out=name in ran_out and outcomes[name].action == "failed",
                ),
                repo.options.image_registry,
                primary_state(outcomes[name], plan.found.get(name)),
                pushed.get(name) or descriptor_of(plan.found.get(name)),
            )
            for name, decision in plan.decisions.items()
            if name in outcomes
        }
        steps = tuple(sorted(events.recorder.steps, key=lambda s: (s.start, s.track)))
        if options.attest and workflow is Workflow.ENSURE:  # (before the mirrors: they copy it)
            keys = [s.public for s in options.signers if isinstance(s, KeySigner)]
            holds = (
                holding(repo, RegistryWriter(services.client), keys)
                if options.require_attested
                else None
            )
            attested = await attest_images(
                services.client, repo, results, options.signers, options.environ,
                found_too=True, windows=build_windows(steps, events.since()),
                holds=holds,
                keyless=options.keyless,
                image_id=services.image_id,
            )  # fmt: skip
            results = {n: attested_result(r, attested.get(n)) for n, r in results.items()}
        mirrored = await publish_to_mirrors(
            services.client, workflow, repo, targets, plan, outcomes, options.mirrors
        )
        results = {n: mirrored_result(r, mirrored.get(n)) for n, r in results.items()}
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
        platform,
    )


async def run_container(
    spec: str, argv: Sequence[str], home: Endpoint | None, write: Callable[[bytes], None]
) -> int:
    """``run``: run ``spec`` where acquire left it, the home engine (the local one
    without a pool); its output goes to ``write``; the container's exit status."""
    docker = open_engine(home)
    try:
        return await docker.run(spec, list(argv), write)
    finally:
        await docker.aclose()


async def run_configured(
    repo: Repository,
    workflow: Workflow,
    targets: Iterable[str],
    *,
    registry: RegistrySettings,
    cache_dir: Path,
    options: RunOptions,
    listener: Listener = ignore,
) -> RunResult:
    """:func:`run_workflow` with a registry client made from ``registry``; the
    hosts' challenges are saved for the next run."""
    async with registry.session(cache_dir) as client:
        result = await run_workflow(
            repo,
            workflow,
            targets,
            cache_dir=cache_dir,
            options=options,
            client=client,
            listener=listener,
        )
    return result
