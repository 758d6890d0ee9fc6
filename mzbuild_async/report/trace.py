"""Chrome trace-event JSON (opens in Perfetto and chrome://tracing).

Each lookup is a complete ("X") event on the track of the tier that ran
it; track names come from "M" metadata events. A build run's trace
(:func:`run_trace`) adds the run, cargo, and one track per image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..lookup.lookups import Span
from ..workflow.intervals import Interval, pack_rows


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


def _engine_metadata(
    engines: Sequence[str], pids: dict[str, int], tids: dict[tuple[str, str], int]
) -> list[dict[str, object]]:
    """Each engine of a pool as a process, named and ordered, with its tracks' names."""
    events: list[dict[str, object]] = []
    for engine in engines:
        pid = pids[engine]
        events.append(
            {"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
             "args": {"name": f"engine {engine}"}}
        )  # fmt: skip
        events.append(
            {"ph": "M", "name": "process_sort_index", "pid": pid, "tid": 0,
             "args": {"sort_index": pid}}
        )  # fmt: skip
        events += [
            {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": track}}
            for (owner, track), tid in tids.items()
            if owner == engine
        ]
    return events


def _inner_rows(
    steps: Sequence[Interval], by_engine: bool
) -> dict[tuple[str, str], list[list[Interval]]]:
    """The steps inside each image's builds, as rows of steps that do not overlap."""
    inner: dict[tuple[str, str], list[Interval]] = {}
    for step in steps:
        if step.inner:
            inner.setdefault((step.engine if by_engine else "", step.track), []).append(step)
    return {key: pack_rows(own) for key, own in inner.items()}


def _tracks(
    steps: Sequence[Interval], rows: dict[tuple[str, str], list[list[Interval]]], by_engine: bool
) -> list[tuple[str, str]]:
    """(engine, track) of each track in order: the run's, then each image's followed by
    the rows of the steps inside its build."""
    tracks: list[tuple[str, str]] = [("", "run")]
    for step in steps:
        key = (step.engine if by_engine else "", step.track)
        if key not in tracks and step.track not in ("fingerprint", "lookup") and not step.inner:
            tracks.append(key)
            tracks += [(key[0], _steps_track(key[1], k)) for k in range(len(rows.get(key, [])))]
    return tracks


def run_trace(
    steps: Sequence[Interval], seconds: float, title: str, *, by_engine: bool = False
) -> dict[str, object]:
    """The trace document of a whole run.

    Track 1 holds the run, with fingerprinting and the lookups inside it;
    then one track per lookup tier, ``cargo``, and one per image whose
    work (pull, build, push) nests inside a span named after the image, and
    the steps inside its BuildKit build on tracks of their own under it (one
    per stage running at once). ``by_engine`` (a pool): each engine is a
    process of its own, holding the tracks of the images' work on it.
    """
    engines = list(dict.fromkeys(s.engine for s in steps if s.engine)) if by_engine else []
    pids = {"": 1, **{engine: i + 2 for i, engine in enumerate(engines)}}
    rows = _inner_rows(steps, by_engine)
    tracks = _tracks(steps, rows, by_engine)
    tids = {key: i + 1 for i, key in enumerate(tracks)}
    events = _metadata(
        title, {track: tids[key] for key in tracks if not key[0] for track in [key[1]]}
    )
    events += _engine_metadata(engines, pids, tids)

    def span(
        key: tuple[str, str], name: str, cat: str, start: float, end: float, args: object
    ) -> None:
        events.append(
            {
                "name": name,
                "cat": cat,
                "ph": "X",
                "pid": pids[key[0]],
                "tid": tids[key],
                "ts": round(start * 1e6, 3),
                "dur": round(max(0.0, end - start) * 1e6, 3),
                "args": args,
            }
        )

    run = ("", "run")
    span(run, title, "run", 0.0, seconds, {})
    for (engine, track), packed in rows.items():
        for k, row in enumerate(packed):
            for step in row:
                key = (engine, _steps_track(track, k))
                span(key, step.name, step.phase, step.start, step.end, {"status": step.status})
    by_track: dict[tuple[str, str], list[Interval]] = {}
    for step in steps:
        if step.inner:
            continue
        if step.track in ("fingerprint", "lookup"):
            span(run, step.name, step.phase, step.start, step.end, {"detail": step.detail})
            continue
        by_track.setdefault((step.engine if by_engine else "", step.track), []).append(step)
    for key, own in by_track.items():
        track = key[1]
        image = not track.startswith("lookup: ") and track != "cargo"
        if image:
            span(key, track, "image", min(s.start for s in own), max(s.end for s in own), {})
        for step in own:
            args = {"status": step.status, **({"detail": step.detail} if step.detail else {})}
            if step.engine:
                args["engine"] = step.engine
            if step.status == "landed":  # a moment: an image's cargo artifacts are there
                events.append(
                    {
                        "name": step.name,
                        "cat": "artifacts",
                        "ph": "i",
                        "s": "t",
                        "pid": pids[key[0]],
                        "tid": tids[key],
                        "ts": round(step.start * 1e6, 3),
                        "args": args,
                    }
                )
                continue
            span(key, step.name, step.phase, step.start, step.end, args)
    return {"traceEvents": events, "displayTimeUnit": "ms"}


def _steps_track(track: str, row: int) -> str:
    """The name of the ``row``-th track of the steps inside ``track``'s build."""
    return f"{track} steps" + (f" {row + 1}" if row else "")
