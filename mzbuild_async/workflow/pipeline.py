"""``pipeline``: a CI pipeline of steps that build what is missing.

Fingerprints and lookups as ``plan --workflow ensure``; the images that must
be built are cut into steps (:mod:`..pipeline.partition`, estimates from the
build history) and emitted as the pipeline of one CI system (:mod:`..ci`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..builds.decisions import Found, Workflow
from ..builds.scheduler import Action
from ..ci import by_name
from ..errors import UsageError
from ..model.options import Arch
from ..model.publication import check_release_tag
from ..model.status import Status
from ..pipeline.emit import Job, StepSettings, build_jobs, carried_flags, index_job
from ..pipeline.partition import DEFAULT_AGENT_JOBS, DEFAULT_STARTUP, partition
from ..registry.names import parse_reference
from ..source.repository import Repository
from ..store.history import BuildHistory
from .options import RunOptions
from .plan import plan_configured
from .settings import RegistrySettings
from .walk import build_estimates

#: Agents a pipeline is cut for when neither they nor a step's length are given.
DEFAULT_AGENTS = 4


@dataclass(frozen=True)
class PipelineShape:
    """Which CI system, and how the builds are cut into its steps."""

    #: A name of :data:`..ci.SYSTEMS`.
    format: str = "buildkite"
    #: What each step runs and where (flags and arch come from the repository's options).
    step: StepSettings = field(default_factory=StepSettings)
    agents: int | None = None
    max_step_seconds: float | None = None
    startup: float = DEFAULT_STARTUP
    step_jobs: int = DEFAULT_AGENT_JOBS
    #: A pipeline kept in the repository: every image, no fingerprints.
    any_commit: bool = False
    #: GitHub Actions: the jobs alone (to paste into a workflow).
    jobs_only: bool = False
    #: A runner per arch (``--arch-runner``): each arch's builds on its own runners,
    #: then a job writing ``index_tag`` as an index of them all.
    arch_runners: Mapping[str, str] = field(default_factory=dict)
    index_tag: str = ""


@dataclass(frozen=True)
class PipelineResult:
    """The pipeline document, and what it builds of how many images."""

    document: dict[str, Any]
    builds: Sequence[str]
    images: int


async def plan_pipeline(
    repo: Repository,
    targets: Sequence[str],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
    shape: PipelineShape,
    options: RunOptions | None = None,
) -> PipelineResult:
    """Plan ``ensure`` of ``targets`` (with ``options``: the command's, resolved as
    ``plan``'s), cut the builds into steps, emit the pipeline. With runners per arch
    (``shape.arch_runners``): each arch planned and cut on its own, its jobs on its
    runner, then one job merging the arches' images into an index."""
    if not shape.arch_runners:
        jobs, builds, images = await _arch_jobs(
            repo, targets, cache_dir=cache_dir, settings=settings, shape=shape, options=options
        )
        return PipelineResult(_emit(shape, jobs), builds, images)
    if not shape.index_tag:
        raise UsageError(
            "pipeline --arch-runner: give --index-tag TAG, the tag the final job points at"
            " the arches' images (an index), e.g. latest or v1.2.3"
        )
    check_release_tag(shape.index_tag)
    jobs, builds, images = [], [], 0
    for arch, runner in shape.arch_runners.items():
        arched = await Repository.open(repo.root, replace(repo.options, arch=Arch(arch)))
        own, built, images = await _arch_jobs(
            arched,
            targets,
            cache_dir=cache_dir,
            settings=settings,
            shape=replace(shape, step=replace(shape.step, runner=runner)),
            options=options,
            prefix=f"{arch}-",
        )
        jobs += own
        builds += [f"{name} ({arch})" for name in built]
    published = [name for name in targets if repo.image(name).manifest.publish]
    final = (
        index_job(shape.index_tag, published, list(shape.arch_runners), jobs[0].settings, jobs)
        if jobs
        else None
    )
    return PipelineResult(_emit(shape, [*jobs, *([final] if final else [])]), builds, images)


def _emit(shape: PipelineShape, jobs: Sequence[Job]) -> dict[str, Any]:
    return by_name(shape.format).pipeline(jobs, jobs_only=shape.jobs_only)


async def _arch_jobs(
    repo: Repository,
    targets: Sequence[str],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
    shape: PipelineShape,
    options: RunOptions | None,
    prefix: str = "",
) -> tuple[list[Job], list[str], int]:
    """The jobs building what ``repo``'s arch lacks, the images they build and how
    many images were planned."""
    publication = settings.publication_for(repo.options)
    plan = await plan_configured(
        repo,
        Workflow.ENSURE,
        targets,
        registry=settings,
        cache_dir=cache_dir,
        options=options
        or RunOptions(mirrors=publication.mirrors, environ=settings.environ, tiers=settings.tiers),
    )
    decisions = plan.decisions
    builds = [n for n, d in decisions.items() if shape.any_commit or d.action is Action.BUILD]
    # A published image a mirror lacks (or the primary) is a step's too: its ensure copies it.
    copies = [n for n in decisions if n not in builds and _needs_copy(plan.found.get(n))]
    chosen = {*builds, *copies}
    # In the decisions' (dependency) order, as the cut takes them: a copied parent
    # before the builds on it.
    builds = [n for n in decisions if n in chosen]
    deps = {n: {d for d in repo.image(n).dependencies if d in chosen} for n in builds}
    given = shape.agents is not None or shape.max_step_seconds
    cut = partition(
        builds,
        deps,
        {
            **build_estimates(repo, builds, BuildHistory.load(cache_dir)),
            **dict.fromkeys(copies, 0.0),
        },
        sticky={n for n in builds if not repo.image(n).manifest.publish},
        agents=shape.agents if given else DEFAULT_AGENTS,
        max_step_seconds=shape.max_step_seconds,
        startup=shape.startup,
        jobs=shape.step_jobs,
    )
    mirror_flags = tuple(f for r in publication.flagged for f in ("--mirror-registry", r))
    step = replace(
        shape.step,
        flags=carried_flags(repo.options) + mirror_flags,
        arch=str(repo.options.arch),
        registries=tuple(
            dict.fromkeys(registry_domain(d.registry) for d in publication.destinations)
        ),
    )
    jobs = build_jobs(
        cut,
        {n: d.spec for n, d in decisions.items()},
        {} if shape.any_commit else plan.fingerprints,
        step,
        prefix,
    )
    return jobs, builds, len(decisions)


def _needs_copy(found: Found | None) -> bool:
    """Whether an image is published somewhere but not everywhere."""
    if found is None:
        return False
    return bool(found.copied_from) or any(s is Status.ABSENT for s in found.mirrors.values())


def registry_domain(registry: str) -> str:
    """The host a registry's images are named with (what ``docker login`` takes)."""
    return parse_reference(f"{registry}/probe:probe").domain
