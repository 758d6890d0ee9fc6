"""Each image's past build time, persisted, for critical-path priorities.

Stored as JSON in the cache directory: ``{name: seconds}``, an exponential
moving average so one odd build does not swing the estimate. A missing or
unreadable file means no history (defaults apply), never an error.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from .scheduler import DEFAULT_CARGO_ESTIMATE, DEFAULT_ESTIMATE

HISTORY_FILE = "build-history.json"
#: Weight of the newest measurement in the moving average.
ALPHA = 0.5


class BuildHistory:
    """Past build seconds per image name."""

    def __init__(self, path: Path, seconds: Mapping[str, float] | None = None) -> None:
        self.path = path
        self.seconds: dict[str, float] = dict(seconds or {})

    @classmethod
    def load(cls, cache_dir: Path) -> BuildHistory:
        """The history in ``cache_dir`` (empty when there is none or it is unreadable)."""
        path = cache_dir / HISTORY_FILE
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        if not isinstance(data, dict):
            return cls(path)
        good = {
            str(k): float(v)
            for k, v in data.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and v >= 0
        }
        return cls(path, good)

    def estimate(self, name: str, *, cargo: bool) -> float:
        """Expected build seconds of ``name`` (a default by kind when unknown)."""
        default = DEFAULT_CARGO_ESTIMATE if cargo else DEFAULT_ESTIMATE
        return self.seconds.get(name, default)

    def record(self, name: str, seconds: float) -> None:
        """Fold one measured build into the average."""
        old = self.seconds.get(name)
        self.seconds[name] = seconds if old is None else ALPHA * seconds + (1 - ALPHA) * old

    def save(self) -> None:
        """Write the history atomically (best effort: a read-only cache is fine)."""
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.seconds, sort_keys=True, indent=0))
            os.replace(tmp, self.path)
