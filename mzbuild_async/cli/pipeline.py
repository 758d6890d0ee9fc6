"""The ``pipeline`` command: a CI pipeline of steps that build what is missing.

Fingerprints and lookups as ``plan --workflow ensure``; the images that must
be built are cut into steps (:mod:`..pipeline.partition`, estimates from the
build history) and written as the pipeline of the CI system ``--format``
names (:mod:`..ci`: Buildkite, GitHub Actions, GitLab CI) on stdout. Nothing to build: a pipeline
with no build step, and a line on stderr saying so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..builds.plan import Workflow
from ..builds.scheduler import Action
from ..ci import by_name
from ..pipeline.emit import StepSettings, carried_flags
from ..pipeline.partition import partition
from ..source.repository import Repository
from ..store.challenges import save_challenges
from ..store.history import BuildHistory
from ..workflow.plan import plan_workflow
from ..workflow.walk import build_estimates
from .settings import registry_settings


async def run_pipeline_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """Plan, cut, print the pipeline; exit status 0."""
    settings = registry_settings(args, repo.root)
    async with settings.client(cache_dir) as client:
        plan = await plan_workflow(
            repo, Workflow.ENSURE, targets, cache_dir=cache_dir, client=client, tiers=settings.tiers
        )
    save_challenges(cache_dir, client.challenges, client.schemes)
    # --any-commit (a pipeline kept in the repository): every image, no fingerprints.
    builds = [n for n, d in plan.decisions.items() if args.any_commit or d.action is Action.BUILD]
    chosen = set(builds)
    deps = {n: {d for d in repo.image(n).dependencies if d in chosen} for n in builds}
    seconds = build_estimates(repo, builds, BuildHistory.load(cache_dir))
    agents = args.agents if args.agents is not None or args.max_step_seconds else 4
    cut = partition(
        builds,
        deps,
        seconds,
        sticky={n for n in builds if not repo.image(n).manifest.publish},
        agents=agents,
        max_step_seconds=args.max_step_seconds,
        startup=args.startup,
        jobs=args.step_jobs,
    )
    specs = {n: d.spec for n, d in plan.decisions.items()}
    step = StepSettings(
        program=args.program,
        flags=carried_flags(repo.options),
        wait=args.wait,
        queue=args.queue,
        runs_on=tuple(args.runs_on or ["ubuntu-latest"]),
        tags=tuple(args.gitlab_tag or ()),
        arch=str(repo.options.arch),
    )
    fingerprints = {} if args.any_commit else plan.fingerprints
    document = by_name(args.format).pipeline(
        cut, specs, fingerprints, step, jobs_only=args.jobs_only
    )
    if not builds:
        sys.stderr.write(
            f"mzbuild-async: nothing to build: all {len(plan.decisions)} images are published\n"
        )
    if args.json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(document, sort_keys=False, width=1000))
    return 0
