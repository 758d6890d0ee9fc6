"""Each image's past build time, persisted, for critical-path priorities.

Stored as checked JSON in the cache directory (``{name: seconds}``), an
exponential moving average so one odd build does not swing the estimate. A
missing file means no history; a damaged one or a bad entry (not a finite
number of seconds below a week) is one warning and defaults apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..support import logs
from . import layout
from .integrity import finite_seconds, read_json, write_json

HISTORY_FILE = layout.HISTORY
#: Build-time estimates when an image has no history (seconds).
DEFAULT_ESTIMATE = 10.0
DEFAULT_CARGO_ESTIMATE = 120.0
#: Weight of the newest measurement in the moving average.
ALPHA = 0.5
#: Estimates at or above this many seconds are not believed.
MAX_SECONDS = 7 * 24 * 3600.0


class BuildHistory:
    """Past build seconds per image name."""

    def __init__(self, path: Path, seconds: Mapping[str, float] | None = None) -> None:
        self.path = path
        self.seconds: dict[str, float] = dict(seconds or {})

    @classmethod
    def load(cls, cache_dir: Path) -> BuildHistory:
        """The history in ``cache_dir`` (empty when there is none or it is unreadable)."""
        path = cache_dir / HISTORY_FILE
        data = read_json(path, "using default build-time estimates")
        if data is None:
            return cls(path)
        good: dict[str, float] = {}
        items = data.items() if isinstance(data, dict) else ()
        for name, value in items:
            seconds = finite_seconds(value, MAX_SECONDS)
            if seconds is not None and name:
                good[name] = seconds
        if not isinstance(data, dict) or len(good) != len(data):
            logs.warning(
                f"{path}: entries that are not build seconds were ignored;"
                " using default estimates for those images"
            )
        return cls(path, good)

    def estimate(self, name: str, *, cargo: bool) -> float:
        """Expected build seconds of ``name`` (a default by kind when unknown)."""
        default = DEFAULT_CARGO_ESTIMATE if cargo else DEFAULT_ESTIMATE
        return self.seconds.get(name, default)

    def record(self, name: str, seconds: float) -> None:
        """Fold one measured build into the average."""
        if finite_seconds(seconds, MAX_SECONDS) is None:
            return
        old = self.seconds.get(name)
        self.seconds[name] = seconds if old is None else ALPHA * seconds + (1 - ALPHA) * old

    def save(self) -> None:
        """Write the history atomically (best effort: a read-only cache is fine)."""
        try:
            write_json(self.path, self.seconds)
        except OSError as exc:
            logs.get_logger().debug("history not saved", path=str(self.path), error=str(exc))
