"""Chrome trace-event JSON (opens in Perfetto and chrome://tracing).

Each lookup is a complete ("X") event on the track of the tier that ran
it; track names come from "M" metadata events.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..lookup import Span


def trace_events(spans: Iterable[Span], tracks: Sequence[str]) -> dict[str, object]:
    """The trace document for ``spans``, one track (thread) per name in ``tracks``."""
    tids = {name: i + 1 for i, name in enumerate(tracks)}
    events: list[dict[str, object]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "mzbuild-async"}}
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
