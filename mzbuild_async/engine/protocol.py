"""The seam between the build code and a Docker engine.

The worker, the daemon lookup tier and the workflow talk to an
:class:`Engine`; :class:`~.docker.DockerEngine` (the engine API over
aiodocker) is the one there is; a pool (:mod:`.pool`) is several of them.
Unit tests put a fake behind this protocol; end-to-end tests use the real
engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .docker import BuildRequest, EngineInfo

#: Receives each line of a build's, pull's or push's output.
LineSink = Callable[[str], None]


class Engine(Protocol):
    """What the build code needs of a Docker engine.

    Every method raises :class:`~mzbuild_async.errors.EngineError` when the
    engine is gone, and a :class:`~mzbuild_async.errors.BuildError` for a
    failure of the work itself (a Dockerfile step, a refused push).
    """

    async def connect(self) -> None:
        """Set up the connection ahead of the first request (optional to call)."""
        ...

    async def ping(self) -> str:
        """The engine's version."""
        ...

    async def info(self) -> EngineInfo:
        """The engine's platform, CPU count and version."""
        ...

    async def exists(self, spec: str) -> bool:
        """Whether the engine has an image tagged ``spec``."""
        ...

    async def build(
        self, request: BuildRequest, context: AsyncIterable[bytes], on_line: LineSink = ...
    ) -> str:
        """Build ``request.tag`` from a streamed tar context; the image ID."""
        ...

    async def tag(self, source: str, target: str) -> None:
        """Tag image ``source`` as ``target``."""
        ...

    async def pull(self, spec: str, auth: str, on_line: LineSink = ...) -> None:
        """Pull ``spec`` (``auth``: the X-Registry-Auth value)."""
        ...

    async def push(self, spec: str, auth: str, on_line: LineSink = ...) -> str:
        """Push ``spec``; the manifest digest."""
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
