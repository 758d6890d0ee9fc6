"""What earlier runs learned of moving images: each pool engine's link rate to each
registry (bytes per second) and each image's bytes, for placement and ``plan``.

Stored as checked JSON in the cache directory (``{"rates": {link: rate},
"sizes": {image: bytes}}``). A missing file means nothing learned yet; a damaged
one or a bad entry (not a finite positive rate, not a whole number of bytes) is
one warning, and what is bad is not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
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


@dataclass
class LinkHistory:
    """Learned link rates and image bytes, as kept in the cache directory."""

    path: Path
    rates: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, cache_dir: Path) -> LinkHistory:
        """What ``cache_dir`` keeps (nothing when there is no file or it is unreadable)."""
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
        return cls(path, rates, sizes)

    def save(self, rates: Mapping[str, float], sizes: Mapping[str, int]) -> None:
        """Keep ``rates`` and ``sizes`` (best effort: a read-only cache is fine)."""
        self.rates, self.sizes = dict(rates), dict(sizes)
        try:
            write_json(self.path, {"rates": self.rates, "sizes": self.sizes})
        except OSError as exc:
            logs.get_logger().debug("link rates not saved", path=str(self.path), error=str(exc))


def _rate(value: object) -> bool:
    """Whether ``value`` is a believable rate (a finite number of bytes per second)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 < value < MAX_RATE
