"""What a run shows while it runs, on stderr, from its events.

- On a terminal, :class:`LiveProgress` redraws a block in place: totals and
  elapsed time, then one line per image in flight with its phase and its
  latest output line.
- Otherwise, :class:`LineProgress` prints a line when a step starts and
  when it ends (failures with their last output lines), and a status line
  every ``interval`` seconds while work is in flight.
- On GitHub Actions and Buildkite, each image's build output is printed
  when its build ends, folded into a group (``::group::`` / ``--- ``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from ..ci import detect
from ..ci.protocol import CiSystem
from ..support.events import Event

#: Output lines kept per image to show under a failure.
TAIL = 12
#: Output lines kept per image for its folded CI group.
GROUP_LINES = 5000
#: What each phase is called while it runs.
ACTIVE = {
    "fingerprint": "fingerprinting",
    "lookup": "looking up",
    "cargo": "building (cargo)",
    "pull": "pulling",
    "build": "building",
    "push": "pushing",
}


@dataclass
class _Image:
    phase: str = ""
    engine: str = ""
    since: float = 0.0
    last: str = ""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    log: list[str] = field(default_factory=list)


@dataclass
class _Progress:
    """State shared by both views: who is doing what, and the totals."""

    out: TextIO
    verbose: bool = False
    #: The CI system whose log folds each finished build's output (None: no folding).
    folding: CiSystem | None = None
    clock: Callable[[], float] = time.monotonic
    images: dict[str, _Image] = field(default_factory=dict)
    done: dict[str, int] = field(default_factory=dict)
    started: float = field(default=0.0)
    #: Engines of a pool seen so far, and those lost.
    engines: dict[str, None] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def observe(self, event: Event) -> None:
        """Update the state from one event."""
        if event.engine:
            self.engines.setdefault(event.engine)
        if event.phase == "engine":
            self.lost.add(event.engine)
            return
        if event.status in ("landed", "step"):  # (cargo goes on; the build goes on)
            return
        image = self.images.setdefault(event.image or event.phase, _Image())
        if event.status == "line":
            image.last = event.detail
            image.tail.append(event.detail)
            if self.folding and event.phase == "build" and len(image.log) < GROUP_LINES:
                image.log.append(event.detail)
        elif event.status == "start":
            image.phase = event.phase
            image.engine = event.engine
            image.since = self.clock()
            image.last = ""
        else:
            image.phase = ""
            self.done[event.status] = self.done.get(event.status, 0) + 1

    def in_flight(self) -> list[tuple[str, _Image]]:
        return [(n, i) for n, i in self.images.items() if i.phase]

    def totals(self) -> str:
        active: dict[str, int] = {}
        for _name, image in self.in_flight():
            active[ACTIVE.get(image.phase, image.phase)] = (
                active.get(ACTIVE.get(image.phase, image.phase), 0) + 1
            )
        parts = [f"{n} {what}" for what, n in sorted(active.items())]
        parts += [f"{n} {status}" for status, n in sorted(self.done.items())]
        line = f"[{self.elapsed():7.1f}s] " + (", ".join(parts) if parts else "starting")
        return line + self.load()

    def load(self) -> str:
        """`` | engines: a 2, b 1, c lost`` (builds in flight per engine), for a pool."""
        if len(self.engines) < 2:
            return ""
        busy = dict.fromkeys(self.engines, 0)
        for _name, image in self.in_flight():
            if image.phase == "build" and image.engine in busy:
                busy[image.engine] += 1
        return " | engines: " + ", ".join(
            f"{name} {'lost' if name in self.lost else n}" for name, n in busy.items()
        )

    def fold(self, name: str, event: Event) -> None:
        """Print an image's finished build output as a folded CI group."""
        image = self.images[name]
        if not self.folding or event.phase != "build" or not image.log:
            return
        self.folding.fold(
            self.out, f"{name} build {event.status}", image.log, failed=event.status == "failed"
        )
        image.log.clear()


class LineProgress(_Progress):
    """Progress for logs: steps as they start and end, a status line now and then."""

    interval: float = 10.0

    def __call__(self, event: Event) -> None:
        self.observe(event)
        name = event.image or event.phase
        if event.status == "step":  # (with -v, its lines said so already)
            return
        if event.status == "line":
            if self.verbose:
                self.out.write(f"    {name} | {event.detail}\n")
                self.out.flush()
            return
        if event.phase == "engine":
            self.out.write(f"[{self.elapsed():7.1f}s] engine {event.engine} {event.status}:")
            self.out.write(f" {event.detail}\n")
            self.out.flush()
            return
        self.fold(name, event)
        detail = f": {event.detail}" if event.detail else ""
        if event.status == "start":
            detail = f" ({event.detail})" if event.detail else ""
        if event.engine and len(self.engines) > 1:
            detail += f" [{event.engine}]"
        label = f"{name}: {event.phase}" if event.image else event.phase
        self.out.write(f"[{self.elapsed():7.1f}s] {label} {event.status}{detail}\n")
        if event.status == "failed" and not self.verbose and not self.folding:
            for line in self.images[name].tail:
                self.out.write(f"    {name} | {line}\n")
        self.out.flush()

    async def ticker(self) -> None:
        """Print the status line every ``interval`` seconds while work is in flight."""
        while True:
            await anyio.sleep(self.interval)
            if self.in_flight():
                self.out.write(self.totals() + "\n")
                self.out.flush()

    def close(self) -> None:
        """Nothing to clear."""


