"""One place that turns an engine's address into an :class:`~.protocol.Engine`.

``open_engine(None)`` is the local engine (``DOCKER_HOST`` honoured); an
:class:`~.endpoints.Endpoint` is a pool member: ``memory://NAME`` is the
in-memory engine registered under that name (:mod:`.inmemory`), anything
else the Docker engine API. A new kind of engine is one module behind the
protocol and one branch here.
"""

from __future__ import annotations

from .endpoints import Endpoint
from .protocol import Engine


def open_engine(
    endpoint: Endpoint | None = None, *, local: Endpoint | None = None, builder: str = "auto"
) -> Engine:
    """The engine at ``endpoint`` (None: the local one, at ``local`` when given:
    :func:`~.endpoints.local_endpoint`), not connected yet; ``builder``: ``auto``
    (BuildKit where the engine has it), ``buildkit`` or ``classic``."""
    if endpoint is not None and endpoint.url.startswith("memory://"):
        from .inmemory import MemoryEngine

        return MemoryEngine.named(endpoint.url.removeprefix("memory://"))
    from .docker import DockerEngine

    return DockerEngine(endpoint, local=local, builder=builder)
