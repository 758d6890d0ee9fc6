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

from ..errors import single_error
from ..model.options import Arch
from ..report.after import Finished, Outputs, after_run
from ..report.files import hand_over_produced
from ..report.plan import plan_text
from ..report.progress import make_progress, progress_mode
from ..report.promote import failed, promote_json, promote_text, promoted
from ..report.summary import summary_text
from ..support.events import ignore
from ..workflow.plan import plan_configured
from ..workflow.promote import mainline_only, promote
from ..workflow.resolve import Repository, Settings, run_options
from ..workflow.run import run_configured, run_container, workflow_of
from .exits import WAIT_RAN_OUT
from .flags import flags


async def run_build_command(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Run acquire/ensure/build/run; print the summary; the exit status."""
    command = args.command
    started_ns = time.time_ns()  # (the spans' clock: the run's times are relative)
    options = run_options(flags(args), settings)
    progress = make_progress(
        sys.stderr,
        verbose=args.verbose > 0,
        quiet=args.quiet > 0,
        environ=settings.environ,
        mode=progress_mode(args.progress, settings.environ, args.log_format),
    )
    try:
        with single_error():
            async with anyio.create_task_group() as tg:
                if progress is not None:
                    tg.start_soon(progress.ticker)
                result = await run_configured(
                    repo,
                    workflow_of(command),
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
    if command == "run" and not result.ok:
        status = 1
    # The run's record first: the summary then says the exit status the process
    # ends with (the files' paths were checked before any work).
    status = await after_run(
        Finished(result, repo, command, settings.environ, started_ns),
        Outputs(
            report=args.report,
            trace=args.trace,
            timeline=args.timeline,
            metadata=args.metadata_file,
            otlp=args.otlp,
            hand_over=command != "run",
        ),
        status,
    )
    if command == "run" and result.ok:
        if status:
            return 1
        return await run_container(result, options, targets[0], args.args, _out)
    if args.json and command != "run":
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(summary_text(result, status) + "\n")
    return status


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
        workflow_of(args.workflow),
        targets,
        registry=settings.registries,
        cache_dir=settings.cache_dir,
        force=args.force,
        options=run_options(flags(args), settings),
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
    return await hand_over_produced(
        promoted(results), 1 if failed(results) else 0, settings.environ
    )
