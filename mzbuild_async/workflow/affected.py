"""``affected``: the images whose fingerprints differ between two commits, and the CI
steps that must run because of them (:mod:`..source.affected`,
:mod:`..model.steps`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ..ci import detect
from ..errors import GitError, UsageError
from ..model.steps import StepDecision, decide, load_steps
from ..source.affected import Comparison, affected
from ..source.explain import resolve_revision
from ..source.gitview import _git
from ..source.repository import Repository

#: The variables ``--base auto`` reads, for the message when none is set.
BASE_VARIABLES = (
    "GITHUB_BASE_REF, a merge_group event, CI_MERGE_REQUEST_DIFF_BASE_SHA,"
    " BUILDKITE_PULL_REQUEST_BASE_BRANCH, SYSTEM_PULLREQUEST_TARGETBRANCH"
)


async def auto_base(root: Path, head: str | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """``--base auto``: the commit this job's change is compared with, and how it was
    found: the CI system's base commit, or the merge-base of the change and its target
    branch (as the clone has it: ``origin/BRANCH``, else ``BRANCH``)."""
    system = detect(environ)
    said = system.change_base(environ) if system is not None else None
    if said is None:
        raise UsageError(
            f"--base auto: no CI variable says what this change is compared with"
            f" ({BASE_VARIABLES}); give --base REV"
        )
    if said.kind == "commit":
        sha = await resolve_revision(root, said.value, flag=f"--base auto ({said.source})")
        return sha, f"{said.source} {said.value[:12]}"
    for ref in (f"refs/remotes/origin/{said.value}", f"refs/heads/{said.value}"):
        try:
            target = await resolve_revision(root, ref, flag="--base auto")
        except UsageError:
            continue
        try:
            out = await _git(("git", "merge-base", head or "HEAD", target), root)
        except GitError:
            raise UsageError(
                f"--base auto: {ref.split('/', 2)[-1]} ({said.source}) and the change have no"
                " common commit in this clone (a shallow one?); fetch more history"
                " (fetch-depth: 0) or give --base REV"
            ) from None
        shown = ref.removeprefix("refs/remotes/").removeprefix("refs/heads/")
        return out.decode().strip(), f"merge-base with {shown} ({said.source})"
    raise UsageError(
        f"--base auto: {said.source} says {said.value}, which this clone does not have;"
        f" fetch it (git fetch origin {said.value}) or give --base REV"
    )


async def affected_steps(
    repo: Repository,
    base: str,
    head: str | None,
    steps_file: Path | None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Comparison, list[StepDecision] | None]:
    """The comparison, and with a steps file each step's decision (``base`` ``auto``:
    :func:`auto_base` from ``environ``)."""
    steps = load_steps(steps_file) if steps_file is not None else None  # bad input first
    how = ""
    if base == "auto":
        base, how = await auto_base(repo.root, head, environ or {})
    comparison = await affected(repo, base, head)
    if how:
        comparison = replace(comparison, base=f"{how}: {base[:12]}")
    if steps is None:
        return comparison, None
    known = set(comparison.unchanged) | comparison.names
    return comparison, decide(steps, comparison.names, comparison.files, known, comparison.base)