class LiveProgress(_Progress):
    """Progress for a terminal: a block redrawn in place, at most ten times a second."""

    _drawn: int = 0
    _last_draw: float = 0.0

    def __call__(self, event: Event) -> None:
        self.observe(event)
        if event.status in ("failed", "skipped", "lost", "requeued"):
            name = event.image or event.phase
            self._clear()
            label = f"{name}: {event.phase}" if event.image else event.phase
            if event.phase == "engine":
                label = f"engine {event.engine}"
            self.out.write(f"[{self.elapsed():7.1f}s] {label} {event.status}: {event.detail}\n")
            if event.status == "failed" and name in self.images:
                for line in self.images[name].tail:
                    self.out.write(f"    {name} | {line}\n")
        if event.status in ("done", "failed") and self.folding and event.phase != "engine":
            self._clear()
            self.fold(event.image or event.phase, event)
        self.draw(force=event.status not in ("line", "step"))

    def _clear(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def draw(self, *, force: bool = False) -> None:
        """Redraw the block (throttled unless ``force``)."""
        now = self.clock()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        width = shutil.get_terminal_size((100, 20)).columns
        lines = [self.totals()]
        for name, image in self.in_flight()[:20]:
            what = ACTIVE.get(image.phase, image.phase)
            line = f"  {name:<24} {what:<16} {now - image.since:6.1f}s  {image.last}"
            lines.append(line[: width - 1])
        hidden = len(self.in_flight()) - 20
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        self._clear()
        self.out.write("".join(f"{line}\x1b[K\n" for line in lines))
        self.out.flush()
        self._drawn = len(lines)

    async def ticker(self) -> None:
        """Keep the elapsed times moving while nothing is printed."""
        while True:
            await anyio.sleep(0.5)
            self.draw(force=True)

    def close(self) -> None:
        """Remove the block (the summary follows)."""
        self._clear()
        self.out.flush()


@dataclass
class JsonProgress:
    """``--progress rawjson``: every event as one JSON object per line (for tools)."""

    out: TextIO

    def __call__(self, event: Event) -> None:
        record: dict[str, object] = {
            "at": round(event.at, 3),
            "image": event.image,
            "phase": str(event.phase),
            "status": str(event.status),
            "detail": event.detail,
            "engine": event.engine,
        }
        if event.step is not None:  # a step inside a build (BuildKit's)
            record["step"] = {
                "number": event.step.number,
                "name": event.step.name,
                "outcome": event.step.outcome,
                "seconds": round(event.step.seconds, 3),
            }
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    async def ticker(self) -> None:
        """Nothing to tick: every event is a line already."""

    def close(self) -> None:
        """Nothing to clear."""


Progress = LineProgress | LiveProgress | JsonProgress
#: ``--progress`` values (``BUILDKIT_PROGRESS``'s, as buildx takes them).
PROGRESS_MODES = ("auto", "plain", "tty", "quiet", "rawjson")


def progress_mode(flag: str | None, environ: Mapping[str, str], log_format: str = "") -> str:
    """``--progress``, else ``rawjson`` with ``--log-format json`` (stderr all JSON lines,
    for the log shipper that asked for it), else ``BUILDKIT_PROGRESS`` when it is one of
    the modes, else ``auto``."""
    if flag:
        return flag
    if log_format == "json":
        return "rawjson"
    value = environ.get("BUILDKIT_PROGRESS", "").strip().lower()
    return value if value in PROGRESS_MODES else "auto"


def make_progress(
    out: TextIO,
    *,
    verbose: bool = False,
    quiet: bool = False,
    environ: Mapping[str, str],
    interval: float = 10.0,
    mode: str = "auto",
) -> Progress | None:
    """The view for ``out``: ``auto`` is live on a terminal (not ``TERM=dumb``), lines
    otherwise; ``plain`` lines, ``tty`` live, ``rawjson`` JSON lines; None for
    ``quiet`` (or ``-q``)."""
    if quiet or mode == "quiet":
        return None
    if mode == "rawjson":
        return JsonProgress(out)
    folding = detect(environ)
    live = out.isatty() and not verbose and environ.get("TERM") != "dumb"
    if mode == "tty" or (mode == "auto" and live):
        return LiveProgress(out, verbose=verbose, folding=folding)
    progress = LineProgress(out, verbose=verbose, folding=folding)
    progress.interval = interval
    return progress
