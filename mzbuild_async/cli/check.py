"""The ``check`` command: look images up and report where each answer came from."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..report import otel
from ..report.check import check_json, check_text
from ..report.export import export_tree
from ..report.trace import write_trace
from ..workflow.check import check
from ..workflow.resolve import Repository, Settings
from ..workflow.services import registry_host


async def run_check(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Run ``check``; exit status 0 if every answer is definite, 1 if any is unknown."""
    started_ns = time.time_ns()
    result = await check(repo, targets, cache_dir=settings.cache_dir, settings=settings.registries)
    await export_tree(
        args.otlp,
        settings.environ,
        lambda: otel.check_tree(result, registry_host(repo)),
        started_ns,
    )
    if args.trace:
        write_trace(Path(args.trace), result.spans, result.tiers)
    if args.json:
        sys.stdout.write(json.dumps(check_json(result), indent=2) + "\n")
    else:
        sys.stdout.write(check_text(result) + "\n")
    return 0 if result.definite else 1
