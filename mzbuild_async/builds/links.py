"""What moving images between the engines of a pool costs: the rate of each
engine's link to each registry, and each image's bytes.

Both are learned from the transfers a run makes (the bytes the engine says it
moved, over the seconds it took): rates from a fetch into an engine and a send
or push out of one, an image's bytes from fetches only (a push moves what the
registry lacks, which says nothing of the next fetch); and both are kept across
runs (:mod:`..store.links`, which forgets a rate not measured for a week). A
transfer of fewer than :data:`MIN_BYTES` teaches no rate (its seconds are round
trips, not bytes). An engine not measured yet is
taken to be as fast as the fastest one measured (:data:`DEFAULT_RATE` when none
is): it is tried, and so learned. An image's bytes are what its latest fetch
moved: an engine that already holds some of its layers (an earlier version's)
moves less, which no estimate here foresees (a layer-aware one would compare
the image's manifest with each engine's layers). An image of unknown size
counts as the middle size of those known (:data:`DEFAULT_BYTES` when none is).

:meth:`Links.seconds` is what bringing images into an engine is expected to
cost; placement (:mod:`.placement`) puts a build where that is least.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

#: Transfers smaller than this teach no rate.
MIN_BYTES = 256 * 1024
#: Bytes per second of a link when no link was measured (800 Mbit/s).
DEFAULT_RATE = 100e6
#: An image's bytes when no image's are known.
DEFAULT_BYTES = 64 * 1024 * 1024
#: Weight of what earlier runs learned of a link against this run's transfers.
KEPT_WEIGHT = 0.5


def link(engine: str, registry: str) -> str:
    """The name of the link between ``engine`` and ``registry`` (``engine<->registry``)."""
    return f"{engine}<->{registry}"


@dataclass
class Links:
    """Learned link rates (bytes per second, by :func:`link`) and image bytes."""

    rates: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    #: This run's transfers per link: bytes and seconds, summed.
    moved: dict[str, tuple[int, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._kept = dict(self.rates)

    def observe(
        self,
        engine: str,
        registry: str,
        image: str,
        nbytes: int,
        seconds: float,
        *,
        fetched: bool = True,
    ) -> None:
        """One transfer of ``image`` over ``engine``'s link to ``registry``: a fetch
        into the engine teaches the image's bytes too (a push or send moves what the
        registry lacks, which says nothing of what the next fetch will move)."""
        if nbytes <= 0:
            return
        if fetched:
            self.sizes[image] = nbytes  # (the latest: what the engines' layer caches leave)
        if nbytes < MIN_BYTES or seconds <= 0:
            return
        name = link(engine, registry)
        total, took = self.moved.get(name, (0, 0.0))
        total, took = total + nbytes, took + seconds
        self.moved[name] = (total, took)
        measured = total / took
        kept = self._kept.get(name)
        self.rates[name] = (
            measured if kept is None else KEPT_WEIGHT * kept + (1 - KEPT_WEIGHT) * measured
        )

    def rate(self, engine: str, registry: str) -> float:
        """Bytes per second expected over ``engine``'s link to ``registry``."""
        known = self.rates.get(link(engine, registry))
        if known is not None:
            return known
        return max(self.rates.values(), default=DEFAULT_RATE)

    def size(self, image: str) -> int:
        """Bytes expected to move when ``image`` is brought into an engine."""
        known = self.sizes.get(image)
        if known is not None:
            return known
        return int(statistics.median(self.sizes.values())) if self.sizes else DEFAULT_BYTES

    def seconds(self, engine: str, images: Iterable[tuple[str, str]]) -> float:
        """Expected seconds to bring ``images`` (``(name, registry)`` pairs) into ``engine``."""
        return sum(self.size(name) / self.rate(engine, registry) for name, registry in images)
