"""What happened during a run, as frozen records; reporters only consume these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The phases of one image's work, in the order they can happen.
PHASES = ("lookup", "cargo", "pull", "transfer", "build", "push", "send")


@dataclass(frozen=True)
class Event:
    """One step of one image (or of the batched cargo build, image ``None``)."""

    #: Seconds since the run started.
    at: float
    image: str | None
    phase: str
    #: ``start``, ``done``, ``failed``, ``skipped``, ``requeued`` (its engine was
    #: lost; it runs again elsewhere), ``lost`` (phase ``engine``) or ``line``.
    status: str
    detail: str = ""
    #: The engine of the pool the work ran on ("" when it does not say).
    engine: str = ""


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A listener that drops every event."""
