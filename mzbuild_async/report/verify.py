"""The ``verify`` report: one line per image, or JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..support import logs
from ..workflow.verify import Verdict


def verify_text(verdicts: Mapping[str, Verdict]) -> str:
    """``IMAGE  verified  how`` or ``IMAGE  FAILED  why``, a line each."""
    return "".join(
        f"{name}  {'verified' if v.ok else 'FAILED'}  {logs.redact_text(v.detail)}\n"
        for name, v in verdicts.items()
    )


def verify_json(verdicts: Mapping[str, Verdict]) -> dict[str, Any]:
    """The ``verify --json`` document."""
    return {
        "ok": all(v.ok for v in verdicts.values()),
        "images": {
            name: {"spec": v.spec, "verified": v.ok, "detail": logs.redact_text(v.detail)}
            for name, v in verdicts.items()
        },
    }
