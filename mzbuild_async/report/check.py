"""The ``check`` report: a table of answers with their tiers and times, or JSON."""

from __future__ import annotations

from typing import Any

from ..model.status import Status
from ..support.words import counted
from ..workflow.check import CheckResult


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


def check_json(result: CheckResult) -> dict[str, Any]:
    """The ``check --json`` document."""
    counts = {s.value: 0 for s in Status}
    for answer in result.answers.values():
        counts[answer.status.value] += 1
    return {
        "images": {
            name: {
                "spec": spec,
                "status": result.answers[spec].status.value,
                "tier": result.answers[spec].tier,
                "seconds": round(result.answers[spec].seconds, 6),
                "detail": result.answers[spec].detail,
            }
            for name, spec in result.specs.items()
        },
        "requests": dict(result.requests),
        "throttled": dict(result.throttled),
        "tiers": {
            tier: {"count": s.count, "p50": s.p50, "p95": s.p95, "max": s.max}
            for tier, s in result.statistics.items()
        },
        "totals": {
            **counts,
            "images": len(result.specs),
            "seconds": round(result.seconds, 6),
            # (after the fingerprints: the lookups alone)
            "lookup_seconds": round(result.lookup_seconds, 6),
        },
    }


def check_text(result: CheckResult) -> str:
    """The human-readable ``check`` report."""
    names, answers = result.specs, result.answers
    width = max([len(n) for n in names] + [5])
    lines = [f"{'IMAGE':<{width}}  {'STATUS':<8} {'TIER':<9} {'TIME':>9}  SPEC"]
    for name, spec in names.items():
        a = answers[spec]
        cached = f"  ({a.detail}, not confirmed)" if a.tier == "disk" else ""
        lines.append(
            f"{name:<{width}}  {a.status.value:<8} {a.tier or '-':<9} {_ms(a.seconds):>9}"
            f"  {spec}{cached}"
        )
    counts = {s: sum(1 for a in answers.values() if a.status is s) for s in Status}
    lines.append("")
    lines.append(
        f"{counted(len(names), 'image')}: {counts[Status.PRESENT]} present,"
        f" {counts[Status.ABSENT]} absent,"
        f" {counts[Status.UNKNOWN]} unknown in {result.seconds:.2f} s"
        f" (lookups {result.lookup_seconds:.2f} s after the fingerprints)"
    )
    if result.requests:
        sent = ", ".join(f"{host} {n}" for host, n in sorted(result.requests.items()))
        lines.append(f"requests sent: {sent}")
    if result.throttled:
        lines.append("429s received: " + ", ".join(f"{h} {n}" for h, n in result.throttled.items()))
    if result.statistics:
        lines.append(f"{'tier':<9} {'count':>5} {'p50':>9} {'p95':>9} {'max':>9}")
        for tier, s in result.statistics.items():
            lines.append(f"{tier:<9} {s.count:>5} {_ms(s.p50):>9} {_ms(s.p95):>9} {_ms(s.max):>9}")
    for name, spec in names.items():
        if answers[spec].status is Status.UNKNOWN:
            lines.append(f"{name}: unknown: {answers[spec].detail}")
    return "\n".join(lines)
