"""BuildKit's build progress, as the engine streams it for ``POST /build?version=2``.

Each ``{"id": "moby.buildkit.trace", "aux": "<base64>"}`` line of the stream is
a protobuf ``StatusResponse`` of BuildKit's control API (field numbers from
its ``control.proto``): vertexes (the build's steps: name, started, completed,
cached, error), statuses (transfers inside a step) and logs (a step's output).
:func:`decode_status` reads one; :class:`Progress` folds them into the lines a
user reads (as ``docker buildx build --progress plain`` prints them), each
finished step as a :class:`~mzbuild_async.support.events.BuildStep`, and for a
failure the failing step and its last lines.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import DockerBuildError
from ..support.events import BuildStep
from ..support.protowire import fields, signed, text

#: Log lines kept per step, for the message of a failure.
TAIL_LINES = 20
#: A Dockerfile step's vertex name: ``[2/3] RUN ...`` or ``[stage 2/4] RUN ...``.
#: The engine's stream items carrying a BuildKit status, and the built image's ID.
TRACE_ID, IMAGE_ID_ID = "moby.buildkit.trace", "moby.image.id"
#: The command in BuildKit's error for a failed ``RUN`` (its shell form).
_FAILED_COMMAND = re.compile(r"executor failed running \[(.*)\]: ")
_STEP = re.compile(r"^\[(?:(?P<stage>[^\]]*) )?(?P<n>\d+)/(?P<of>\d+)\] (?P<instruction>.*)$", re.S)


@dataclass(frozen=True)
class Vertex:
    """One step of the build graph, as last reported."""

    digest: str
    name: str = ""
    inputs: tuple[str, ...] = ()
    cached: bool = False
    #: Seconds since the epoch (None: not yet).
    started: float | None = None
    completed: float | None = None
    error: str = ""


@dataclass(frozen=True)
class Log:
    """Output of one step."""

    vertex: str
    data: bytes
    #: 1 stdout, 2 stderr.
    stream: int = 1
    timestamp: float | None = None


@dataclass(frozen=True)
class Status:
    """One ``StatusResponse``."""

    vertexes: tuple[Vertex, ...] = ()
    logs: tuple[Log, ...] = ()
    #: The short text of each warning.
    warnings: tuple[str, ...] = ()


def _timestamp(data: int | bytes) -> float:
    if not isinstance(data, bytes):
        raise ValueError("a number where a timestamp was expected")
    seconds = nanos = 0
    for number, value in fields(data):
        if number == 1:
            seconds = signed(value)
        elif number == 2 and isinstance(value, int):
            nanos = value
    return seconds + nanos / 1e9


def _vertex(data: bytes) -> Vertex:
    digest, name, error = "", "", ""
    inputs: list[str] = []
    cached = False
    started: float | None = None
    completed: float | None = None
    for number, value in fields(data):
        if number == 1:
            digest = text(value)
        elif number == 2:
            inputs.append(text(value))
        elif number == 3:
            name = text(value)
        elif number == 4:
            cached = bool(value)
        elif number == 5:
            started = _timestamp(value)
        elif number == 6:
            completed = _timestamp(value)
        elif number == 7:
            error = text(value)
    return Vertex(digest, name, tuple(inputs), cached, started, completed, error)


def _log(data: bytes) -> Log:
    vertex, msg, stream, when = "", b"", 1, None
    for number, value in fields(data):
        if number == 1:
            vertex = text(value)
        elif number == 2:
            when = _timestamp(value)
        elif number == 3:
            stream = signed(value)
        elif number == 4 and isinstance(value, bytes):
            msg = value
    return Log(vertex, msg, stream, when)


def _warning(data: bytes) -> str:
    for number, value in fields(data):
        if number == 3:
            return text(value)
    return ""


def decode_status(data: bytes) -> Status:
    """One ``StatusResponse`` (``ValueError`` when it is not one)."""
    vertexes: list[Vertex] = []
    logs: list[Log] = []
    warnings: list[str] = []
    for number, value in fields(data):
        if not isinstance(value, bytes):
            continue
        if number == 1:
            vertexes.append(_vertex(value))
        elif number == 3:
            logs.append(_log(value))
        elif number == 4:
            warnings.append(_warning(value))
    return Status(tuple(vertexes), tuple(logs), tuple(warnings))


@dataclass
class _Step:
    number: int
    vertex: Vertex
    tail: list[str] = field(default_factory=list)
    #: An unfinished last line of output.
    pending: str = ""
    done: bool = False


def _ignore(step: BuildStep) -> None:
    """Drop a finished step."""


@dataclass
class Progress:
    """The steps of one BuildKit build, folded from its status messages; ``on_step``
    gets each as it finishes (done, cached or failed)."""

    on_step: Callable[[BuildStep], None] = _ignore
    steps: dict[str, _Step] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: The built image's ID, and the build's error, as the stream said them.
    image_id: str = ""
    error: str = ""

    def feed(self, status: Status) -> list[str]:
        """Take one status message; the lines it adds, as ``--progress plain`` has them
        (``#N NAME``, ``#N 0.123 output``, ``#N DONE 0.4s``, ``#N CACHED``, ``#N ERROR``)."""
        lines: list[str] = []
        for vertex in status.vertexes:
            step = self.steps.get(vertex.digest)
            if step is None:
                step = self.steps[vertex.digest] = _Step(len(self.steps) + 1, vertex)
                lines.append(f"#{step.number} {vertex.name}")
            step.vertex = vertex
            if step.done:
                continue
            if vertex.cached:
                lines.append(f"#{step.number} CACHED")
                self._finish(step, "cached")
            elif vertex.error:
                lines += self._flush(step)
                lines.append(f"#{step.number} ERROR: {vertex.error}")
                self._finish(step, "failed")
            elif vertex.completed is not None:
                lines += self._flush(step)
                lines.append(f"#{step.number} DONE {self._took(vertex):.1f}s")
                self._finish(step, "done")
        for log in status.logs:
            step = self.steps.get(log.vertex)
            if step is None:
                continue
            chunk = step.pending + log.data.decode("utf-8", "replace")
            *complete, step.pending = chunk.split("\n")
            for raw in complete:
                lines.append(self._output(step, raw.rstrip("\r"), log.timestamp))
        self.warnings += [w for w in status.warnings if w]
        return lines

    @staticmethod
    def _took(vertex: Vertex) -> float:
        if vertex.completed is None or vertex.started is None:
            return 0.0
        return max(0.0, vertex.completed - vertex.started)

    def _finish(self, step: _Step, outcome: str) -> None:
        step.done = True
        seconds = 0.0 if outcome == "cached" else self._took(step.vertex)
        self.on_step(BuildStep(step.number, step.vertex.name, outcome, seconds))

    def _output(self, step: _Step, line: str, when: float | None) -> str:
        step.tail.append(line)
        del step.tail[:-TAIL_LINES]
        started = step.vertex.started
        offset = f"{when - started:.3f} " if when is not None and started is not None else ""
        return f"#{step.number} {offset}{line}"

    def _flush(self, step: _Step) -> list[str]:
        if not step.pending:
            return []
        line, step.pending = step.pending, ""
        return [self._output(step, line, None)]

    def take(self, item: Mapping[str, Any]) -> list[str]:
        """Fold one item of the engine's ``/build?version=2`` stream: a status (the
        lines it adds), the image's ID, or the build's error (the stream is read on:
        the status marking the failed step can come after it)."""
        aux = item.get("aux")
        if item.get("id") == TRACE_ID:
            try:
                return self.feed(decode_status(base64.b64decode(str(aux or ""))))
            except ValueError:
                return []  # (a progress message we cannot read: the build goes on)
        if item.get("id") == IMAGE_ID_ID and isinstance(aux, dict):
            self.image_id = str(aux.get("ID", ""))
        elif "error" in item or "errorDetail" in item:
            self.error = str(item.get("error") or item.get("errorDetail", {}).get("message"))
        return []

    def check(self, tag: str) -> None:
        """:class:`DockerBuildError` if the stream said the build of ``tag`` failed:
        naming the failed step, with its last lines."""
        if not self.error:
            return
        failed = self.failed(self.error)
        where = f" at {failed.vertex.name}" if failed is not None else ""
        tail = tuple(failed.tail if failed is not None else ())
        raise DockerBuildError(f"docker build of {tag} failed{where}: {self.error.strip()}", tail)

    def failed(self, error: str = "") -> _Step | None:
        """The step that failed (the first with an error), if any. When the engine's
        ``error`` came before the status marking the step (seen under load): the
        unfinished step running the command it names (``executor failed running
        [/bin/sh -c CMD]``), else the unfinished step started last."""
        erred = next((s for s in self.steps.values() if s.vertex.error), None)
        if erred is not None:
            return erred
        unfinished = [s for s in self.steps.values() if not s.done]
        named = _FAILED_COMMAND.search(error)
        if named is not None:
            command = named.group(1).removeprefix("/bin/sh -c ")
            running = [s for s in unfinished if s.vertex.name.endswith(command)]
            if running:
                return running[-1]
        started = [s for s in unfinished if s.vertex.started is not None]
        return max(started, key=lambda s: s.vertex.started or 0.0, default=None)

    def cached(self) -> list[str]:
        """The names of the steps BuildKit took from its cache."""
        return [s.vertex.name for s in self.steps.values() if s.vertex.cached]


def dockerfile_step(name: str) -> tuple[str, int, int, str] | None:
    """``(stage, n, of, instruction)`` of a Dockerfile step's vertex name (None for
    BuildKit's internal steps: loading the context, exporting the image)."""
    found = _STEP.match(name)
    if found is None:
        return None
    return (
        found.group("stage") or "",
        int(found.group("n")),
        int(found.group("of")),
        found.group("instruction"),
    )
