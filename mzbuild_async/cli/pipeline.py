"""The ``pipeline`` command: print a CI pipeline of steps that build what is missing.

Nothing to build: a pipeline with no build step, and a line on stderr saying so.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from ..report.export import export_pipeline_root
from ..report.pipeline import pipeline_text
from ..workflow.pipeline import plan_pipeline
from ..workflow.resolve import Repository, Settings, run_options
from ..workflow.shape import pipeline_shape
from .flags import flags, pipeline_flags


async def run_pipeline_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Plan, cut, print the pipeline; exit status 0."""
    result = await plan_pipeline(
        repo,
        targets,
        cache_dir=settings.cache_dir,
        settings=settings.registries,
        shape=pipeline_shape(pipeline_flags(args), settings.environ),
        # (--attest, --sign-key PEM are the steps' flags: the key is a path on the agents)
        options=run_options(
            replace(
                flags(args),
                attest=False,
                sign_key=None,
                keyless=False,
                require_attested=False,
                attest_layout=None,
            ),
            settings,
        ),
    )
    await export_pipeline_root(args.otlp, settings.environ, len(result.builds))
    if not result.builds:
        sys.stderr.write(
            f"mzbuild-async: nothing to build: all {result.images} images are published\n"
        )
    sys.stdout.write(pipeline_text(result.document, as_json=args.json))
    return 0
