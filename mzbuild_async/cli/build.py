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
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from ..builds.plan import Workflow
from ..engine.endpoints import Endpoint
from ..errors import UsageError, single_error
from ..model.options import Arch, default_jobs
from ..report.progress import make_progress
from ..report.summary import markdown_summary, report_document, summary_text, table
from ..report.timeline import write_timeline
from ..report.trace import run_trace
from ..source.repository import Repository
from ..store.challenges import save_challenges
from ..support import logs
from ..support.events import ignore
from ..workflow.options import RunOptions
from ..workflow.plan import plan_workflow
from ..workflow.results import RunPlan, RunResult
from ..workflow.run import run_workflow
from .parser import PROG, WORKFLOW_NAMES
from .settings import RegistrySettings, engine_settings, registry_settings

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
        return await _run_container(result.images[targets[0]].spec, args.args, endpoint)
    if args.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        sys.stdout.write(summary_text(result, status) + "\n")
    sys.stdout.flush()  # (the summary comes first, whatever happens to the files)
    return write_outputs(args, result, status)


def write_outputs(args: argparse.Namespace, result: RunResult, status: int) -> int:
    """``--report``, ``--trace``, ``--timeline`` and the GitHub Actions step summary;
    ``status``, or 1 when one of them could not be written (one line each: the run's
    work is done and summarised, only its record is missing)."""
    written = status
    for flag, path, write in (
        ("--report", args.report, _write_report),
        ("--trace", args.trace, _write_trace),
        ("--timeline", args.timeline, _write_timeline),
        ("GITHUB_STEP_SUMMARY", _step_summary(), _append_step_summary),
    ):
        if not path:
            continue
        try:
            write(Path(path), result, status)
        except OSError as exc:
            print(
                f"{PROG}: error: {flag} {path}: could not write it ({exc.strerror or exc})",
                file=sys.stderr,
            )
            written = written or 1
    return written


def _step_summary() -> str | None:
    """Where the CI system this runs in takes a Markdown summary (None: nowhere)."""
    from ..ci import detect

    system = detect(os.environ)
    return None if system is None else system.summary_path(os.environ)


def _append_step_summary(path: Path, result: RunResult, status: int) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(markdown_summary(result, status))


def _write_report(path: Path, result: RunResult, status: int) -> None:
    path.write_text(json.dumps(report_document(result, status), indent=2) + "\n")


def _write_trace(path: Path, result: RunResult, status: int) -> None:
    title = f"mzbuild-async {result.workflow.value}"
    trace = run_trace(result.steps, result.seconds, title, by_engine=result.pooled)
    path.write_text(json.dumps(trace))


def _write_timeline(path: Path, result: RunResult, status: int) -> None:
    title = f"mzbuild-async {result.workflow.value}"
    counts: dict[str, int] = {}
    for r in result.images.values():
        counts[r.action] = counts.get(r.action, 0) + 1
    facts = {
        "images": str(len(result.images)),
        **{action: str(n) for action, n in sorted(counts.items())},
        "seconds": f"{result.seconds:.2f}",
        "exit status": str(status),
    }
    if result.pooled:
        facts["engines"] = ", ".join(
            f"{name} ({engine.builds} builds{', LOST' if engine.lost else ''})"
            for name, engine in result.engines.items()
        )
    write_timeline(path, result.steps, result.seconds, title, facts, by_engine=result.pooled)


async def _run_container(spec: str, argv: list[str], home: Endpoint | None) -> int:
    """Run ``spec`` where acquire left it: the home engine (the local one without a pool)."""
    from ..engine.factory import open_engine

    docker = open_engine(home)
    out = sys.stdout.buffer

    def write(chunk: bytes) -> None:
        out.write(chunk)
        out.flush()

    try:
        return await docker.run(spec, argv, write)
    finally:
        await docker.aclose()


async def run_publish_manifest(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """Write one multi-arch index per image at TAG; exit 1 if any image failed."""
    from ..builds.multiarch import publish_indexes
    from ..registry.writer import RegistryWriter

    arches = [Arch.parse(a) for a in (args.arch or [])]
    if not arches:
        raise UsageError("publish-manifest: name the architectures with --arch (repeatable)")
    arches = list(dict.fromkeys(arches))
    specs_by_image: dict[str, dict[Arch, str]] = {name: {} for name in targets}
    for arch in arches:
        other = await Repository.open(repo.root, replace(repo.options, arch=arch))
        for name, spec in (await other.specs(targets)).items():
            if name in specs_by_image:
                specs_by_image[name][arch] = spec
    client = registry_settings(args, repo.root).client(cache_dir)
    writer = RegistryWriter(client)
    try:
        results = await publish_indexes(writer, args.tag, specs_by_image)
    finally:
        await client.aclose()
    failed = 0
    document: dict[str, Any] = {}
    for name, outcome in results.items():
        if isinstance(outcome, Exception):
            failed += 1
            error = logs.redact_text(str(outcome))
            document[name] = {"error": error}
            if not args.json:
                sys.stdout.write(f"{name}  failed  {error}\n")
            continue
        document[name] = outcome.to_json()
        if not args.json:
            sys.stdout.write(f"{name}  {outcome.status}  {outcome.target}@{outcome.digest}\n")
    if args.json:
        sys.stdout.write(json.dumps({"images": document}, indent=2) + "\n")
    return 1 if failed else 0


def plan_text(plan: RunPlan) -> str:
    """The ``plan`` table: per image its fingerprint, what the lookups said, the action."""
    document = plan.to_json()["images"]
    pooled = bool(plan.placement)
    engine = ("ENGINE",) if pooled else ()
    rows = [("IMAGE", "FINGERPRINT", "LOCAL", "PUBLISHED", "ACTION", *engine, "WHY")]
    for name, image in document.items():
        tier = ", ".join(filter(None, [image["tier"], image.get("cached")]))
        why = image["reason"] + (f" [{tier}]" if tier else "")
        rows.append(
            (
                name,
                image["fingerprint"],
                "yes" if image["local"] else "no",
                image["published"],
                image["action"],
                *((image.get("engine") or "-",) if pooled else ()),
                why,
            )
        )
    lines = table(rows)
    counts: dict[str, int] = {}
    for image in document.values():
        counts[image["action"]] = counts.get(image["action"], 0) + 1
    totals = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    lines.append(f"plan ({plan.workflow.value}): {len(document)} images: {totals}")
    return "\n".join(lines)


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
