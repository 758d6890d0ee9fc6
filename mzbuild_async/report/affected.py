"""``affected``'s output: the images a change affects and why; the CI steps to run
and to skip (text, JSON, a Buildkite pipeline with ``skip:`` reasons, a GitHub
Actions job matrix)."""

from __future__ import annotations

from typing import Any

from ..model.steps import StepDecision
from ..source.affected import Comparison

#: The ``affected --json`` document's schema (``report/schemas/affected.json``).
SCHEMA_VERSION = 1


def affected_text(comparison: Comparison, decisions: list[StepDecision] | None) -> str:
    """One line per affected image (dependencies first), then the steps."""
    lines = [f"{comparison.base} -> {comparison.head}"]
    width = max((len(a.image) for a in comparison.affected), default=0)
    for found in comparison.affected:
        lines.append(f"{found.kind:<8} {found.image:<{width}}  {'; '.join(found.reasons())}")
    files = len(comparison.files)
    lines.append(
        f"{len(comparison.affected)} affected, {len(comparison.unchanged)} unchanged;"
        f" {files} {'file differs' if files == 1 else 'files differ'}"
    )
    for decision in decisions or ():
        verb = "run " if decision.run else "skip"
        lines.append(f"{verb} {decision.step.key}: {decision.reason}")
    return "\n".join(lines) + "\n"


def affected_json(comparison: Comparison, decisions: list[StepDecision] | None) -> dict[str, Any]:
    """The ``affected --json`` document (schema ``report/schemas/affected.json``)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "base": comparison.base,
        "head": comparison.head,
        "affected": [
            {
                "image": a.image,
                "kind": a.kind,
                "base": a.base or None,
                "head": a.head or None,
                "reasons": a.reasons(),
                "explanation": a.explanation.to_json() if a.explanation else None,
            }
            for a in comparison.affected
        ],
        "unchanged": list(comparison.unchanged),
        "files": list(comparison.files),
        "steps": None
        if decisions is None
        else [
            {"key": d.step.key, "label": d.step.label, "run": d.run, "reason": d.reason}
            for d in decisions
        ],
    }
