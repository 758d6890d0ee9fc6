"""Where a run's events go: its step recorder, the log and the caller's listener."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from ..lookup.lookups import Lookups
from ..model.spec import fingerprint_of
from ..source.repository import Repository
from ..support import logs
from ..support.events import Event, EventStatus, Listener, Phase
from ..support.words import counted
from .intervals import Interval, StepRecorder


@dataclass
class RunEvents:
    """Where a run's events go: its step recorder, the log, and the caller's listener.

    Scheduler and worker events are stamped on the run's clock as they arrive;
    ``offset`` (seconds since the run started, set when the scheduler starts)
    moves the scheduler's own times (when cargo artifacts landed) onto it.
    """

    listener: Listener
    started: float = field(default_factory=time.perf_counter)
    recorder: StepRecorder = field(default_factory=StepRecorder)
    fingerprints: dict[str, str] = field(default_factory=dict)
    offset: float = 0.0

    def since(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.started

    async def fingerprint(self, repo: Repository, targets: list[str]) -> dict[str, str]:
        """The specs of the targets and their dependencies, the work shown as a step."""
        self.tee(
            Event(
                self.since(),
                None,
                Phase.FINGERPRINT,
                EventStatus.START,
                counted(len(targets), "target"),
            )
        )
        specs = await repo.specs(targets)
        self.tee(Event(self.since(), None, Phase.FINGERPRINT, EventStatus.DONE))
        self.fingerprints.update((n, fingerprint_of(spec)) for n, spec in specs.items())
        return specs

    def tee(self, event: Event) -> None:
        """One event, on the run's clock, to the recorder, the log and the listener
        (its detail without credentials: it reaches reports and the terminal)."""
        if event.detail:
            event = replace(event, detail=logs.redact_text(event.detail))
        self.recorder(event)
        if event.status not in ("line", "step"):  # (the worker logs these, at debug level)
            # Info level, failures too: at the default level the progress view
            # reports them; -v adds these structured events.
            logs.get_logger().info(
                f"{event.phase} {event.status}",
                image=event.image,
                fingerprint=self.fingerprints.get(event.image or ""),
                phase=event.phase,
                status=event.status,
                detail=event.detail or None,
            )
        self.listener(event)

    def now(self, event: Event) -> None:
        """An event that happened just now, on the run's clock (the scheduler's and the
        worker's: they are handed over as they happen, so one clock orders them all)."""
        self.tee(replace(event, at=self.since()))

    def record_lookups(self, engine: Lookups, origin: float) -> None:
        """Each lookup span as a step (span times count from ``origin``)."""
        for span in engine.spans:
            self.recorder.add(
                Interval(
                    f"lookup: {span.tier}",
                    span.spec.rsplit("/", 1)[-1],
                    "lookup",
                    span.start + origin,
                    span.end + origin,
                    span.status,
                )
            )
