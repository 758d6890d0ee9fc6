"""The local-daemon tier: is the image already in the Docker engine?

Talks to the engine through aiodocker (``DOCKER_HOST`` honoured). An image
missing locally is no opinion (the registry may have it). No engine means
the tier is skipped, with one warning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import logs
from ..builders.docker import DockerEngine
from ..registry.client import Probe, Status
from ..registry.names import Reference


@dataclass
class DaemonTier:
    """``GET /images/<spec>/json`` on the local engine."""

    name: str = "daemon"
    _engine: DockerEngine = field(default_factory=DockerEngine)
    _disabled: bool = False

    async def _client(self) -> Any:
        # aiodocker pulls in aiohttp (~0.1 s): the engine imports it in a
        # worker thread so the event loop keeps serving the other tiers.
        return await self._engine.client()

    async def warm_up(self) -> None:
        """Import aiodocker and create the client now (lookups would do it on first use)."""
        await self._client()

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """Present if the engine has the image; else no opinion."""
        if self._disabled:
            return None
        docker = await self._client()
        import aiodocker  # already imported by _client

        try:
            await docker.images.inspect(spec)
        except aiodocker.exceptions.DockerError as exc:
            if exc.status == 404:
                return None
            if exc.status == 900:  # aiodocker's "could not connect"
                self._skip(f"no Docker engine ({exc.message})")
                return None
            self._skip(f"the Docker engine answered {exc.status}: {exc.message}")
            return None
        except (OSError, ValueError) as exc:
            self._skip(f"no Docker engine ({exc})")
            return None
        except Exception as exc:  # aiohttp's connection errors, among others
            if not type(exc).__module__.startswith("aiohttp"):
                raise
            self._skip(f"no Docker engine ({exc})")
            return None
        return Probe(Status.PRESENT, "in the local engine")

    def _skip(self, why: str) -> None:
        if not self._disabled:
            self._disabled = True
            logs.warning(f"daemon tier skipped: {why}; start dockerd or set DOCKER_HOST")

    async def aclose(self) -> None:
        """Close the engine connection."""
        await self._engine.aclose()
