"""What a lookup can find out, and where it looks.

A tier answers ``present`` or ``absent`` (definite), ``unknown`` (it tried
and could not tell), or nothing (ask the next tier). These types are shared
by the registry client, the lookup tiers and the workflow, so they live
below all of them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import UsageError

#: Tier names in the order they are consulted.
TIER_ORDER = ("memory", "disk", "daemon", "registry", "manifest")


class Status(enum.Enum):
    """What a lookup found out."""

    PRESENT = "present"
    ABSENT = "absent"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Probe:
    """One registry's answer about one manifest."""

    status: Status
    #: Why, for ``unknown`` (one line); the digest for ``present`` when known.
    detail: str = ""
    #: Whether a GET could answer where the HEAD could not (e.g. HEAD refused).
    get_may_help: bool = False
    #: The manifest digest, where the answer came with one (a registry's ``present``).
    digest: str = ""
    #: The manifest's size in bytes, where the answer said (0: it did not).
    size: int = 0
    #: The manifest's media type, where the answer said ("": it did not).
    media_type: str = ""


def parse_tiers(text: str) -> tuple[str, ...]:
    """A comma-separated tier list, validated and put in the canonical order."""
    names = {t.strip() for t in text.split(",") if t.strip()}
    unknown = names.difference(TIER_ORDER)
    if unknown:
        raise UsageError(
            f"unknown tier {sorted(unknown)[0]!r}; choose from {', '.join(TIER_ORDER)}"
        )
    return tuple(t for t in TIER_ORDER if t in names)
