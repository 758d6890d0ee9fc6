"""What happened during a run, as frozen records; reporters only consume these."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

#: The phases of one image's work, in the order they can happen.
PHASES = ("lookup", "cargo", "pull", "build", "push")


@dataclass(frozen=True)
class Event:
    """One step of one image (or of the batched cargo build, image ``None``)."""

    #: Seconds since the run started.
    at: float
    image: str | None
    phase: str
    #: ``start``, ``done``, ``failed``, ``skipped`` or ``line`` (one output line).
    status: str
    detail: str = ""


Listener = Callable[[Event], None]


def ignore(event: Event) -> None:
    """A listener that drops every event."""
