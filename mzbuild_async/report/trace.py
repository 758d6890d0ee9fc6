"""Chrome trace-event JSON (opens in Perfetto and chrome://tracing).

Each lookup is a complete ("X") event on the track of the tier that ran
it; track names come from "M" metadata events. A build run's trace
(:func:`run_trace`) adds the run, cargo, and one track per image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..lookup.engine import Span
from ..workflow.steps import Step


def _metadata(title: str, tids: dict[str, int]) -> list[dict[str, object]]:
    """The process name, and each track's name and order."""
    events: list[dict[str, object]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": title}}
    ]
    for name, tid in tids.items():
        events.append(
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": tid, "args": {"name": name}}
        )
        events.append(
            {
                "ph": "M",
                "name": "thread_sort_index",
                "pid": 1,
                "tid": tid,
                "args": {"sort_index": tid},
            }
        )
    return events


def trace_events(spans: Iterable[Span], tracks: Sequence[str]) -> dict[str, object]:
    """The trace document for ``spans``, one track (thread) per name in ``tracks``."""
    tids = {name: i + 1 for i, name in enumerate(tracks)}
    events = _metadata("mzbuild-async", tids)
    for span in spans:
        tid = tids.setdefault(span.tier, len(tids) + 1)
        events.append(
            {
                "name": span.spec.rsplit("/", 1)[-1],
                "cat": span.tier,
                "ph": "X",
                "pid": 1,
                "tid": tid,
                "ts": round(span.start * 1e6, 3),
                "dur": round(max(0.0, span.end - span.start) * 1e6, 3),
                "args": {"spec": span.spec, "status": span.status},
            }
        )
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def write_trace(path: Path, spans: Iterable[Span], tracks: Sequence[str]) -> None:
    """Write the trace of ``spans`` to ``path``."""
    path.write_text(json.dumps(trace_events(spans, tracks)))


def run_trace(steps: Sequence[Step], seconds: float, title: str) -> dict[str, object]:
    """The trace document of a whole run.

    Track 1 holds the run, with fingerprinting and the lookups inside it;
    then one track per lookup tier, ``cargo``, and one per image whose
    work (pull, build, push) nests inside a span named after the image.
    """
    tracks: list[str] = ["run"]
    for step in steps:
        if step.track not in tracks and step.track not in ("fingerprint", "lookup"):
            tracks.append(step.track)
    tids = {name: i + 1 for i, name in enumerate(tracks)}
    events = _metadata(title, tids)

    def span(tid: int, name: str, cat: str, start: float, end: float, args: object) -> None:
        events.append(
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "pid": 1,
                "tid": tid,
                "ts": round(start * 1e6, 3),
                "dur": round(max(0.0, end - start) * 1e6, 3),
                "args": args,
            }
        )

    span(tids["run"], title, "run", 0.0, seconds, {})
    by_track: dict[str, list[Step]] = {}
    for step in steps:
        if step.track in ("fingerprint", "lookup"):
            span(tids["run"], step.name, step.phase, step.start, step.end, {"detail": step.detail})
            continue
        by_track.setdefault(step.track, []).append(step)
    for track, own in by_track.items():
        tid = tids[track]
        image = not track.startswith("lookup: ") and track != "cargo"
        if image:
            span(tid, track, "image", min(s.start for s in own), max(s.end for s in own), {})
        for step in own:
            args = {"status": step.status, **({"detail": step.detail} if step.detail else {})}
            span(tid, step.name, step.phase, step.start, step.end, args)
    return {"traceEvents": events, "displayTimeUnit": "ms"}
