"""What happened during a run, as frozen records; reporters only consume these.

An event's phase and status are enums (their values are the words reports and
``--report`` use), so an emitter cannot invent one that no reporter knows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass


class Phase(enum.StrEnum):
    """What part of the work an event is about."""

    FINGERPRINT = "fingerprint"
    LOOKUP = "lookup"
    CARGO = "cargo"
    PULL = "pull"
    TRANSFER = "transfer"
    BUILD = "build"
    PUSH = "push"
    SEND = "send"
    #: An engine of the pool (lost, or the home role moved).
    ENGINE = "engine"


class EventStatus(enum.StrEnum):
    """What happened to it."""

    START = "start"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: Its engine was lost: it runs again elsewhere.
    REQUEUED = "requeued"
    #: An engine was lost (phase ``engine``).
    LOST = "lost"
    #: The home engine moved to another (phase ``engine``).
    HOME = "home"
    #: Cargo built what an image takes (its build may start).
    LANDED = "landed"
    #: One line of output.
    LINE = "line"
    #: A step inside an image's build finished (a BuildKit vertex: ``Event.step``).
    STEP = "step"


#: The phases of one image's work, in the order they can happen.
PHASES = tuple(Phase)


@dataclass(frozen=True)
class BuildStep:
    """One finished step inside an image's build, as BuildKit reports it (a vertex:
    ``[2/4] RUN make``, ``[internal] load build context``, ``exporting to image``)."""

    #: Its number within the build (``#N`` of the progress lines).
    number: int
    name: str
    #: ``done``, ``cached`` or ``failed``.
    outcome: str
    #: How long it ran, by the builder's clock (0 when cached).
    seconds: float = 0.0


@dataclass(frozen=True)
class Event:
    """One step of one image (or of the batched cargo build, image ``None``)."""

    #: Seconds since the run started.
    at: float
    image: str | None
    phase: Phase
    status: EventStatus
    detail: str = ""
    #: The engine of the pool the work ran on ("" when it does not say).
    engine: str = ""
    #: The finished step of a ``step`` event.
    step: BuildStep | None = None


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A listener that drops every event."""
