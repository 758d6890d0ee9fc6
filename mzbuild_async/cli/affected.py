"""The ``affected`` command: compare, render, hand the answer to the CI system."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import ci
from ..errors import UsageError
from ..report.affected import affected_json, affected_text
from ..report.deepjson import deep_json
from ..workflow.affected import Published, affected_steps
from ..workflow.resolve import Repository, Settings
from .parser import PROG


async def run_affected(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    """Print the affected images (and steps), and hand them to later steps of the CI
    system this runs in (GitHub Actions: the step outputs ``affected`` and, with
    ``--steps``, ``matrix``)."""
    fmt = "json" if args.json else args.format
    system = ci.by_name(fmt) if fmt in ci.NAMES else None
    if system is not None and args.steps is None:
        raise UsageError(f"--format {fmt} needs --steps FILE (the CI steps to decide on)")
    if system is not None and system.affected([]) is None:
        raise UsageError(f"--format {fmt}: {fmt} takes no list of steps to run; use json")
    steps = Path(args.steps) if args.steps else None
    published = Published(settings.registries, settings.cache_dir, repo.options, args.search)
    comparison, decisions = await affected_steps(
        repo, args.base, args.head, steps, settings.environ, published
    )
    if fmt == "json":
        sys.stdout.write(deep_json(affected_json(comparison, decisions)) + "\n")
    elif system is not None:
        assert decisions is not None
        sys.stdout.write(system.affected(decisions) or "")
    else:
        sys.stdout.write(affected_text(comparison, decisions))
    here = ci.detect(settings.environ)
    if here is not None:  # later steps are told where the system takes such values
        affected = [a.image for a in comparison.affected]
        try:
            await here.affected_outputs(settings.environ, sys.stderr, affected, decisions)
        except OSError as exc:  # (the answer is printed: only its hand-over failed)
            sys.stderr.write(f"{PROG}: error: {here.name}: {exc.strerror or exc}\n")
            return 1
    return 0
