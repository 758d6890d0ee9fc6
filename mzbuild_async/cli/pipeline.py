"""The ``pipeline`` command: print a CI pipeline of steps that build what is missing.

Nothing to build: a pipeline with no build step, and a line on stderr saying so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..pipeline.emit import StepSettings
from ..report.pipeline import pipeline_text
from ..source.repository import Repository
from ..workflow.pipeline import PipelineShape, plan_pipeline
from .settings import registry_settings


def pipeline_shape(args: argparse.Namespace) -> PipelineShape:
    """The ``pipeline`` flags."""
    return PipelineShape(
        format=args.format,
        step=StepSettings(
            program=args.program,
            wait=args.wait,
            queue=args.queue,
            runs_on=tuple(args.runs_on or ["ubuntu-latest"]),
            tags=tuple(args.gitlab_tag or ()),
        ),
        agents=args.agents,
        max_step_seconds=args.max_step_seconds,
        startup=args.startup,
        step_jobs=args.step_jobs,
        any_commit=args.any_commit,
        jobs_only=args.jobs_only,
    )


async def run_pipeline_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """Plan, cut, print the pipeline; exit status 0."""
    result = await plan_pipeline(
        repo,
        targets,
        cache_dir=cache_dir,
        settings=registry_settings(args, repo.root),
        shape=pipeline_shape(args),
    )
    if not result.builds:
        sys.stderr.write(
            f"mzbuild-async: nothing to build: all {result.images} images are published\n"
        )
    sys.stdout.write(pipeline_text(result.document, as_json=args.json))
    return 0
