"""The ``promote`` report: one line per image, or JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..release.promote import Promotion
from ..support import logs


def promote_json(results: Mapping[str, Promotion | Exception]) -> dict[str, Any]:
    """The ``promote --json`` document."""
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


def promote_text(results: Mapping[str, Promotion | Exception]) -> str:
    """Per image: what was done to its tag, and the reference with its digest."""
    lines = []
    for name, outcome in results.items():
        if isinstance(outcome, Exception):
            lines.append(f"{name}  failed  {logs.redact_text(str(outcome))}")
        else:
            lines.append(f"{name}  {outcome.status}  {outcome.target}@{outcome.digest}")
    return "".join(f"{line}\n" for line in lines)
