"""The ``pipeline`` command: print a CI pipeline of steps that build what is missing.

Nothing to build: a pipeline with no build step, and a line on stderr saying so.
"""

from __future__ import annotations

import argparse
import sys

from ..report.pipeline import pipeline_text
from ..source.repository import Repository
from ..workflow.pipeline import plan_pipeline
from .otlp import export_pipeline_root
from .settings import Settings
from .steps import pipeline_shape


async def run_pipeline_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Plan, cut, print the pipeline; exit status 0."""
    shape = pipeline_shape(args, settings.environ)
    result = await plan_pipeline(
        repo, targets, cache_dir=settings.cache_dir, settings=settings.registries, shape=shape
    )
    await export_pipeline_root(args.otlp, settings.environ, len(result.builds))
    if not result.builds:
        sys.stderr.write(
            f"mzbuild-async: nothing to build: all {result.images} images are published\n"
        )
    sys.stdout.write(pipeline_text(result.document, as_json=args.json))
    return 0
