"""``plan``: what a run would do and why, with the same lookups, doing none of it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from ..builds.decisions import Workflow, jobs
from ..builds.scheduler import predict_placement
from ..engine.protocol import Engine
from ..model.status import TIER_ORDER
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..source.repository import Repository
from ..store.history import BuildHistory
from .ci_steps import check_fingerprints
from .options import RunOptions
from .results import RunPlan
from .rounds import load_links
from .services import open_services, registry_host, run_platform
from .settings import RegistrySettings
from .walk import build_estimates, job_settings, walk


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

    async with open_services(
        cache_dir,
        docker,
        client,
        tiers,
        options,
        platform,
        options.confirms(workflow),  # (as the run would: ensure asks the registry again)
        registry=registry_host(repo),
        alongside=fingerprint,
    ) as services:
        await check_fingerprints(repo, options)
        plan = await walk(
            repo,
            workflow,
            targets,
            services.home,
            services.lookups,
            force=force,
            only=None if options.only is None else frozenset(options.only),
            mirrors=options.mirrors,
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
            registry=parse_reference(next(iter(specs.values()))).api_host if specs else "",
            found=plan.found,
            **job_settings(repo, workflow, targets, options, platform),
        )
        forecast = predict_placement(planned, services.slots(), load_links(cache_dir)[1])
        return replace(plan, placement=forecast.engines, links=forecast.links)


async def plan_configured(
    repo: Repository,
    workflow: Workflow,
    targets: Iterable[str],
    *,
    registry: RegistrySettings,
    cache_dir: Path,
    force: bool = False,
    options: RunOptions | None = None,
) -> RunPlan:
    """:func:`plan_workflow` with a registry client made from ``registry``; the
    hosts' challenges are saved for the next run."""
    async with registry.session(cache_dir) as client:
        plan = await plan_workflow(
            repo,
            workflow,
            targets,
            cache_dir=cache_dir,
            force=force,
            client=client,
            tiers=registry.tiers,
            options=options,
        )
    return plan
