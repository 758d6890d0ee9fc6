"""The lookup tiers, consulted in order: memory, disk, daemon, registry, manifest.

A tier answers ``present`` or ``absent`` (definite), ``unknown`` (it tried
and could not tell), or ``None`` (no opinion: ask the next tier).
"""

from __future__ import annotations

from typing import Protocol

from ..model.status import TIER_ORDER, Probe
from ..registry.names import Reference

__all__ = ["TIER_ORDER", "Tier"]


class Tier(Protocol):
    """One place to look for an image."""

    name: str

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """The tier's answer for ``spec``, or None to pass to the next tier."""
        ...
