"""The steps inside a BuildKit build: each vertex reported once as it finishes
(done, cached, failed), recorded inside its image's build, and drawn in the
timeline, the trace and the OTLP span tree without crossing the build's other
work; ``--progress rawjson`` carries each; the line view does not count them."""

from __future__ import annotations

import base64
import io
import itertools
import json
from pathlib import Path
from typing import Any

from mzbuild_async.builds.decisions import Workflow
from mzbuild_async.engine.buildkit import Progress, decode_status
from mzbuild_async.report.otel import run_tree
from mzbuild_async.report.progress import JsonProgress, LineProgress
from mzbuild_async.report.summary import slowest_steps
from mzbuild_async.report.timeline import timeline_html
from mzbuild_async.report.trace import run_trace
from mzbuild_async.support.events import BuildStep, Event, EventStatus, Phase
from mzbuild_async.workflow.intervals import BUILD_STEP, Interval, StepRecorder, pack_rows
from mzbuild_async.workflow.results import RunResult

RECORDED = Path(__file__).parent / "buildkit"


def finished(name: str) -> tuple[Progress, list[BuildStep]]:
    """The steps a recorded stream reports as they finish."""
    steps: list[BuildStep] = []
    progress = Progress(steps.append)
    for raw in (RECORDED / f"{name}.jsonl").read_text().splitlines():
        item = json.loads(raw)
        if item.get("id") == "moby.buildkit.trace":
            progress.feed(decode_status(base64.b64decode(item["aux"])))
    return progress, steps


def test_each_step_is_reported_once_when_it_finishes() -> None:
    progress, steps = finished("ok")
    assert [s.number for s in steps] == sorted(s.number for s in steps)
    assert {s.number for s in steps} == {s.number for s in progress.steps.values()}
    assert len({s.number for s in steps}) == len(steps)  # once each
    assert {s.outcome for s in steps} == {"done"}
    run = next(s for s in steps if s.name.startswith("[2/2] RUN"))
    vertex = next(s.vertex for s in progress.steps.values() if s.number == run.number)
    assert vertex.started is not None
    assert vertex.completed is not None
    assert run.seconds == vertex.completed - vertex.started


def test_cached_and_failed_steps_say_so() -> None:
    _, cached = finished("ok-cached")
    outcomes = {s.name: s.outcome for s in cached}
    assert outcomes["[1/2] COPY busybox /bin/busybox"] == "cached"
    assert all(s.seconds == 0.0 for s in cached if s.outcome == "cached")
    _, failed = finished("fail")
    (bad,) = [s for s in failed if s.outcome == "failed"]
    assert " RUN " in bad.name


def test_a_step_is_recorded_inside_its_build_on_its_engine() -> None:
    recorder = StepRecorder()
    recorder(Event(1.0, "app", Phase.BUILD, EventStatus.START, engine="b"))
    step = BuildStep(3, "[2/2] RUN make", "done", 9.0)  # (the builder's clock ran ahead)
    recorder(Event(4.0, "app", Phase.BUILD, EventStatus.STEP, step.name, step=step))
    recorder(Event(5.0, "app", Phase.BUILD, EventStatus.DONE, engine="b"))
    inner, build = recorder.steps
    assert (inner.track, inner.name, inner.phase, inner.status) == (
        "app",
        "[2/2] RUN make",
        BUILD_STEP,
        "done",
    )
    assert (inner.start, inner.end, inner.engine) == (1.0, 4.0, "b")  # within the build
    assert inner.inner
    assert not build.inner
    assert slowest_steps(recorder.steps) == [build]


