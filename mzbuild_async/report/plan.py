"""The ``plan`` table: per image its fingerprint, what the lookups said, the action, why."""

from __future__ import annotations

from ..support.words import amount_of_bytes, counted
from ..workflow.results import RunPlan
from .summary import table


def plan_text(plan: RunPlan) -> str:
    """The ``plan`` table: per image its fingerprint, what the lookups said, the action."""
    document = plan.to_json()["images"]
    pooled = bool(plan.placement)
    engine = ("ENGINE",) if pooled else ()
    rows = [("IMAGE", "FINGERPRINT", "LOCAL", "PUBLISHED", "ACTION", *engine, "WHY")]
    for name, image in document.items():
        tier = ", ".join(filter(None, [image["tier"], image.get("cached")]))
        why = image["reason"] + (f" [{tier}]" if tier else "")
        rows.append(
            (
                name,
                image["fingerprint"],
                "yes" if image["local"] else "no",
                image["published"],
                image["action"],
                *((image.get("engine") or "-",) if pooled else ()),
                why,
            )
        )
    lines = table(rows)
    copies = [
        f"{name} from {image['copy_from']}" if "copy_from" in image else ""
        for name, image in document.items()
    ] + [
        f"{name} to {', '.join(image['copy_to'])}" if image.get("copy_to") else ""
        for name, image in document.items()
    ]
    if any(copies):
        lines.append("copies: " + "; ".join(c for c in copies if c))
    for name, moved in plan.links.items():
        rate = f"at {amount_of_bytes(moved.rate)}/s" if moved.rate else "rate not measured yet"
        guessed = f"; {moved.unsized} of unknown size, guessed" if moved.unsized else ""
        lines.append(
            f"link {name}: {counted(moved.images, 'image')}, {amount_of_bytes(moved.bytes)}"
            f" expected ({rate}: {moved.seconds:.1f} s{guessed})"
        )
    counts: dict[str, int] = {}
    for image in document.values():
        counts[image["action"]] = counts.get(image["action"], 0) + 1
    totals = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
    lines.append(f"plan ({plan.workflow.value}): {counted(len(document), 'image')}: {totals}")
    return "\n".join(lines)
