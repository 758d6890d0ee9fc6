"""What earlier runs learned of moving images: each pool engine's link rate to each
registry (bytes per second) and each image's bytes, for placement and ``plan``.

Stored as checked JSON in the cache directory (``{"rates": {link: rate},
"sizes": {image: bytes}, "measured": {link: unix seconds}}``). A missing file
means nothing learned yet; a damaged one or a bad entry (not a finite positive
rate, not a whole number of bytes) is one warning, and what is bad is not used.
A rate last measured more than :data:`MAX_AGE_SECONDS` ago is forgotten: a link
once slow, and so kept out of the work, is tried (and measured) again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..support import logs
from . import layout
from .integrity import read_json, write_json

LINKS_FILE = layout.LINKS
#: Rates at or above this many bytes per second (1 TB/s) are not believed.
MAX_RATE = 1e12
#: Image sizes at or above this many bytes (10 TB) are not believed.
MAX_BYTES = 10**13
#: A rate not measured again for this long (a week) is forgotten.
MAX_AGE_SECONDS = 7 * 24 * 3600.0


@dataclass
class LinkHistory:
    """Learned link rates and image bytes, as kept in the cache directory."""

    path: Path
    rates: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    #: When each rate was last measured (unix seconds).
    measured: dict[str, float] = field(default_factory=dict)

    @classmethod
    def load(cls, cache_dir: Path, *, now: float | None = None) -> LinkHistory:
        """What ``cache_dir`` keeps (nothing when there is no file or it is unreadable),
        but rates older than :data:`MAX_AGE_SECONDS` (a rate of a file written before
        times were kept counts as measured ``now``)."""
        now = time.time() if now is None else now
        path = cache_dir / LINKS_FILE
        data = read_json(path, "placing builds without learned link rates")
        if data is None:
            return cls(path)
        rates_in = data.get("rates") if isinstance(data, dict) else None
        sizes_in = data.get("sizes") if isinstance(data, dict) else None
        rates = {
            k: float(v)
            for k, v in (rates_in.items() if isinstance(rates_in, dict) else ())
            if k and _rate(v)
        }
        sizes = {
            k: v
            for k, v in (sizes_in.items() if isinstance(sizes_in, dict) else ())
            if k and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < MAX_BYTES
        }
        whole = isinstance(rates_in, dict) and isinstance(sizes_in, dict)
        if not whole or len(rates) != len(rates_in or ()) or len(sizes) != len(sizes_in or ()):
            logs.warning(
                f"{path}: entries that are not link rates or image sizes were ignored;"
                " placement learns them again"
            )
        times_in = data.get("measured") if isinstance(data, dict) else None
        times = times_in if isinstance(times_in, dict) else {}
        measured = {k: _time(times.get(k), now) for k in rates}
        stale = [k for k, t in measured.items() if now - t > MAX_AGE_SECONDS]
        for name in stale:
            del rates[name], measured[name]
        return cls(path, rates, sizes, measured)

    def save(
        self,
        rates: Mapping[str, float],
        sizes: Mapping[str, int],
        fresh: Iterable[str] = (),
        *,
        now: float | None = None,
    ) -> None:
        """Keep ``rates`` and ``sizes``, the links in ``fresh`` measured ``now`` (best
        effort: a read-only cache is fine)."""
        now = time.time() if now is None else now
        fresh = set(fresh)
        self.measured = {
            k: now if k in fresh or k not in self.measured else self.measured[k] for k in rates
        }
        self.rates, self.sizes = dict(rates), dict(sizes)
        try:
            write_json(
                self.path, {"rates": self.rates, "sizes": self.sizes, "measured": self.measured}
            )
        except OSError as exc:
            logs.get_logger().debug("link rates not saved", path=str(self.path), error=str(exc))


def _rate(value: object) -> bool:
    """Whether ``value`` is a believable rate (a finite number of bytes per second)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 < value < MAX_RATE


def _time(value: object, now: float) -> float:
    """``value`` as a time of measure, or ``now`` when it is none (missing, not a number,
    or after ``now`` by more than a day of clock skew between machines sharing a cache)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return now
    return float(value) if math.isfinite(value) and 0 < value < now + 24 * 3600 else now
