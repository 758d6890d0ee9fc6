"""The files a run leaves: ``--report``, ``--trace``, ``--timeline``,
``--metadata-file`` and the CI system's step summary.

Their paths are checked before any work; each is written before the summary
is printed, so the summary names the exit status the process ends with. One
that cannot be written all the same (a full disk) is one line on stderr and
exit status 1 (the run's work is done, only its record is missing).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from ..ci.protocol import Produced
from ..workflow.results import RunResult
from .metadata import metadata_document, pinned
from .summary import markdown_summary, report_document
from .timeline import write_timeline
from .trace import run_trace

#: The program's name in error lines.
PROG = "mzbuild-async"


def write_outputs(
    result: RunResult,
    status: int,
    *,
    report: str | None = None,
    trace: str | None = None,
    timeline: str | None = None,
    step_summary: str | None = None,
    metadata: str | None = None,
) -> int:
    """Write each file asked for; ``status``, or 1 when one could not be written."""
    written = status
    outputs: tuple[tuple[str, str | None, Callable[[Path, RunResult, int], None]], ...] = (
        ("--report", report, _write_report),
        ("--trace", trace, _write_trace),
        ("--timeline", timeline, _write_timeline),
        ("--metadata-file", metadata, _write_metadata),
        ("the step summary", step_summary, _append_step_summary),
    )
    for what, path, write in outputs:
        if not path:
            continue
        try:
            write(Path(path), result, status)
        except OSError as exc:
            print(
                f"{PROG}: error: {what} {path}: could not write it ({exc.strerror or exc})",
                file=sys.stderr,
            )
            written = written or 1
    return written


def produced(result: RunResult) -> Produced:
    """What the run produced, as the CI system is handed it."""
    references = {
        name: pinned(r.spec, r.digest)
        for name, r in result.images.items()
        if r.digest and r.action not in ("failed", "skipped")
    }
    failures = {
        name: r.error or r.action
        for name, r in result.images.items()
        if r.action in ("failed", "skipped")
    }
    return Produced(references, failures, result.step)


async def hand_over(result: RunResult, status: int, environ: Mapping[str, str]) -> int:
    """Give the CI system this runs in what the run produced (step outputs, meta-data,
    an annotation); ``status``, or 1 with one line when it could not be given."""
    return await hand_over_produced(produced(result), status, environ)


async def hand_over_produced(what: Produced, status: int, environ: Mapping[str, str]) -> int:
    """:func:`hand_over` for what any command produced."""
    from ..ci import detect

    system = detect(environ)
    if system is None:
        return status
    try:
        await system.hand_over(environ, what)
    except OSError as exc:
        print(f"{PROG}: error: {system.name}: {exc.strerror or exc}", file=sys.stderr)
        return status or 1
    return status


def step_summary_path(environ: Mapping[str, str]) -> str | None:
    """Where the CI system this runs in takes a Markdown summary (None: nowhere)."""
    from ..ci import detect

    system = detect(environ)
    return None if system is None else system.summary_path(environ)


def _append_step_summary(path: Path, result: RunResult, status: int) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(markdown_summary(result, status))


def _write_report(path: Path, result: RunResult, status: int) -> None:
    path.write_text(json.dumps(report_document(result, status), indent=2) + "\n")


def _write_metadata(path: Path, result: RunResult, status: int) -> None:
    path.write_text(json.dumps(metadata_document(result), indent=2) + "\n")


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
