"""``affected``: the images whose fingerprints differ between two commits, and the CI
steps that must run because of them (:mod:`..source.affected`,
:mod:`..model.steps`)."""

from __future__ import annotations

from pathlib import Path

from ..model.steps import StepDecision, decide, load_steps
from ..source.affected import Comparison, affected
from ..source.repository import Repository


async def affected_steps(
    repo: Repository, base: str, head: str | None, steps_file: Path | None
) -> tuple[Comparison, list[StepDecision] | None]:
    """The comparison, and with a steps file each step's decision."""
    steps = load_steps(steps_file) if steps_file is not None else None  # bad input first
    comparison = await affected(repo, base, head)
    if steps is None:
        return comparison, None
    known = set(comparison.unchanged) | comparison.names
    return comparison, decide(steps, comparison.names, comparison.files, known, comparison.base)
