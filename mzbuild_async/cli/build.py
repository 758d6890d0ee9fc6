"""The ``acquire``, ``ensure``, ``build``, ``run`` and ``publish-manifest`` commands.

Turns arguments into a :func:`run_workflow` call, prints progress lines on
stderr while it runs, and the summary (or ``--json``) on stdout at the end.
Exit status 0 when every image ended as wanted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio

from ..builds.plan import Workflow
from ..errors import UsageError, single_error
from ..model.options import Arch, default_jobs
from ..report import files
from ..report.plan import plan_text
from ..report.progress import make_progress
from ..report.publish import publish_json, publish_text
from ..report.summary import summary_text
from ..source.repository import Repository
from ..store.challenges import save_challenges
from ..support.events import ignore
from ..workflow.options import RunOptions
from ..workflow.plan import plan_workflow
from ..workflow.publish import publish_manifests
from ..workflow.results import RunResult
from ..workflow.run import run_container, run_workflow
from ..workflow.settings import RegistrySettings
from .parser import WORKFLOW_NAMES
from .settings import engine_settings, registry_settings

WORKFLOWS = {name: Workflow(name) for name in WORKFLOW_NAMES}


def _options(
    args: argparse.Namespace,
    root: Path,
    settings: RegistrySettings,
    *,
    force: bool = False,
) -> RunOptions:
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    if args.transfers < 1:
        raise UsageError(f"--transfers must be at least 1, not {args.transfers}")
    return RunOptions(
        tiers=settings.tiers,
        trust_cache=args.trust_cache or settings.config.trust_cache,
        jobs=jobs,
        transfers=args.transfers,
        fail_fast=args.fail_fast,
        force=force,
        cache_registry=args.cache_registry,
        builder=args.builder,
        engines=engine_settings(args, root),
        slots=args.jobs,
        transfer_registry=args.transfer_registry,
        **step_options(args),
    )


def step_options(args: argparse.Namespace) -> dict[str, Any]:
    """``--only``/``--wait``/``--step`` as RunOptions fields (a CI step), if given."""
    only = getattr(args, "only", None)
    if only is None:
        return {}
    expected: dict[str, str] = {}
    for item in only:
        name, _, fingerprint = item.partition("=")
        if not name:
            raise UsageError(f"--only {item!r}: give IMAGE or IMAGE=FINGERPRINT")
        expected[name] = fingerprint
    from ..ci import pipeline_run

    return {
        "only": expected,
        "wait": args.wait,
        "step": args.step,
        "pipeline_run": pipeline_run(os.environ),
    }


async def run_build_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """Run acquire/ensure/build/run; print the summary; the exit status."""
    command = args.command
    workflow = WORKFLOWS.get(command, Workflow.ACQUIRE)
    force = bool(getattr(args, "force", False))
    settings = registry_settings(args, repo.root)
    options = _options(args, repo.root, settings, force=force)
    progress = make_progress(sys.stderr, verbose=args.verbose > 0, quiet=args.quiet > 0)
    try:
        async with settings.client(cache_dir) as client:
            with single_error():
                async with anyio.create_task_group() as tg:
                    if progress is not None:
                        tg.start_soon(progress.ticker)
                    result = await run_workflow(
                        repo,
                        workflow,
                        targets,
                        cache_dir=cache_dir,
                        options=options,
                        client=client,
                        listener=progress or ignore,
                    )
                    tg.cancel_scope.cancel()
            save_challenges(cache_dir, client.challenges, client.schemes)
    finally:
        if progress is not None:
            progress.close()
    status = 0 if result.ok else 1
    if command == "run":
        if not result.ok:
            sys.stdout.write(summary_text(result, status) + "\n")
            return write_outputs(args, result, 1)
        if write_outputs(args, result, status):
            return 1
        home = next(iter(result.engines), "")
        endpoint = next((e for e in options.engines if e.name == home), None)
        return await run_container(result.images[targets[0]].spec, args.args, endpoint, _out)
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(summary_text(result, status) + "\n")
    sys.stdout.flush()  # (the summary comes first, whatever happens to the files)
    return write_outputs(args, result, status)


def write_outputs(args: argparse.Namespace, result: RunResult, status: int) -> int:
    """The run's files (:mod:`..report.files`); ``status``, or 1 when one failed."""
    return files.write_outputs(
        result,
        status,
        report=args.report,
        trace=args.trace,
        timeline=args.timeline,
        step_summary=files.step_summary_path(os.environ),
    )


def _out(chunk: bytes) -> None:
    """A container's output, as it comes."""
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


async def run_publish_manifest(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """Write one multi-arch index per image at TAG; exit 1 if any image failed."""
    results = await publish_manifests(
        repo,
        targets,
        args.tag,
        [Arch.parse(a) for a in (args.arch or [])],
        cache_dir=cache_dir,
        settings=registry_settings(args, repo.root),
    )
    if args.json:
        sys.stdout.write(json.dumps(publish_json(results), indent=2) + "\n")
    else:
        sys.stdout.write(publish_text(results))
    return 1 if any(isinstance(r, Exception) for r in results.values()) else 0


async def run_plan_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """``plan``: what a run of ``--workflow`` would do and why, doing none of it."""
    settings = registry_settings(args, repo.root)
    async with settings.client(cache_dir) as client:
        plan = await plan_workflow(
            repo,
            WORKFLOWS[args.workflow],
            targets,
            cache_dir=cache_dir,
            force=args.force,
            client=client,
            tiers=settings.tiers,
            options=RunOptions(
                engines=engine_settings(args, repo.root),
                slots=args.jobs,
                transfer_registry=args.transfer_registry,
                **step_options(args),
            ),
        )
    save_challenges(cache_dir, client.challenges, client.schemes)
    if args.json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(plan_text(plan) + "\n")
    return 0
