"""The ``acquire``, ``ensure``, ``build``, ``run``, ``plan`` and ``promote`` commands.

Each calls one workflow function with the command's settings, shows progress
on stderr while it runs, and renders the result on stdout (the summary, or
``--json``) and in the files asked for. Exit status 0 when every image ended
as wanted, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import anyio

from .. import ci
from ..builds.plan import Workflow
from ..engine.endpoints import local_endpoint
from ..errors import single_error
from ..model.options import Arch
from ..report import files, otel
from ..report.annotations import failure_annotations
from ..report.plan import plan_text
from ..report.progress import make_progress, progress_mode
from ..report.promote import failed, promote_json, promote_text, promoted
from ..report.summary import summary_text
from ..source.repository import Repository
from ..support.events import ignore
from ..workflow.options import RunOptions
from ..workflow.plan import plan_configured
from ..workflow.promote import mainline_only, promote
from ..workflow.results import RunResult
from ..workflow.run import run_configured, run_container
from ..workflow.services import registry_host
from .exits import WAIT_RAN_OUT
from .otlp import export_tree
from .parser import WORKFLOW_NAMES
from .settings import Settings, run_options
from .steps import step_options

WORKFLOWS = {name: Workflow(name) for name in WORKFLOW_NAMES}


async def run_build_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Run acquire/ensure/build/run; print the summary; the exit status."""
    command = args.command
    started_ns = time.time_ns()  # (the spans' clock: the run's times are relative)
    options = run_options(args, settings, force=bool(getattr(args, "force", False)))
    progress = make_progress(
        sys.stderr,
        verbose=args.verbose > 0,
        quiet=args.quiet > 0,
        environ=settings.environ,
        mode=progress_mode(args.progress, settings.environ),
    )
    try:
        with single_error():
            async with anyio.create_task_group() as tg:
                if progress is not None:
                    tg.start_soon(progress.ticker)
                result = await run_configured(
                    repo,
                    WORKFLOWS.get(command, Workflow.ACQUIRE),
                    targets,
                    registry=settings.registries,
                    cache_dir=settings.cache_dir,
                    options=options,
                    listener=progress or ignore,
                )
                tg.cancel_scope.cancel()
    finally:
        if progress is not None:
            progress.close()
    status = 0 if result.ok else WAIT_RAN_OUT if result.only_waits_ran_out else 1
    await export_tree(
        args.otlp,
        settings.environ,
        lambda: otel.run_tree(result, command, registry_host(repo)),
        started_ns,
    )
    system = ci.detect(settings.environ)
    if system is not None:  # each failure on its Dockerfile line, where it shows that
        for line in failure_annotations(result, repo, system):
            sys.stderr.write(line + "\n")
    if command == "run":
        if not result.ok:
            status = write_outputs(args, settings, result, 1)
            sys.stdout.write(summary_text(result, status) + "\n")
            return status
        if write_outputs(args, settings, result, status):
            return 1
        home = next(iter(result.engines), "")
        endpoint = next((e for e in options.engines if e.name == home), None)
        endpoint = endpoint or local_endpoint(settings.environ)
        return await run_container(result.images[targets[0]].spec, args.args, endpoint, _out)
    # The files and the CI hand-over first: the summary then says the exit status
    # the process ends with (their paths were checked before any work).
    status = write_outputs(args, settings, result, status)
    status = await files.hand_over(result, status, settings.environ)
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(summary_text(result, status) + "\n")
    return status


def write_outputs(
    args: argparse.Namespace, settings: Settings, result: RunResult, status: int
) -> int:
    """The run's files (:mod:`..report.files`); ``status``, or 1 when one failed."""
    return files.write_outputs(
        result,
        status,
        report=args.report,
        trace=args.trace,
        timeline=args.timeline,
        step_summary=files.step_summary_path(settings.environ),
        metadata=args.metadata_file,
    )


def _out(chunk: bytes) -> None:
    """A container's output, as it comes."""
    sys.stdout.buffer.write(chunk)
    sys.stdout.buffer.flush()


async def run_plan_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """``plan``: what a run of ``--workflow`` would do and why, doing none of it."""
    plan = await plan_configured(
        repo,
        WORKFLOWS[args.workflow],
        targets,
        registry=settings.registries,
        cache_dir=settings.cache_dir,
        force=args.force,
        options=RunOptions(
            engines=settings.engines,
            slots=args.jobs,
            transfer_registry=args.transfer_registry,
            environ=settings.environ,
            mirrors=settings.registries.publication_for(settings.options).mirrors,
            **step_options(args, settings.environ),
        ),
    )
    if args.json:
        sys.stdout.write(json.dumps(plan.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(plan_text(plan) + "\n")
    return 0


async def run_promote(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Give each image TAG (a retag for one arch, an index for several); exit 1 if any
    image failed."""
    if args.mainline:
        targets = mainline_only(repo, targets)
    results = await promote(
        repo,
        targets,
        args.tag,
        [Arch.parse(a) for a in (args.arch or [])],
        cache_dir=settings.cache_dir,
        settings=settings.registries,
        force=args.force,
        to=args.to,
    )
    if args.json:
        sys.stdout.write(json.dumps(promote_json(results), indent=2) + "\n")
    else:
        sys.stdout.write(promote_text(results))
    sys.stdout.flush()
    return await files.hand_over_produced(
        promoted(results), 1 if failed(results) else 0, settings.environ
    )
