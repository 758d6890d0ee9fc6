"""What follows a run, in order: the steps after ``acquire``, ``ensure``, ``build``
and ``run`` that leave its record outside the process.

The workflow's own effects (attestations, mirrors) are part of the run
(:mod:`..workflow.run`); these render it: the spans over OTLP, each failure
on its Dockerfile line in the CI system, the files asked for (``--report``,
``--trace``, ``--timeline``, ``--metadata-file``, the step summary) and the
hand-over to the CI system (its step outputs). Each step takes the exit
status so far and returns it, or 1 when it could not leave its record: the
summary printed last then says the status the process ends with.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from ..ci import detect
from ..workflow.resolve import Repository
from ..workflow.results import RunResult
from ..workflow.services import registry_host
from . import files, otel
from .annotations import failure_annotations
from .export import export_tree


@dataclass(frozen=True)
class Outputs:
    """Where the run's record goes (None: not asked for)."""

    report: str | None = None
    trace: str | None = None
    timeline: str | None = None
    metadata: str | None = None
    #: ``--otlp`` (else ``OTEL_EXPORTER_OTLP_ENDPOINT``).
    otlp: str | None = None
    #: Whether the CI system is handed what the run produced (``run`` is not).
    hand_over: bool = True


@dataclass(frozen=True)
class Finished:
    """A run that ended, with what its steps after need."""

    result: RunResult
    repo: Repository
    command: str
    environ: Mapping[str, str]
    #: When the run started (ns since the epoch: the spans' clock).
    started_ns: int


Step = Callable[[Finished, Outputs, int], Awaitable[int]]


async def export_spans(run: Finished, outputs: Outputs, status: int) -> int:
    """The run's span tree over OTLP (a failed export is one warning)."""
    await export_tree(
        outputs.otlp,
        run.environ,
        lambda: otel.run_tree(run.result, run.command, registry_host(run.repo)),
        run.started_ns,
    )
    return status


async def annotate_failures(run: Finished, outputs: Outputs, status: int) -> int:
    """Each failure on its Dockerfile line, where the CI system shows that."""
    system = detect(run.environ)
    if system is not None:
        for line in failure_annotations(run.result, run.repo, system):
            sys.stderr.write(line + "\n")
    return status


async def write_files(run: Finished, outputs: Outputs, status: int) -> int:
    """The files asked for, and the CI system's step summary."""
    return files.write_outputs(
        run.result,
        status,
        report=outputs.report,
        trace=outputs.trace,
        timeline=outputs.timeline,
        step_summary=files.step_summary_path(run.environ),
        metadata=outputs.metadata,
    )


async def hand_over(run: Finished, outputs: Outputs, status: int) -> int:
    """What the run produced, to the CI system (its step outputs, meta-data)."""
    if not outputs.hand_over:
        return status
    return await files.hand_over(run.result, status, run.environ)


#: The steps after a run, in order.
AFTER_RUN: tuple[Step, ...] = (export_spans, annotate_failures, write_files, hand_over)


async def after_run(run: Finished, outputs: Outputs, status: int) -> int:
    """Take each step of :data:`AFTER_RUN`; the exit status they leave."""
    for step in AFTER_RUN:
        status = await step(run, outputs, status)
    return status
