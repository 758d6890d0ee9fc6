"""The local-daemon tier: is the image already in the Docker engine?

Asks the engine the cheapest way there is (:func:`local_inspector`: its unix
socket with httpx, else the Docker engine through aiodocker; ``DOCKER_HOST``
honoured). An image missing locally is no opinion (the registry may have
it). No engine means the tier is skipped, with one warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..engine.inspector import local_inspector
from ..engine.listing import TagSnapshot
from ..engine.protocol import ImageInspector
from ..errors import EngineError
from ..model.status import Probe, Status
from ..registry.names import Reference
from ..support import logs


@dataclass
class DaemonTier:
    """``GET /images/<spec>/json`` on the local engine (or, for many lookups at once,
    one ``GET /images/json``)."""

    name: str = "daemon"
    _engine: ImageInspector = field(default_factory=lambda: local_inspector({}))
    _disabled: bool = False
    _snapshot: TagSnapshot | None = None

    @classmethod
    def at(cls, environ: Mapping[str, str]) -> DaemonTier:
        """The tier over the local engine ``environ`` names (``DOCKER_HOST``,
        ``DOCKER_CONTEXT``; neither: the default socket)."""
        return cls(_engine=local_inspector(environ))

    async def warm_up(self) -> None:
        """Connect now (through aiodocker, its import takes ~0.25 s), ahead of the first
        lookup."""
        await self._engine.connect()

    async def prefetch(self, specs: Sequence[str]) -> None:
        """About to look up ``specs``: one listing of the engine's tags for them all
        when they are many (:mod:`..engine.listing`; each answer used once)."""
        if self._snapshot is None:
            self._snapshot = TagSnapshot(self._engine)
        if not self._disabled:
            await self._snapshot.prefetch(specs)

    def forget(self, specs: Iterable[str]) -> None:
        """Listed answers for ``specs`` not used by now go stale: drop them."""
        if self._snapshot is not None:
            self._snapshot.forget(specs)

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """Present if the engine has the image; else no opinion."""
        if self._disabled:
            return None
        try:
            found = await (self._snapshot or self._engine).exists(spec)
        except EngineError as exc:  # the engine's boundary translated aiodocker's errors
            self._skip(f"no Docker engine: {exc}")
            return None
        return Probe(Status.PRESENT, "in the local engine") if found else None

    def _skip(self, why: str) -> None:
        if not self._disabled:
            self._disabled = True
            logs.warning(f"daemon tier skipped: {why}")

    async def aclose(self) -> None:
        """Close the engine connection."""
        await self._engine.aclose()
