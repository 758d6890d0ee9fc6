"""The end of a run: the summary table, the slowest steps, ``--report`` JSON, Markdown.

Everything here is made from a :class:`~mzbuild_async.runner.RunResult`
(and the exit status); nothing is measured or looked up again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..support.words import counted
from ..workflow.intervals import Interval

if TYPE_CHECKING:
    from ..workflow.results import ImageResult, RunResult

#: Rows in the "slowest steps" part of the summary.
SLOWEST = 5


def table(rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as aligned columns; the last column is left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + "  " + row[-1]
        for row in rows
    ]


def step_label(step: Interval) -> str:
    """``demo-app build``, or just ``cargo`` when the track is the phase."""
    return step.track if step.track == step.phase else f"{step.track} {step.phase}"


def slowest_steps(steps: Sequence[Interval], count: int = SLOWEST) -> list[Interval]:
    """The longest pieces of work (per-tier lookup spans and the steps inside builds
    left out: they overlap other work)."""
    work = [s for s in steps if not s.track.startswith("lookup: ") and not s.inner]
    return sorted(work, key=lambda s: (-s.seconds, s.track))[:count]


def totals_line(result: RunResult, status: int) -> str:
    """``ensure: ok: 7 images (2 built, 5 none), 2 pushed, in 1.2 s; exit status 0``."""
    counts: dict[str, int] = {}
    for r in result.images.values():
        counts[r.action] = counts.get(r.action, 0) + 1
    pushed = sum(r.pushed for r in result.images.values())
    totals = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    state = "ok" if result.ok else "FAILED"
    return (
        f"{result.workflow.value}: {state}: {counted(len(result.images), 'image')} ({totals}),"
        f" {pushed} pushed, in {result.seconds:.1f} s; exit status {status}"
    )


def why_of(result: ImageResult) -> str:
    """The WHY column: the error, the note or the reason (with the wait, if awaited)."""
    why = result.error or result.note or result.reason
    if result.awaited is not None:
        why += f" (waited {result.awaited:.1f} s)"
    return why


def engines_line(result: RunResult) -> str:
    """``engines: e1 3 builds, 9.5 s busy, 2 transfers; e2 LOST (why)``."""
    parts = []
    for name, engine in result.engines.items():
        part = (
            f"{name} {engine.builds} builds, {engine.busy_seconds:.1f} s busy of"
            f" {engine.slots} slots, {engine.transfers} transfers"
        )
        parts.append(part + (f", LOST ({engine.lost})" if engine.lost else ""))
    return "engines: " + "; ".join(parts)


def summary_text(result: RunResult, status: int) -> str:
    """The human summary: one row per image (with its engine, for a pool), the
    slowest steps, the engines' load, the totals."""
    pooled = result.pooled
    rows = [
        ("IMAGE", "ACTION", "PUSHED", "TIER", *(("ENGINE",) if pooled else ()), "SECONDS", "WHY")
    ]
    for r in result.images.values():
        rows.append(
            (
                r.name,
                r.action,
                "yes" if r.pushed else "no",
                r.tier or "-",
                *((r.engine or "-",) if pooled else ()),
                f"{r.seconds:.1f}",
                why_of(r),
            )
        )
    lines = table(rows)
    slow = [s for s in slowest_steps(result.steps) if s.seconds >= 0.05]
    if slow:
        lines.append("slowest: " + ", ".join(f"{step_label(s)} {s.seconds:.1f} s" for s in slow))
    if pooled:
        lines.append(engines_line(result))
    registries = registries_line(result)
    if registries:
        lines.append(registries)
    attested = attestations_line(result)
    if attested:
        lines.append(attested)
    lines.append(totals_line(result, status))
    return "\n".join(lines)


def attestations_line(result: RunResult) -> str:
    """``ensure --attest``: how many images got provenance and an SBOM, had them, or
    failed ("" without --attest)."""
    states: dict[str, int] = {}
    for r in result.images.values():
        if r.attestation is not None:
            state = r.attestation.get("provenance", "")
            states[state] = states.get(state, 0) + 1
    if not states:
        return ""
    return "attestations: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))


