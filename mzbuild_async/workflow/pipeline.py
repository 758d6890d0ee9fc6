"""``pipeline``: a CI pipeline of steps that build what is missing.

Fingerprints and lookups as ``plan --workflow ensure``; the images that must
be built are cut into steps (:mod:`..pipeline.partition`, estimates from the
build history) and emitted as the pipeline of one CI system (:mod:`..ci`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..builds.decisions import Found, Workflow
from ..builds.scheduler import Action
from ..ci import by_name
from ..model.status import Status
from ..pipeline.emit import StepSettings, carried_flags
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
    ``plan``'s), cut the builds into steps, emit the pipeline."""
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
    document = by_name(shape.format).pipeline(
        cut,
        {n: d.spec for n, d in decisions.items()},
        {} if shape.any_commit else plan.fingerprints,
        step,
        jobs_only=shape.jobs_only,
    )
    return PipelineResult(document, builds, len(decisions))


def _needs_copy(found: Found | None) -> bool:
    """Whether an image is published somewhere but not everywhere."""
    if found is None:
        return False
    return bool(found.copied_from) or any(s is Status.ABSENT for s in found.mirrors.values())


def registry_domain(registry: str) -> str:
    """The host a registry's images are named with (what ``docker login`` takes)."""
    return parse_reference(f"{registry}/probe:probe").domain
