"""The lookup tiers, consulted in order: memory, disk, daemon, registry, manifest.

A tier answers ``present`` or ``absent`` (definite), ``unknown`` (it tried
and could not tell), or ``None`` (no opinion: ask the next tier).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # the CLI imports this package for TIER_ORDER; keep httpx out of it
    from ..registry.client import Probe
    from ..registry.names import Reference

#: Tier names in the order they are consulted.
TIER_ORDER = ("memory", "disk", "daemon", "registry", "manifest")


class Tier(Protocol):
    """One place to look for an image."""

    name: str

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """The tier's answer for ``spec``, or None to pass to the next tier."""
        ...
