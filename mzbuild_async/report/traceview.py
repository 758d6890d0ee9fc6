"""A whole pipeline's trace as a timeline page: the spans its steps sent, collected.

Reads OTLP JSON, as an OpenTelemetry Collector's file exporter writes it (one
``ExportTraceServiceRequest`` per line), keeps mzbuild-async's spans of one
trace, and draws them with :mod:`.timeline`: a group of lanes per CI step
(each step's run, lookups, cargo and images), all on the pipeline's clock::

    python -m mzbuild_async.report.traceview TRACE.jsonl PAGE.html [--trace ID]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..support.documents import parse_json
from ..workflow.intervals import Interval
from .timeline import timeline_html


@dataclass(frozen=True)
class TraceSpan:
    """What the page needs of one span."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool = False


def _value(value: dict[str, Any]) -> Any:
    for kind in ("stringValue", "boolValue", "intValue", "doubleValue"):
        if kind in value:
            return int(value[kind]) if kind == "intValue" else value[kind]
    return None


def read_otlp_json(lines: Iterable[str]) -> list[TraceSpan]:
    """The spans of OTLP JSON requests, one per line (blank lines skipped)."""
    found: list[TraceSpan] = []
    for line in lines:
        if not line.strip():
            continue
        request = parse_json(line)
        for resource in request.get("resourceSpans", []):
            for scope in resource.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    found.append(
                        TraceSpan(
                            span.get("traceId", ""),
                            span.get("spanId", ""),
                            span.get("parentSpanId", ""),
                            span.get("name", ""),
                            int(span.get("startTimeUnixNano", 0)),
                            int(span.get("endTimeUnixNano", 0)),
                            {
                                a["key"]: _value(a.get("value", {}))
                                for a in span.get("attributes", [])
                            },
                            span.get("status", {}).get("code") in (2, "STATUS_CODE_ERROR"),
                        )
                    )
    return found


def intervals(spans: Sequence[TraceSpan]) -> tuple[list[Interval], float]:
    """One interval per span under a step's run, grouped by step; seconds since the
    trace's first span, and the trace's length."""
    if not spans:
        return [], 0.0
    zero = min(s.start_ns for s in spans)
    by_id = {s.span_id: s for s in spans}

    def step_of(span: TraceSpan) -> str:
        seen: set[str] = set()
        while span.parent_id in by_id and span.span_id not in seen:
            seen.add(span.span_id)
            if span.name.startswith("mzbuild-async ") and "mzbuild.step" in span.attributes:
                break
            span = by_id[span.parent_id]
        step = span.attributes.get("mzbuild.step")
        return str(step) if step else span.name.removeprefix("mzbuild-async ")

    found: list[Interval] = []
    for span in spans:
        attributes = span.attributes
        phase = str(attributes.get("mzbuild.phase") or span.name.split(" ")[0])
        if span.name.startswith("image ") or span.name.startswith("lookup "):
            continue  # (their pieces are drawn; the lookup phase is one bar)
        if span.name.startswith("mzbuild-async "):
            phase, track = "run", "run"
        else:
            track = str(attributes.get("mzbuild.image") or span.name)
        found.append(
            Interval(
                track,
                span.name,
                phase,
                (span.start_ns - zero) / 1e9,
                (span.end_ns - zero) / 1e9,
                "failed" if span.error else "done",
                engine=step_of(span),
            )
        )
    total = (max(s.end_ns for s in spans) - zero) / 1e9
    return sorted(found, key=lambda i: (i.engine, i.start)), total


def page(spans: Sequence[TraceSpan], trace_id: str | None = None) -> str:
    """The timeline page of one trace (default: the one with the most spans)."""
    traces: dict[str, list[TraceSpan]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    if not traces:
        raise ValueError("no spans")
    chosen = trace_id or max(traces, key=lambda t: len(traces[t]))
    steps, total = intervals(traces[chosen])
    groups = sorted({s.engine for s in steps})
    summary = {"trace": chosen, "steps": str(len(groups)), "spans": str(len(traces[chosen]))}
    return timeline_html(
        steps, total, "mzbuild-async pipeline trace", summary, by_engine=True, group="step"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mzbuild_async.report.traceview TRACE.jsonl PAGE.html``."""
    parser = argparse.ArgumentParser(prog="traceview", description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path, help="OTLP JSON lines (a collector's file exporter)")
    parser.add_argument("page", type=Path, help="the HTML page to write")
    parser.add_argument("--trace-id", help="the trace to draw (default: the largest)")
    args = parser.parse_args(argv)
    try:
        spans = read_otlp_json(args.trace.read_text(encoding="utf-8").splitlines())
        args.page.write_text(page(spans, args.trace_id), encoding="utf-8")
    except (OSError, ValueError, KeyError) as exc:
        print(f"traceview: {args.trace}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
