"""W3C trace context: the ``TRACEPARENT`` a process continues, or one derived from a
CI pipeline run, so every step of one pipeline, on any agent, is one trace.

``00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>``, read and written by
OpenTelemetry's own propagator (a later version is read as the spec says). A run id
(:func:`~mzbuild_async.ci.pipeline_run`: Buildkite's build, GitHub's run and
attempt, GitLab's pipeline, or ``MZBUILD_ASYNC_RUN_ID``) gives the same trace id
and root span id to every process that derives from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class TraceParent:
    """A trace id and the span id a process's spans hang under."""

    trace_id: int
    span_id: int
    sampled: bool = True

    def header(self) -> str:
        """The ``traceparent`` text (as the propagator injects it)."""
        from opentelemetry.trace import (
            NonRecordingSpan,
            SpanContext,
            TraceFlags,
            set_span_in_context,
        )
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        flags = TraceFlags(TraceFlags.SAMPLED if self.sampled else TraceFlags.DEFAULT)
        span = NonRecordingSpan(SpanContext(self.trace_id, self.span_id, True, flags))
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=set_span_in_context(span))
        return carrier["traceparent"]


def parse(text: str) -> TraceParent | None:
    """A ``traceparent``, as the propagator extracts it (None when it is not valid)."""
    from opentelemetry.trace import get_current_span
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    context = TraceContextTextMapPropagator().extract({"traceparent": text.strip().lower()})
    span = get_current_span(context).get_span_context()
    if not span.is_valid:
        return None
    return TraceParent(span.trace_id, span.span_id, span.trace_flags.sampled)


def for_run(run: str) -> TraceParent:
    """The trace of pipeline run ``run``: its id and its root (pipeline) span's."""
    digest = hashlib.sha256(f"mzbuild-async trace {run}".encode()).digest()
    return TraceParent(
        int.from_bytes(digest[:16], "big") or 1, int.from_bytes(digest[16:24], "big") or 1
    )


def inherited(environ: Mapping[str, str], run: str) -> TraceParent | None:
    """``TRACEPARENT`` when valid, else the pipeline run's trace, else None (a trace
    of its own)."""
    given = parse(environ.get("TRACEPARENT", ""))
    if given is not None:
        return given
    return for_run(run) if run else None
