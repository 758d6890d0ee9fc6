"""Lanes and marks: a pooled run's lane groups per engine in the trace and the
timeline, the engines' load in the progress view; the moments cargo images'
artifacts landed, on the cargo track."""

from __future__ import annotations

import io
from typing import Any

from mzbuild_async.report.progress import LineProgress
from mzbuild_async.report.timeline import timeline_html
from mzbuild_async.report.trace import run_trace
from mzbuild_async.support.events import Event, EventStatus, Phase
from mzbuild_async.workflow.intervals import Interval, StepRecorder

STEPS = [
    Interval("lookup", "lookup", "lookup", 0.0, 0.1, "done"),
    Interval("base", "build", "build", 0.1, 1.0, "done", engine="a"),
    Interval("left", "transfer", "transfer", 1.0, 1.2, "done", "base", engine="b"),
    Interval("left", "build", "build", 1.2, 3.0, "done", engine="b"),
    Interval("right", "build", "build", 1.0, 2.0, "requeued", "engine b lost", engine="b"),
    Interval("right", "build", "build", 2.0, 3.5, "done", engine="a"),
]


def test_the_trace_has_a_process_per_engine() -> None:
    trace: Any = run_trace(STEPS, 4.0, "ensure", by_engine=True)
    names = {
        e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"
    }
    assert names == {1: "ensure", 2: "engine a", 3: "engine b"}
    spans = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    right = [(names[e["pid"]], e["args"]["status"]) for e in spans if e["cat"] == "build"]
    assert ("engine b", "requeued") in right
    assert ("engine a", "done") in right
    # Without a pool: one process, as before.
    flat: Any = run_trace(STEPS, 4.0, "ensure")
    assert {e["pid"] for e in flat["traceEvents"]} == {1}


def test_the_timeline_groups_lanes_by_engine() -> None:
    page = timeline_html(STEPS, 4.0, "ensure", by_engine=True)
    assert page.index('data-engine="a"') < page.index('data-engine="b"')
    group_b = page[page.index('data-engine="b"') :]
    assert 'data-track="left" data-phase="transfer"' in group_b
    assert "data-engine" not in timeline_html(STEPS, 4.0, "ensure")


def test_steps_keep_their_engine_and_requeued_closes_a_step() -> None:
    recorder = StepRecorder()
    recorder(Event(0.0, "x", Phase.BUILD, EventStatus.START, engine="b"))
    recorder(Event(1.0, "x", Phase.BUILD, EventStatus.REQUEUED, "engine b lost", engine="b"))
    recorder(Event(1.5, "x", Phase.BUILD, EventStatus.START, engine="a"))
    recorder(Event(2.0, "x", Phase.BUILD, EventStatus.DONE, engine="a"))
    assert [(s.status, s.engine, s.start, s.end) for s in recorder.steps] == [
        ("requeued", "b", 0.0, 1.0),
        ("done", "a", 1.5, 2.0),
    ]


def test_the_progress_line_shows_each_engines_load() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    progress(Event(0.0, "x", Phase.BUILD, EventStatus.START, engine="a"))
    progress(Event(0.0, "y", Phase.BUILD, EventStatus.START, engine="a"))
    progress(Event(0.0, "z", Phase.BUILD, EventStatus.START, engine="b"))
    assert progress.totals().endswith(" | engines: a 2, b 1")
    progress(Event(1.0, None, Phase.ENGINE, EventStatus.LOST, "engine b went away", engine="b"))
    assert "engine b lost: engine b went away" in out.getvalue()
    assert progress.totals().endswith(" | engines: a 2, b lost")
    assert "[b]" in out.getvalue()  # step lines name the engine in a pool


def test_landed_artifacts_are_marks_on_the_cargo_track() -> None:
    recorder = StepRecorder()
    recorder(Event(0.0, None, Phase.CARGO, EventStatus.START, "fast, slow"))
    recorder(Event(1.0, None, Phase.CARGO, EventStatus.LANDED, "fast"))
    recorder(Event(1.5, "fast", Phase.BUILD, EventStatus.START))
    recorder(Event(3.0, None, Phase.CARGO, EventStatus.LANDED, "slow"))
    recorder(Event(3.0, None, Phase.CARGO, EventStatus.DONE))
    marks = [(s.track, s.detail, s.start, s.end) for s in recorder.steps if s.status == "landed"]
    assert marks == [("cargo", "fast", 1.0, 1.0), ("cargo", "slow", 3.0, 3.0)]
    trace: Any = run_trace(recorder.steps, 4.0, "ensure")
    instants = [e for e in trace["traceEvents"] if e["ph"] == "i"]
    assert [(e["name"], e["ts"]) for e in instants] == [
        ("fast artifacts", 1e6),
        ("slow artifacts", 3e6),
    ]
    page = timeline_html(recorder.steps, 4.0, "ensure")
    assert page.count('class="bar mark"') == 2
    out = io.StringIO()
    progress = LineProgress(out)
    progress(Event(0.0, None, Phase.CARGO, EventStatus.START))
    progress(Event(1.0, None, Phase.CARGO, EventStatus.LANDED, "fast"))
    assert "cargo landed: fast" in out.getvalue()
    assert progress.in_flight()[0][0] == "cargo"  # cargo goes on
