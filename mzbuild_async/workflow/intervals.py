"""The timeline of a run: one :class:`Interval` per piece of work, from events.

The runner feeds every :class:`~mzbuild_async.events.Event` (with times
since the run started) into a :class:`StepRecorder`, which pairs each
``start`` with its ``done``/``failed``; lookups arrive as finished spans.
The steps inside a BuildKit build arrive as they finish (``step`` events) and
become intervals of phase :data:`BUILD_STEP` on the image's track, inside its
build. Traces, timelines and reports are all made from the resulting steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..support.events import Event

#: The phase of a step inside an image's build (a BuildKit vertex).
BUILD_STEP = "build step"


@dataclass(frozen=True)
class Interval:
    """One piece of work on one track (an image, ``cargo``, ``run`` or a lookup tier)."""

    track: str
    name: str
    phase: str
    start: float
    end: float
    status: str
    detail: str = ""
    #: The engine of the pool it ran on ("" when it does not say).
    engine: str = ""

    @property
    def seconds(self) -> float:
        """How long the step took."""
        return max(0.0, self.end - self.start)

    @property
    def inner(self) -> bool:
        """A step inside an image's build (it overlaps the build and its siblings)."""
        return self.phase == BUILD_STEP

    def to_json(self) -> dict[str, Any]:
        """The step as JSON."""
        record: dict[str, Any] = {
            "track": self.track,
            "name": self.name,
            "phase": self.phase,
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "status": self.status,
        }
        if self.detail:
            record["detail"] = self.detail
        if self.engine:
            record["engine"] = self.engine
        return record


@dataclass
class StepRecorder:
    """A listener that turns start/end event pairs into steps."""

    steps: list[Interval] = field(default_factory=list)
    _open: dict[tuple[str, str], Event] = field(default_factory=dict)

    def __call__(self, event: Event) -> None:
        track = event.image or event.phase
        key = (track, event.phase)
        if event.status == "landed":  # an image's cargo artifacts: a moment on cargo's track
            self.steps.append(
                Interval(
                    track,
                    f"{event.detail} artifacts",
                    event.phase,
                    event.at,
                    event.at,
                    "landed",
                    event.detail,
                )
            )
        elif event.status == "step" and event.step is not None:
            build = self._open.get((track, "build"))
            start = event.at - event.step.seconds
            if build is not None:
                start = max(start, build.at)
            self.steps.append(
                Interval(
                    track,
                    event.step.name,
                    BUILD_STEP,
                    min(start, event.at),
                    event.at,
                    event.step.outcome,
                    engine=event.engine or (build.engine if build else ""),
                )
            )
        elif event.status == "start":
            self._open[key] = event
        elif event.status in ("done", "failed", "requeued"):
            started = self._open.pop(key, None)
            begin = started.at if started else event.at
            detail = event.detail if event.status != "done" or event.phase == "transfer" else ""
            engine = event.engine or (started.engine if started else "")
            self.steps.append(
                Interval(
                    track, event.phase, event.phase, begin, event.at, event.status, detail, engine
                )
            )

    def add(self, step: Interval) -> None:
        """Record a step that arrived finished (a lookup span)."""
        self.steps.append(step)

    def finish(self, at: float) -> None:
        """Close steps still open when the run ended (cancelled)."""
        for (track, phase), event in self._open.items():
            self.steps.append(
                Interval(track, phase, phase, event.at, at, "cancelled", engine=event.engine)
            )
        self._open.clear()


def pack_rows(steps: Sequence[Interval]) -> list[list[Interval]]:
    """Steps that may overlap (a build's parallel stages) as rows in which none do:
    each in the first row free at its start, in order of start."""
    rows: list[list[Interval]] = []
    for step in sorted(steps, key=lambda s: (s.start, s.end)):
        row = next((r for r in rows if r[-1].end <= step.start), None)
        if row is None:
            rows.append([step])
        else:
            row.append(step)
    return rows
