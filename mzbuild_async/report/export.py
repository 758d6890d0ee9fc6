"""Sending a command's spans over OTLP (only when an endpoint is configured)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from ..ci import pipeline_run
from ..support import logs
from ..support.tracecontext import TraceParent, for_run, inherited
from . import otel


async def _send(
    root: otel.Node,
    started_ns: int,
    url: str,
    environ: Mapping[str, str],
    parent: TraceParent | None,
    root_span_id: int | None = None,
) -> None:
    problem = await otel.export(
        root,
        started_ns,
        url,
        parent=parent,
        root_span_id=root_span_id,
        header_values=otel.headers(environ),
        timeout=otel.export_seconds(environ),
    )
    if problem:
        logs.warning(problem)


async def export_tree(
    flag: str | None, environ: Mapping[str, str], tree: Callable[[], otel.Node], started_ns: int
) -> None:
    """A command's span tree (built only when there is an endpoint), continuing
    ``TRACEPARENT`` or the pipeline run's trace."""
    url = otel.endpoint(environ, flag)
    if url is None:
        return
    parent = inherited(environ, pipeline_run(environ))
    await _send(tree(), started_ns, url, environ, parent)


async def export_pipeline_root(flag: str | None, environ: Mapping[str, str], steps: int) -> None:
    """``pipeline``'s root span of the pipeline run's trace (its steps' spans hang
    under it); nothing outside a pipeline run."""
    url, run = otel.endpoint(environ, flag), pipeline_run(environ)
    if url is None or not run:
        return
    trace = for_run(run)
    root = otel.Node(
        "mzbuild-async pipeline", 0.0, 0.0, {"mzbuild.run": run, "mzbuild.steps": steps}
    )
    await _send(root, time.time_ns(), url, environ, trace, root_span_id=trace.span_id)
