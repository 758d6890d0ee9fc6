"""What the scheduler, its transfers and its engines' health share during one run."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import anyio.abc

from ..errors import EngineError
from ..support.events import EventStatus, Phase
from .jobs import EngineLoad, Job, Outcome, Worker
from .links import Links


class Emit(Protocol):
    """Sends one event of the run."""

    def __call__(
        self,
        image: str | None,
        phase: Phase,
        status: EventStatus,
        detail: str = "",
        engine: str = "",
    ) -> None: ...


class Lose(Protocol):
    """Drops an engine from the run (raises when it was the last one)."""

    def __call__(self, engine: str, error: EngineError) -> None: ...


@dataclass
class RunState:
    """The jobs, the engines and where each image is, as the run goes."""

    worker: Worker
    emit: Emit
    jobs: dict[str, Job] = field(default_factory=dict)
    #: Per engine: what it did, and why it was lost.
    load: dict[str, EngineLoad] = field(default_factory=dict)
    #: The engines still in the run, the home engine first.
    live: list[str] = field(default_factory=list)
    #: The engines each image is on.
    held: dict[str, set[str]] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: The run's task group, while it runs.
    tg: anyio.abc.TaskGroup | None = None
    #: Link rates and image bytes, learned from the transfers (placement reads them).
    links: Links = field(default_factory=Links)
    clock: Callable[[], float] = time.perf_counter

    @property
    def pooled(self) -> bool:
        """Whether work is spread over more than one engine."""
        return len(self.load) > 1

    def lost_names(self) -> str:
        """The engines lost so far, for messages."""
        return ", ".join(name for name, load in self.load.items() if load.lost)
