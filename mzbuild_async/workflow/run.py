"""``acquire``, ``ensure``, ``build`` and ``run``: the recipe of one run.

:func:`run_workflow` opens the run's services (:mod:`.services`) while it
fingerprints, then runs rounds (:mod:`.rounds`: decisions released as they
become final, :mod:`.walk`, with the scheduler working meanwhile) until no
tag it was told of turns out gone, and returns a :class:`RunResult`. The
CLI renders it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ..attest.dsse import KeySigner
from ..builds.decisions import Workflow
from ..builds.jobs import Outcome, RunWorker
from ..engine.factory import open_engine
from ..engine.protocol import Engine
from ..errors import UsageError
from ..registry.client import RegistryClient
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from ..store.history import BuildHistory
from ..support.events import Listener, ignore
from .attest import attest_images, build_windows
from .ci_steps import check_fingerprints, mark_failures
from .events import RunEvents
from .intervals import Interval
from .lost import keep_pushed
from .options import RunOptions
from .publish import primary_state, publish_to_mirrors
from .results import (
    ImageResult,
    RunPlan,
    RunResult,
    attested_result,
    descriptor_of,
    image_result,
    mirrored_result,
    published_result,
)
from .rounds import (
    Run,
    engine_reports,
    learn,
    learn_links,
    load_links,
    merged,
    remember_pushed,
    run_rounds,
)
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
    worker_factory: Callable[..., RunWorker] | None = None,
) -> RunResult:
    """Make the targets available (acquire), published (ensure) or rebuilt (build).

    The recipe: open the services while fingerprinting; run rounds of
    decisions and work (:func:`~.rounds.run_rounds`: a pull that meets
    "manifest unknown" makes that tag absent and decides the images it failed
    again); the history and the disk tier learn what the run did; each image's
    result; then the steps after the work (:data:`AFTER_WORK`: provenance,
    mirrors) in order.
    """
    options = options or RunOptions()
    targets = list(dict.fromkeys(targets))
    events = RunEvents(listener)
    platform = run_platform(repo)
    # The lookups are created first thing inside open_services: its span
    # times count from (about) now.
    engine_origin = events.since()
    specs: dict[str, str] = {}

    async def fingerprint() -> None:
        specs.update(await events.fingerprint(repo, targets))

    async with open_services(
        cache_dir, docker, client, options.tiers, options, platform, options.confirms(workflow),
        registry=registry_host(repo), alongside=fingerprint,
    ) as services:  # fmt: skip
        await check_fingerprints(repo, options)
        await _registry_reachable(repo, workflow, options, services.client)
        history = BuildHistory.load(cache_dir)
        kept, links = load_links(cache_dir)
        run = Run(
            repo, workflow, targets, specs, services, options, events, history, cache_dir,
            platform, worker_factory, links,
        )  # fmt: skip
        rounds = await run_rounds(run)
        events.record_lookups(services.lookups, engine_origin)
        plan, outcomes = merged(rounds)
        learn(history, {k: v for r in rounds for k, v in r.build_seconds.items()})
        learn_links(kept, links)
        await remember_pushed(services.lookups, outcomes, specs)
        await mark_failures(services.client, options, outcomes, specs)
        results = image_results(run, plan, outcomes, rounds[-1].worker)
        loads = [(n, load) for r in rounds for n, load in r.scheduler.load.items()]
        lost = sorted({n for n, load in loads if load.lost})
        cut_pushes = {image: n for n, load in loads for image in load.cut_pushes}
        await keep_pushed(services.client, results, lost, cut_pushes)
        worked = Worked(
            run,
            plan,
            outcomes,
            results,
            tuple(sorted(events.recorder.steps, key=lambda s: (s.start, s.track))),
        )
        for step in AFTER_WORK:
            worked = await step(worked)
        engines = engine_reports(services, [r.scheduler for r in rounds], platform)
    lookups = services.lookups
    return RunResult(
        workflow, worked.results, events.since(), plan, worked.steps, lookups.statistics(),
        dict(lookups.requests), engines, options.step, platform,
    )  # fmt: skip


async def _registry_reachable(
    repo: Repository, workflow: Workflow, options: RunOptions, client: RegistryClient
) -> None:
    """``ensure`` publishes: a primary registry that cannot be reached at all is one line
    before any work, not a build of everything that then cannot be pushed."""
    if workflow is not Workflow.ENSURE or "registry" not in options.tiers:
        return
    host = registry_host(repo)
    why = await client.reach(host) if host else ""
    if why:
        raise UsageError(
            f"ensure: the registry {host} could not be reached ({why}); nothing was built or"
            " pushed: check that it runs and --image-registry (or [defaults] image-registry)"
        )


@dataclass(frozen=True)
class Worked:
    """A run whose work is done: each image's result so far, and what made it."""

    run: Run
    plan: RunPlan
    outcomes: Mapping[str, Outcome]
    results: Mapping[str, ImageResult]
    #: The run's timed intervals (phases, build steps), in time order.
    steps: tuple[Interval, ...]


