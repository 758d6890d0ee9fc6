"""The registry tiers: ``HEAD`` of the manifest, then (when it may help) ``GET``."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.status import Probe
from ..registry.client import RegistryClient
from ..registry.names import DOCKER_HUB, Reference


@dataclass
class RegistryTier:
    """``HEAD /v2/<name>/manifests/<tag>``: 200 present, 404 absent, else unknown."""

    client: RegistryClient
    name: str = "registry"

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """Ask the registry; an unknown a GET could fix passes to the manifest tier."""
        probe = await self.client.lookup(ref, method="HEAD")
        return None if probe.get_may_help else probe


@dataclass
class ManifestTier:
    """A ``GET`` of the manifest, like ``docker manifest inspect``.

    Consulted only when the HEAD could not answer for a reason a GET can fix
    (a registry that refuses HEAD). Off for Docker Hub unless asked for,
    because there a GET counts as a pull against the rate limit.
    """

    client: RegistryClient
    allow_docker_hub: bool = False
    name: str = "manifest"

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """GET the manifest (or pass, for Docker Hub by default)."""
        if ref.domain == DOCKER_HUB and not self.allow_docker_hub:
            return None
        return await self.client.lookup(ref, method="GET")
