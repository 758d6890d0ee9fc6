"""W3C trace context: the ``TRACEPARENT`` a process continues, or one derived from a
CI pipeline run, so every step of one pipeline, on any agent, is one trace.

``00-<trace id: 32 hex>-<parent span id: 16 hex>-<flags: 2 hex>``. A run id
(:func:`~mzbuild_async.ci.pipeline_run`: Buildkite's build, GitHub's run and
attempt, GitLab's pipeline, or ``MZBUILD_ASYNC_RUN_ID``) gives the same trace id
and root span id to every process that derives from it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


@dataclass(frozen=True)
class TraceParent:
    """A trace id and the span id a process's spans hang under."""

    trace_id: int
    span_id: int
    sampled: bool = True

    def header(self) -> str:
        """The ``traceparent`` text."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"


def parse(text: str) -> TraceParent | None:
    """A ``traceparent`` (None when it is not a valid version-00 one)."""
    match = _TRACEPARENT.match(text.strip().lower())
    if match is None:
        return None
    trace_id, span_id = int(match.group(1), 16), int(match.group(2), 16)
    if not trace_id or not span_id:
        return None
    return TraceParent(trace_id, span_id, bool(int(match.group(3), 16) & 1))


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
