"""The seam between the build code and a container engine: the protocols and their
value types.

The worker, the daemon lookup tier and the workflow talk to an
:class:`Engine` made by :func:`~.factory.open_engine`:
:class:`~.docker.DockerEngine` (the Docker engine API over aiodocker) or
:class:`~.memory.MemoryEngine` (in memory, shipped for tests and scripting,
as ``httpx.MockTransport`` is); a pool (:mod:`.pool`) is several of them. A
:class:`Builder` builds instead of the engine's own API (``docker buildx``).
Everything here is a value or a protocol: nothing below imports an engine
implementation.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..support.events import BuildStep

if TYPE_CHECKING:
    from ..registry.auth import Credentials

#: Receives each line of a build's, pull's or push's output.
LineSink = Callable[[str], None]
#: Receives each finished step of a build (from builders that report steps: BuildKit).
StepSink = Callable[[BuildStep], None]

#: Lines of build output kept to explain a failure.
TAIL_LINES = 20


def drop(line: str) -> None:
    """Discard an output line (the default sink)."""


def drop_step(step: BuildStep) -> None:
    """Discard a finished step (the default sink)."""


#: Seconds a short request (ping, info, inspect, tag, remove, container
#: create/start/delete) may take: a frozen engine accepts connections but never
#: answers, and aiodocker has no timeout of its own for these.
REQUEST_SECONDS = 30.0

#: Image inspections (the daemon tier's lookups) handed to the engine's client at
#: once; the rest wait in our limiter, before the HTTP client and its timeout.
INSPECTIONS = 32


@dataclass(frozen=True)
class BuildRequest:
    """One image build: tag, Dockerfile name, arguments, labels, platform, caches."""

    tag: str
    dockerfile: str
    buildargs: Mapping[str, str]
    labels: Mapping[str, str]
    platform: str | None = None
    cache_from: Sequence[str] = ()
    #: Extra tags to apply after a successful build.
    also_tag: Sequence[str] = ()
    #: Carry BuildKit's inline cache in the image (it is then a registry cache that
    #: another engine's build imports without pulling it); ignored by other builders.
    inline_cache: bool = False
    #: Secrets by id, for ``RUN --mount=type=secret,id=ID`` (served over a BuildKit
    #: session: in no layer, history or log). Only BuildKit takes them.
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    #: SSH agents by id (``RUN --mount=type=ssh,id=ID``): the socket of each.
    ssh: Mapping[str, str] = field(default_factory=dict)
    #: The Dockerfile mounts secrets or agents: a BuildKit session is opened even when
    #: none of them is given (BuildKit then skips an optional mount).
    session: bool = False
    #: Registry credentials by host (username, secret) BuildKit may ask for over a
    #: session, to read ``cache_from`` images; other builders pull those themselves.
    logins: Mapping[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineInfo:
    """What an engine says of itself (``GET /info``)."""

    platform: str
    cpus: int
    version: str = ""
    #: Who the engine is: one engine under several URLs has one identity (for
    #: Docker: ``/info``'s ``ID``, host name and data root). Empty when unknown.
    id: str = ""


class Engine(Protocol):
    """What the build code needs of a container engine.

    Every method raises :class:`~mzbuild_async.errors.EngineError` when the
    engine is gone, and a :class:`~mzbuild_async.errors.BuildError` for a
    failure of the work itself (a Dockerfile step, a refused push).
    Registry credentials are ours (:class:`~..registry.auth.Credentials`);
    each engine encodes them as it needs.
    """

    async def connect(self) -> None:
        """Set up the connection ahead of the first request (optional to call)."""
        ...

    async def ping(self) -> str:
        """The engine's version."""
        ...

    async def info(self) -> EngineInfo:
        """The engine's platform, CPU count, version and identity."""
        ...

    async def exists(self, spec: str) -> bool:
        """Whether the engine has an image tagged ``spec``."""
        ...

    async def image_id(self, spec: str) -> str | None:
        """The ID (config digest) of the image tagged ``spec``; None when there is none."""
        ...

    async def build(
        self,
        request: BuildRequest,
        context: AsyncIterable[bytes],
        on_line: LineSink = ...,
        on_step: StepSink = ...,
    ) -> str:
        """Build ``request.tag`` from a streamed tar context; the image ID (each output
        line to ``on_line``, each finished step, where the builder reports them, to
        ``on_step``)."""
        ...

    async def imports_cache(self) -> bool:
        """Whether its builder reads ``cache_from`` images from their registry itself
        (BuildKit: no pull first), rather than from the engine's images (classic)."""
        ...

    async def tag(self, source: str, target: str) -> None:
        """Tag image ``source`` as ``target``."""
        ...

    async def pull(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = ...
    ) -> None:
        """Pull ``spec`` from its registry (anonymously when ``credentials`` is None)."""
        ...

    async def push(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = ...
    ) -> str:
        """Push ``spec`` to its registry; the manifest digest."""
        ...

    def moved(self, spec: str) -> int | None:
        """Bytes the last pull or push of ``spec`` moved over the network (None: not
        known)."""
        ...

    async def remove(self, spec: str) -> None:
        """Remove the image tagged ``spec`` (nothing if there is none)."""
        ...

    async def run(self, spec: str, args: Sequence[str], on_output: Callable[[bytes], None]) -> int:
        """Run ``spec`` in a fresh container, removed afterwards; its exit code."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...


class ImageInspector(Protocol):
    """The little an image lookup needs of an engine (the daemon tier)."""

    async def connect(self) -> None:
        """Set up the connection ahead of the first request."""
        ...

    async def exists(self, spec: str) -> bool:
        """Whether the engine has an image tagged ``spec``."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...


class Builder(Protocol):
    """Builds images into the local engine instead of the engine API (``docker buildx``,
    with BuildKit's registry cache)."""

    async def check(self) -> None:
        """A clear :class:`~mzbuild_async.errors.UsageError` unless it can build."""
        ...

    async def build(
        self,
        request: BuildRequest,
        context: AsyncIterable[bytes],
        on_line: LineSink = ...,
        *,
        cache_ref: str | None = None,
    ) -> None:
        """Build ``request.tag`` (with the layer cache at ``cache_ref``, if any)."""
        ...