def image_results(
    run: Run, plan: RunPlan, outcomes: Mapping[str, Outcome], worker: RunWorker
) -> dict[str, ImageResult]:
    """Each decided image's result: what happened, how long it waited, where it is
    (when its cargo artifacts landed: the moment the run's timeline shows, one clock)."""
    landed = {s.detail: s.start for s in run.events.recorder.steps if s.status == "landed"}
    results: dict[str, ImageResult] = {}
    for name, decision in plan.decisions.items():
        if name not in outcomes:
            continue
        result = image_result(decision, outcomes[name], run.events.offset)
        results[name] = published_result(
            replace(
                result,
                awaited=worker.waited.get(name),
                wait_ran_out=name in worker.timed_out and outcomes[name].action == "failed",
                landed=landed.get(name, result.landed),
            ),
            run.repo.options.image_registry,
            primary_state(outcomes[name], plan.found.get(name)),
            worker.digests.get(name) or descriptor_of(plan.found.get(name)),
        )
    return results


async def attest(worked: Worked) -> Worked:
    """``ensure --attest``: provenance attached to what is published (and found
    without it), before the mirrors (they copy it)."""
    run, options = worked.run, worked.run.options
    if not options.attest or run.workflow is not Workflow.ENSURE:
        return worked
    services = run.services
    keys = [s.public for s in options.signers if isinstance(s, KeySigner)]
    holds = (
        holding(run.repo, RegistryWriter(services.client), keys)
        if options.require_attested
        else None
    )
    attested = await attest_images(
        services.client, run.repo, worked.results, options.signers, options.environ,
        found_too=True, windows=build_windows(worked.steps, run.events.since()), holds=holds,
        keyless=options.keyless, image_id=services.image_id, layout=options.attest_layout,
    )  # fmt: skip
    results = {n: attested_result(r, attested.get(n)) for n, r in worked.results.items()}
    return replace(worked, results=results)


async def mirror(worked: Worked) -> Worked:
    """Every registry of the publication gets every image (``ensure``)."""
    run = worked.run
    mirrored = await publish_to_mirrors(
        run.services.client, run.workflow, run.repo, run.targets, worked.plan,
        worked.outcomes, run.options.mirrors,
    )  # fmt: skip
    results = {n: mirrored_result(r, mirrored.get(n)) for n, r in worked.results.items()}
    return replace(worked, results=results)


#: The steps after a run's work, in order (each returns the run with its results).
AFTER_WORK: tuple[Callable[[Worked], Awaitable[Worked]], ...] = (attest, mirror)


async def run_container(
    result: RunResult,
    options: RunOptions,
    image: str,
    argv: Sequence[str],
    write: Callable[[bytes], None],
) -> int:
    """``run``: run ``image`` where the run left it, on its home engine (the local one
    without a pool); its output goes to ``write``; the container's exit status."""
    from ..engine.endpoints import local_endpoint

    home = next(iter(result.engines), "")
    endpoint = next((e for e in options.engines if e.name == home), None)
    docker = open_engine(endpoint or local_endpoint(options.environ))
    try:
        return await docker.run(result.images[image].spec, list(argv), write)
    finally:
        await docker.aclose()


def workflow_of(command: str) -> Workflow:
    """The workflow a command runs (``run``: acquire's)."""
    return Workflow.ACQUIRE if command == "run" else Workflow(command)


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