def registries_line(result: RunResult) -> str:
    """With mirrors: what was copied to which registry, and where an image is missing
    ("" without mirrors)."""
    mirrored = [r for r in result.images.values() if len(r.registries) > 1]
    if not mirrored:
        return ""
    copied: dict[str, list[str]] = {}
    missing: list[str] = []
    mounted = streamed = 0
    for r in mirrored:
        for registry, state in r.registries.items():
            if state == "copied":
                copied.setdefault(registry, []).append(r.name)
            elif state in MISSING:
                missing.append(f"{r.name} {state} at {registry}")
        mounted += (r.copied or {}).get("mounted", 0)
        streamed += (r.copied or {}).get("uploaded", 0)
    parts = [
        f"{len(names)} copied to {registry}" + (f" ({', '.join(names)})" if len(names) <= 3 else "")
        for registry, names in copied.items()
    ]
    if copied:
        parts[-1] += f"; blobs: {mounted} mounted, {streamed} streamed"
    parts += missing
    count = len(mirrored[0].registries)
    return "registries: " + ("; ".join(parts) if parts else f"every image at all {count}")


#: Registry states of an image that is not published there after the run.
MISSING = ("unknown", "failed")


def markdown_summary(result: RunResult, status: int) -> str:
    """The summary as Markdown (for ``$GITHUB_STEP_SUMMARY``)."""

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    pooled = result.pooled
    lines = [
        f"### mzbuild-async {result.workflow.value}: {'ok' if result.ok else 'FAILED'}",
        "",
        "| image | action | pushed | tier |" + (" engine |" if pooled else "") + " seconds | why |",
        "| --- | --- | --- | --- |" + (" --- |" if pooled else "") + " ---: | --- |",
    ]
    for r in result.images.values():
        why = cell(why_of(r))
        engine = f" {cell(r.engine or '-')} |" if pooled else ""
        lines.append(
            f"| `{cell(r.name)}` | {r.action} | {'yes' if r.pushed else 'no'} | {r.tier or '-'} |"
            f"{engine} {r.seconds:.1f} | {why} |"
        )
    slow = slowest_steps(result.steps)
    if slow:
        lines += [
            "",
            "Slowest steps: "
            + ", ".join(f"`{cell(step_label(s))}` {s.seconds:.1f} s" for s in slow),
        ]
    if result.pooled:
        lines += ["", engines_line(result)]
    registries = registries_line(result)
    if registries:
        lines += ["", cell(registries)]
    pinned = [
        f"- `{r.name}`: `{r.spec.rsplit(':', 1)[0]}@{r.digest}`"
        for r in result.images.values()
        if r.digest and r.action not in ("failed", "skipped")
    ]
    if pinned:
        lines += ["", "Digests:", "", *pinned]
    lines += ["", totals_line(result, status), ""]
    return "\n".join(lines)


def report_document(result: RunResult, status: int) -> dict[str, Any]:
    """The ``--report`` JSON: plan, results, lookup statistics, steps."""
    document: dict[str, Any] = {
        "workflow": result.workflow.value,
        "ok": result.ok,
        "exit_status": status,
        "seconds": round(result.seconds, 3),
        "plan": result.plan.to_json()["images"] if result.plan else {},
        "images": {name: r.to_json() for name, r in result.images.items()},
        "lookups": {
            "tiers": {
                tier: {"count": s.count, "p50": s.p50, "p95": s.p95, "max": s.max}
                for tier, s in result.lookups.items()
            },
            "requests": dict(result.requests),
        },
        "engines": {name: engine.to_json() for name, engine in result.engines.items()},
        "steps": [s.to_json() for s in result.steps],
        "slowest": [s.to_json() for s in slowest_steps(result.steps)],
    }
    if result.step is not None:
        document["step"] = result.step
    return document
