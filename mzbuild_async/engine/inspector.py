"""Asking the local engine whether it has images, cheaply.

``check``'s daemon tier only needs ``GET /images/NAME/json``. Through
aiodocker that costs its import and client set-up (a quarter of a second
here, more than the lookups themselves); over the engine's unix socket with
httpx, which the registry client has loaded anyway, it costs nothing extra.
:func:`local_inspector` takes that way when the local engine is a unix
socket (the Docker CLI's choice, :func:`~.endpoints.local_endpoint`), and
the engine :func:`~.factory.open_engine` makes otherwise. Failures are
:class:`EngineError`, as everywhere behind the engine seam.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlsplit

import anyio
import httpx

from ..errors import EngineError, reason
from ..support.shards import Shards
from .endpoints import local_endpoint
from .factory import open_engine
from .listing import image_tags
from .protocol import INSPECTIONS, REQUEST_SECONDS, ImageInspector


class SocketInspector:
    """``exists`` over the engine API on a unix socket, with httpx.

    At most :data:`~.protocol.INSPECTIONS` requests are handed to httpx at once
    (as many as its pools have connections): a thousand lookups wait in our
    limiter, where waiting costs nothing, not in httpcore's pool, whose queue
    costs more per request the longer it is, and whose wait counts against each
    request's timeout (the engine is then wrongly "not reached"). They are spread
    over several small pools (:mod:`..support.shards`).
    """

    def __init__(
        self,
        socket: str,
        *,
        request_seconds: float = REQUEST_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.socket = socket
        self.request_seconds = request_seconds
        self.transport = transport
        self._clients: dict[int, httpx.AsyncClient] = {}
        self.slots = anyio.CapacityLimiter(INSPECTIONS)
        self.shards = Shards(INSPECTIONS)

    def _http(self, shard: int = 0) -> httpx.AsyncClient:
        client = self._clients.get(shard)
        if client is None:
            size = self.shards.pool_size  # (several small pools: see support/shards.py)
            client = self._clients[shard] = httpx.AsyncClient(
                # (a unix socket: no TLS, so no CA bundle to load)
                transport=self.transport or httpx.AsyncHTTPTransport(uds=self.socket, verify=False),
                base_url="http://docker",
                timeout=httpx.Timeout(self.request_seconds),
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
        return client

    async def connect(self) -> None:
        """Set up the client (no request is sent)."""
        self._http()

    async def exists(self, spec: str) -> bool:
        """Whether the engine has an image tagged ``spec``."""
        try:
            async with self.slots:
                with self.shards.take() as shard:
                    response = await self._http(shard).get(
                        f"/images/{quote(spec, safe='/:@')}/json"
                    )
        except httpx.HTTPError as exc:
            raise EngineError(
                f"the Docker engine at {self.socket} could not be reached while looking for"
                f" {spec} ({reason(exc)}); start dockerd or set DOCKER_HOST"
            ) from None
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise EngineError(
                f"the Docker engine answered {response.status_code} for {spec}:"
                f" {response.text[:200]}"
            )
        return True

    async def tags(self, patterns: Sequence[str]) -> set[str]:
        """The engine's tags matching ``patterns`` (one ``GET /images/json``)."""
        try:
            async with self.slots:
                with self.shards.take() as shard:
                    response = await self._http(shard).get(
                        "/images/json", params={"filters": json.dumps({"reference": patterns})}
                    )
                    listed = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            raise EngineError(
                f"the Docker engine at {self.socket} could not list its images ({reason(exc)})"
            ) from None
        if not isinstance(listed, list):
            raise EngineError(
                f"the Docker engine answered {response.status_code} to a listing of images"
            )
        return image_tags(listed)

    async def aclose(self) -> None:
        """Close the connections."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


def local_inspector(environ: Mapping[str, str]) -> ImageInspector:
    """The cheapest way to ask the local engine about images (see the module)."""
    local = local_endpoint(environ)
    if local.url.startswith("unix://"):
        return SocketInspector(urlsplit(local.url).path)
    return open_engine(local=local)