def test_overlapping_steps_are_packed_into_rows_that_do_not() -> None:
    steps = [
        Interval("app", "a", BUILD_STEP, 0.0, 2.0, "done"),
        Interval("app", "b", BUILD_STEP, 0.5, 1.0, "done"),
        Interval("app", "c", BUILD_STEP, 1.0, 3.0, "done"),
        Interval("app", "d", BUILD_STEP, 2.0, 2.5, "cached"),
    ]
    rows = pack_rows(steps)
    assert [[s.name for s in row] for row in rows] == [["a", "d"], ["b", "c"]]
    for row in rows:
        assert all(x.end <= y.start for x, y in itertools.pairwise(row))
    assert pack_rows([]) == []


STEPS = [
    Interval("app", "build", "build", 1.0, 4.0, "requeued", "engine b lost", engine="b"),
    Interval("app", "[1/2] COPY a /a", BUILD_STEP, 4.5, 5.0, "cached", engine="a"),
    Interval("app", "[one 2/2] RUN x", BUILD_STEP, 5.0, 7.0, "done", engine="a"),
    Interval("app", "[two 2/2] RUN y", BUILD_STEP, 5.5, 7.5, "failed", engine="a"),
    Interval("app", "build", "build", 4.2, 8.0, "failed", "RUN y failed", engine="a"),
]


def test_the_timeline_draws_a_lane_per_row_of_steps_under_the_image() -> None:
    for pooled in (False, True):
        page = timeline_html(STEPS, 8.0, "ensure", by_engine=pooled)
        assert page.count('data-phase="build step"') == 3
        assert page.count("\u21b3 steps") == 2  # the two RUNs overlap
        assert page.index(">app<") < page.index("\u21b3 steps")
        slowest = page[page.index("<table>") :]
        assert "build step" not in slowest


def test_the_trace_puts_the_steps_on_tracks_of_their_own() -> None:
    for pooled in (False, True):
        trace: Any = run_trace(STEPS, 8.0, "ensure", by_engine=pooled)
        events = trace["traceEvents"]
        names = {
            (e["pid"], e["tid"]): e["args"]["name"] for e in events if e["name"] == "thread_name"
        }
        where = {e["name"]: names[e["pid"], e["tid"]] for e in events if e["ph"] == "X"}
        assert where["[one 2/2] RUN x"] == "app steps"
        assert where["[two 2/2] RUN y"] == "app steps 2"
        assert where["[1/2] COPY a /a"] == "app steps"
        steps = [e for e in events if e.get("cat") == BUILD_STEP]
        assert {e["args"]["status"] for e in steps} == {"cached", "done", "failed"}


def test_otlp_steps_are_children_of_the_build_that_holds_them() -> None:
    result = RunResult(Workflow.ENSURE, {}, 8.0, steps=tuple(STEPS))
    root = run_tree(result, "ensure", "registry:5000")
    (image,) = root.children
    first, second = image.children
    assert first.children == []  # (the requeued attempt held none of them)
    assert [c.name for c in second.children] == [s.name for s in STEPS[1:4]]
    assert [c.attributes["mzbuild.cached"] for c in second.children] == [True, False, False]
    assert [bool(c.error) for c in second.children] == [False, False, True]
    assert {c.attributes["mzbuild.engine"] for c in second.children} == {"a"}


def test_rawjson_carries_each_step_and_the_line_view_does_not_count_them() -> None:
    step = BuildStep(4, "[2/2] RUN make", "done", 1.23456)
    event = Event(2.5, "app", Phase.BUILD, EventStatus.STEP, step.name, step=step)
    out = io.StringIO()
    JsonProgress(out)(event)
    record = json.loads(out.getvalue())
    assert record["status"] == "step"
    assert record["step"] == {"number": 4, "name": "[2/2] RUN make", "outcome": "done",
                              "seconds": 1.235}  # fmt: skip
    lines = io.StringIO()
    progress = LineProgress(lines)
    progress(Event(0.0, "app", Phase.BUILD, EventStatus.START))
    progress(event)
    assert progress.done == {}
    assert progress.in_flight()[0][0] == "app"  # the build goes on
    assert "[2/2] RUN make" not in lines.getvalue()
