"""The memory tier: definite answers already found in this run."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.status import Probe, Status
from ..registry.names import Reference


@dataclass
class MemoryTier:
    """Present and absent answers of this run; unknown is never kept."""

    name: str = "memory"
    _answers: dict[str, tuple[Status, str, int, str]] = field(default_factory=dict)

    async def lookup(self, spec: str, ref: Reference) -> Probe | None:
        """A definite answer remembered for ``spec`` (with its digest, when one came)."""
        known = self._answers.get(spec)
        if known is None:
            return None
        return Probe(known[0], "remembered", digest=known[1], size=known[2], media_type=known[3])

    def record(
        self, spec: str, status: Status, digest: str = "", size: int = 0, media_type: str = ""
    ) -> None:
        """Remember a definite answer (an unknown one is ignored)."""
        if status is Status.PRESENT:
            self._answers[spec] = (status, digest, size, media_type)
        elif status is Status.ABSENT:
            self._answers[spec] = (status, "", 0, "")

    def forget(self, spec: str) -> None:
        """Drop what is known of ``spec`` (after pushing it, say)."""
        self._answers.pop(spec, None)

    def forget_present(self) -> None:
        """Drop every "present" (they may have come from the disk tier, unconfirmed)."""
        self._answers = {k: v for k, v in self._answers.items() if v[0] is not Status.PRESENT}
