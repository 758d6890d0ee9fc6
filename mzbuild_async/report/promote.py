"""The ``promote`` report: one line per image and registry, or JSON; what the CI
system is handed."""

from __future__ import annotations

from typing import Any

from ..ci.protocol import Produced
from ..release.promote import Promotion
from ..support import logs
from ..workflow.promote import Promotions


def _one(outcome: Promotion | Exception) -> dict[str, Any]:
    if isinstance(outcome, Exception):
        return {"error": logs.redact_text(str(outcome))}
    return outcome.to_json()


def promote_json(results: Promotions) -> dict[str, Any]:
    """The ``promote --json`` document: per image the primary's result, and with
    ``--to`` every registry's under ``registries``."""
    images: dict[str, Any] = {}
    for name, at in results.items():
        record = _one(next(iter(at.values())))
        if len(at) > 1:
            record["registries"] = {registry: _one(o) for registry, o in at.items()}
        images[name] = record
    return {"images": images}


def promote_text(results: Promotions) -> str:
    """Per image and registry: what was done to its tag, and the reference with its digest."""
    lines = []
    for name, at in results.items():
        for outcome in at.values():
            if isinstance(outcome, Exception):
                lines.append(f"{name}  failed  {logs.redact_text(str(outcome))}")
            else:
                lines.append(f"{name}  {outcome.status}  {outcome.target}@{outcome.digest}")
    return "".join(f"{line}\n" for line in lines)


def failed(results: Promotions) -> bool:
    """Whether any image failed at any registry."""
    return any(isinstance(o, Exception) for at in results.values() for o in at.values())


def promoted(results: Promotions) -> Produced:
    """The tags written (``name`` -> ``target@digest`` at the primary) and the failures,
    for the CI system (a Buildkite annotation, GitHub step outputs)."""
    references: dict[str, str] = {}
    failures: dict[str, str] = {}
    for name, at in results.items():
        for outcome in at.values():
            if isinstance(outcome, Exception):
                failures.setdefault(name, logs.redact_text(str(outcome)))
        first = next(iter(at.values()))
        if not isinstance(first, Exception):
            references[name] = f"{first.target.rsplit(':', 1)[0]}@{first.digest}"
    return Produced(references, failures, "promote")
