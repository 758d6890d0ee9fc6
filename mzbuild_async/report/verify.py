"""The ``verify`` and ``lock`` reports: one line per image, or JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..support import logs
from ..workflow.lock import Locked
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


def _lock_line(name: str, locked: Locked, check: bool) -> str:
    if locked.state == "failed":
        why = "; ".join(f"{ref}: {reason}" for ref, reason in locked.unresolved.items())
        return f"{name}  failed  {logs.redact_text(why)}"
    if locked.state == "none":
        return f"{name}  none  no external base image"
    if locked.state == "unchanged":
        return f"{name}  unchanged  {len(locked.pins)} pinned"
    if check:
        return f"{name}  drift  {'; '.join(locked.drift())}"
    return f"{name}  written  {len(locked.pins)} pinned"


def lock_text(results: Mapping[str, Locked], *, check: bool) -> str:
    """One line per image: what its lock is (or became)."""
    return "".join(_lock_line(name, r, check) + "\n" for name, r in results.items())


def lock_json(results: Mapping[str, Locked], *, check: bool) -> dict[str, Any]:
    """The ``lock --json`` document."""
    return {
        "images": {
            name: {
                "state": ("drift" if check else "written") if r.state == "changed" else r.state,
                "pins": dict(r.pins),
                "drift": r.drift(),
                "unresolved": dict(r.unresolved),
            }
            for name, r in results.items()
        }
    }
