"""The ``affected`` command: compare, render, hand the answer to the CI system."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .. import ci
from ..ci.github import matrix, write_outputs
from ..errors import UsageError
from ..report.affected import affected_json, affected_text
from ..report.deepjson import deep_json
from ..source.repository import Repository
from ..workflow.affected import affected_steps
from .settings import Settings


async def run_affected(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    """Print the affected images (and steps); under GitHub Actions also the step
    outputs ``affected`` and, with ``--steps``, ``matrix``."""
    fmt = "json" if args.json else args.format
    system = ci.by_name(fmt) if fmt in ci.NAMES else None
    if system is not None and args.steps is None:
        raise UsageError(f"--format {fmt} needs --steps FILE (the CI steps to decide on)")
    if system is not None and system.affected([]) is None:
        raise UsageError(f"--format {fmt}: {fmt} takes no list of steps to run; use json")
    steps = Path(args.steps) if args.steps else None
    comparison, decisions = await affected_steps(repo, args.base, args.head, steps)
    if fmt == "json":
        sys.stdout.write(deep_json(affected_json(comparison, decisions)) + "\n")
    elif system is not None:
        assert decisions is not None
        sys.stdout.write(system.affected(decisions) or "")
    else:
        sys.stdout.write(affected_text(comparison, decisions))
    outputs = {"affected": " ".join(a.image for a in comparison.affected)}
    if decisions is not None:
        outputs["matrix"] = json.dumps(matrix(decisions))
    write_outputs(settings.environ, outputs)
    return 0
