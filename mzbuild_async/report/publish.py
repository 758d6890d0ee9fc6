"""The ``publish-manifest`` report: one line per image, or JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..builds.multiarch import IndexResult
from ..support import logs


def publish_json(results: Mapping[str, IndexResult | Exception]) -> dict[str, Any]:
    """The ``publish-manifest --json`` document."""
    return {
        "images": {
            name: (
                {"error": logs.redact_text(str(outcome))}
                if isinstance(outcome, Exception)
                else outcome.to_json()
            )
            for name, outcome in results.items()
        }
    }


def publish_text(results: Mapping[str, IndexResult | Exception]) -> str:
    """Per image: what was done to its index, and where it is."""
    lines = []
    for name, outcome in results.items():
        if isinstance(outcome, Exception):
            lines.append(f"{name}  failed  {logs.redact_text(str(outcome))}")
        else:
            lines.append(f"{name}  {outcome.status}  {outcome.target}@{outcome.digest}")
    return "".join(f"{line}\n" for line in lines)
