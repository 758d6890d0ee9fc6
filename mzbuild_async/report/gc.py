"""``gc``'s output: per repository what goes and why, the bytes freed, the keep set."""

from __future__ import annotations

from typing import Any

from ..retention.deletions import Deletion
from ..retention.policy import Verdict
from ..workflow.gc import GcResult

#: The ``gc --json`` document's schema (``report/schemas/gc.json``).
SCHEMA_VERSION = 1


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError


def _tags(n: int) -> str:
    return f"{n} tag" if n == 1 else f"{n} tags"


def _outcomes(result: GcResult) -> dict[tuple[str, str], Deletion]:
    return {(d.verdict.repository, d.verdict.tag): d for d in result.deletions or ()}


def gc_text(result: GcResult, *, verbose: bool = False) -> str:
    """What goes (and, ``verbose``, what stays), per repository, then a summary."""
    outcomes = _outcomes(result)
    lines: list[str] = []
    for repository in result.plan.repositories:
        if repository.error:
            lines.append(
                f"{repository.name}: could not read it: {repository.error}; nothing deleted there"
            )
            continue
        shown = [v for v in repository.verdicts if v.delete or verbose]
        if not shown:
            continue
        kept = sum(not v.delete for v in repository.verdicts)
        lines.append(f"{repository.name}: {len(repository.verdicts) - kept} to delete, {kept} kept")
        for verdict in shown:
            lines.append("  " + _line(verdict, outcomes.get((verdict.repository, verdict.tag))))
    keep, plan = result.keep, result.plan
    deletions = plan.deletions
    lines.append(
        f"keep set: {len(keep.commits)} commits x {keep.variants} build variants,"
        f" {sum(len(t) for t in keep.tags.values())} image tags, in {keep.seconds:.2f} s"
        + (f"; {len(keep.failed)} commits could not be read" if keep.failed else "")
    )
    if result.deletions is None:
        lines.append(
            f"dry run: {_tags(len(deletions))} would be deleted, freeing about"
            f" {_size(plan.freed)} once the registry collects garbage; --apply deletes them"
        )
    else:
        counts: dict[str, int] = {}
        for d in result.deletions:
            counts[d.outcome] = counts.get(d.outcome, 0) + 1
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing"
        # (only what was deleted frees anything: a registry that refused frees nothing)
        freed = sum(d.verdict.freed for d in result.deletions if d.outcome == "deleted")
        lines.append(
            f"applied: {summary}; about {_size(freed)} to free once the registry collects garbage"
            if freed
            else f"applied: {summary}; nothing freed"
        )
        failures = sorted({d.detail for d in result.deletions if d.outcome == "failed"})
        lines += [f"error: {f}" for f in failures]
    return "\n".join(lines) + "\n"


def _line(verdict: Verdict, outcome: Deletion | None) -> str:
    action = "delete" if verdict.delete else "keep  "
    if outcome is not None:
        action = outcome.outcome
    text = f"{action} {verdict.tag}  {verdict.digest[:19]}  {verdict.reason}"
    if verdict.freed:
        text += f" ({_size(verdict.freed)})"
    if outcome is not None and outcome.detail:
        text += f": {outcome.detail}"
    return text


def gc_json(result: GcResult) -> dict[str, Any]:
    """The ``gc --json`` document (schema ``report/schemas/gc.json``)."""
    outcomes = _outcomes(result)
    repositories = []
    for repository in result.plan.repositories:
        tags = []
        for verdict in repository.verdicts:
            entry = verdict.to_json()
            outcome = outcomes.get((verdict.repository, verdict.tag))
            if outcome is not None:
                entry["outcome"] = outcome.outcome
                entry["detail"] = outcome.detail or None
            tags.append(entry)
        repositories.append(
            {"repository": repository.name, "error": repository.error or None, "tags": tags}
        )
    keep = result.keep
    return {
        "schema_version": SCHEMA_VERSION,
        "applied": result.deletions is not None,
        "freed_bytes": result.plan.freed,
        "keep": {
            "commits": {c: why for c, why in keep.commits.items()},
            "failed": dict(keep.failed),
            "variants": keep.variants,
            "tags": {name: sorted(tags) for name, tags in sorted(keep.tags.items())},
            "seconds": round(keep.seconds, 3),
        },
        "repositories": repositories,
    }


def failed(result: GcResult) -> bool:
    """Whether a repository could not be read or a deletion failed."""
    return any(r.error for r in result.plan.repositories) or any(
        d.outcome == "failed" for d in result.deletions or ()
    )
