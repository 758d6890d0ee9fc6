"""The values a run's work is described and reported in: jobs, limits, outcomes,
the engines as slots, and the Worker protocol the scheduler drives.

Pure data and protocols; :mod:`.scheduler` runs them, :mod:`.placement` decides
where builds go.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..dag.paths import longest_paths
from ..model.options import DEFAULT_TRANSFERS
from ..store.history import DEFAULT_ESTIMATE


class Action(enum.Enum):
    """What an image needs before the result is there."""

    NONE = "none"
    PULL = "pull"
    BUILD = "build"


@dataclass(frozen=True)
class Job:
    """One image's work in a run."""

    name: str
    action: Action
    #: Push after the build (or, with ``Action.NONE``, push the local image).
    push: bool = False
    #: Images pulled or built in this run that this build needs locally first.
    after: tuple[str, ...] = ()
    #: Whether the build needs the batched cargo build's output.
    cargo: bool = False
    #: Expected build seconds, for critical-path priority.
    estimate: float = DEFAULT_ESTIMATE
    #: Registry host of the image, for the per-registry transfer limit.
    registry: str = ""
    #: Every image the build needs on its engine (``after`` plus those there
    #: from the start); only a pool of engines moves them.
    needs: tuple[str, ...] = ()
    #: The platform the build needs (``linux/amd64``); None: any engine.
    platform: str | None = None
    #: Whether the image may travel between engines through a registry
    #: (``publish: false`` images do only with ``--transfer-registry``).
    portable: bool = True
    #: In the home engine (the first of the pool) when the run starts.
    local: bool = False
    #: In the registry, under its spec, when the run starts.
    published: bool = False
    #: Must end in the home engine (``acquire``/``run`` targets).
    home: bool = False


@dataclass(frozen=True)
class RunLimits:
    """How much runs at once."""

    jobs: int = 2
    transfers: int = DEFAULT_TRANSFERS
    fail_fast: bool = False

    def __post_init__(self) -> None:
        if self.jobs < 1 or self.transfers < 1:
            raise ValueError("limits must be at least 1")


class OutcomeKind(enum.StrEnum):
    """What became of an image (its value is the word the summary and ``--json`` use)."""

    NONE = "none"
    PULLED = "pulled"
    BUILT = "built"
    #: Built by another process while we waited for its lock.
    BUILT_ELSEWHERE = "built-elsewhere"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What happened to one image."""

    name: str
    action: OutcomeKind
    pushed: bool
    #: Seconds of this image's own work, from its first pull, build or push start.
    seconds: float
    error: str = ""
    #: Why nothing was pushed although a push was wanted (e.g. published meanwhile).
    note: str = ""
    #: The engine that built (or pulled) it.
    engine: str = ""
    #: Seconds after the run started when cargo had built all it needs (cargo images).
    landed: float | None = None


@dataclass(frozen=True)
class Slots:
    """One engine of the pool, as the scheduler sees it."""

    name: str
    slots: int
    #: What it builds (``linux/amd64``); None: whatever it is asked to.
    platform: str | None = None

    def __post_init__(self) -> None:
        if self.slots < 1:
            raise ValueError(f"engine {self.name}: slots must be at least 1")


@dataclass
class EngineLoad:
    """What one engine did in a run."""

    builds: int = 0
    #: Seconds its build slots were taken (builds and the fetches before them).
    busy_seconds: float = 0.0
    #: Images brought into it from the registry for builds (or as results).
    transfers: int = 0
    #: Why it was dropped from the run, if it was.
    lost: str = ""
    #: Builds in progress right now.
    running: int = 0
    #: Images it was pushing when it was lost: cut from us, it may still finish
    #: such a push (see :mod:`mzbuild_async.workflow.lost`).
    cut_pushes: list[str] = field(default_factory=list)


class Worker(Protocol):
    """Does the work; the seam between the scheduler and Docker/cargo.

    ``engine`` names the pool engine the work happens on (see :class:`Slots`).
    """

    async def cargo(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        """Build the Rust binaries of ``names`` in one batch, calling ``landed(name)``
        the moment every artifact image ``name`` needs is there (staged for its
        build), while cargo goes on."""
        ...

    async def pull(self, name: str, engine: str) -> None:
        """Pull image ``name`` (published) into ``engine``."""
        ...

    async def build(self, name: str, engine: str) -> str | None:
        """Build image ``name`` on ``engine`` (its dependencies are there).

        Returns "" (or None) when it built the image, else why it did not
        need to (another process built it meanwhile).
        """
        ...

    async def push(self, name: str, engine: str) -> str:
        """Push image ``name`` from ``engine``; "" when pushed, else why it was not needed."""
        ...

    async def send(self, name: str, engine: str) -> int | None:
        """Push image ``name`` from ``engine`` to where other engines fetch it; the
        bytes that moved (None: not known)."""
        ...

    async def fetch(self, name: str, engine: str) -> int | None:
        """Bring image ``name`` (sent or published) into ``engine``, tagged with its
        spec; the bytes that moved (None: not known)."""
        ...

    async def alive(self, engine: str) -> bool:
        """Whether ``engine`` still answers."""
        ...


@runtime_checkable
class PushMeter(Protocol):
    """A :class:`Worker` that says what its pushes moved (so pushes teach link rates)."""

    def pushed_bytes(self, name: str) -> int | None:
        """Bytes the last push of image ``name`` moved (None: not known)."""
        ...


class RunWorker(Worker, Protocol):
    """A :class:`Worker` as a run uses it: what it saw while it worked, read when
    the round ends, and closed then."""

    #: Specs a pull or push found missing although lookups said present.
    stale: set[str]
    #: Seconds each build took (the build history learns them).
    build_seconds: dict[str, float]
    #: Seconds waited for each image another CI step builds.
    waited: dict[str, float]
    #: The awaited images whose ``--wait`` ran out.
    timed_out: set[str]
    #: Each image pushed or found: its digest, size and media type.
    digests: dict[str, tuple[str, int, str]]

    async def aclose(self) -> None:
        """Release what the worker holds (staging directories, sessions)."""
        ...


class OneEngine:
    """The pool half of :class:`Worker` for workers of one engine (the scheduler
    moves images only between engines of a pool, so these are never called)."""

    async def send(self, name: str, engine: str) -> int | None:
        """Refused: one engine has nowhere to send to."""
        raise RuntimeError(f"send({name}) on a one-engine worker")

    async def fetch(self, name: str, engine: str) -> int | None:
        """Refused: one engine has nowhere to fetch from."""
        raise RuntimeError(f"fetch({name}) on a one-engine worker")

    async def alive(self, engine: str) -> bool:
        """Always: a lost engine shows as EngineError."""
        return True


def critical_paths(jobs: Mapping[str, Job]) -> dict[str, float]:
    """Per job: its estimate plus the longest chain of builds that wait on it (among
    ``jobs``: a job may wait for others not in them)."""
    dependents: dict[str, list[str]] = {name: [] for name in jobs}
    for job in jobs.values():
        for dep in job.after:
            if dep in dependents:
                dependents[dep].append(job.name)
    return longest_paths(jobs, dependents, lambda name: weight(jobs[name]))


def weight(job: Job) -> float:
    """What a job adds to a critical path: its estimate if it builds, else nothing."""
    return job.estimate if job.action is Action.BUILD else 0.0
