"""``affected``: the images whose fingerprints differ between two commits, and the CI
steps that must run because of them (:mod:`..source.affected`,
:mod:`..model.steps`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import anyio

from ..ci import detect
from ..errors import GitError, UsageError
from ..model.options import DEFAULT_SEARCH, BuildOptions
from ..model.status import Status
from ..model.steps import StepDecision, decide, load_steps
from ..registry.names import parse_reference
from ..source.affected import Comparison, affected
from ..source.commits import BlobStore, History
from ..source.explain import resolve_revision
from ..source.gitview import _git
from ..source.repository import Repository
from .settings import RegistrySettings

#: Lookups at once while looking for the last published commit.
CONCURRENCY = 16

#: The variables ``--base auto`` reads, for the message when none is set.
BASE_VARIABLES = (
    "GITHUB_BASE_REF, a merge_group event, CI_MERGE_REQUEST_DIFF_BASE_SHA,"
    " BUILDKITE_PULL_REQUEST_BASE_BRANCH, SYSTEM_PULLREQUEST_TARGETBRANCH"
)


@dataclass(frozen=True)
class Published:
    """Where ``--base auto`` asks, outside a CI change, which commits are published."""

    settings: RegistrySettings
    cache_dir: Path
    #: The options the commits' images are fingerprinted with (the command's).
    options: BuildOptions
    #: Commits (first parents, from the head) to look through.
    search: int = DEFAULT_SEARCH


async def auto_base(
    root: Path, head: str | None, environ: Mapping[str, str], published: Published | None = None
) -> tuple[str, str]:
    """``--base auto``: the commit this job's change is compared with, and how it was
    found: the CI system's base commit, or the merge-base of the change and its target
    branch (as the clone has it: ``origin/BRANCH``, else ``BRANCH``); outside a CI
    change, with ``published``, the last commit whose images are all published."""
    system = detect(environ)
    said = system.change_base(environ) if system is not None else None
    if said is None and published is not None:
        return await last_published(root, head, published)
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


async def last_published(root: Path, head: str | None, published: Published) -> tuple[str, str]:
    """The newest of the last ``search`` first-parent commits (from ``head``) whose
    publishable images all are published, as the registry says (a ``HEAD`` each; an
    image the registry could not tell about makes its commit not one)."""
    start = await resolve_revision(root, head or "HEAD", flag="--head")
    out = await _git(
        ("git", "rev-list", "--first-parent", f"--max-count={published.search}", start), root
    )
    limit = anyio.CapacityLimiter(CONCURRENCY)
    async with published.settings.session(published.cache_dir) as client:

        async def present(spec: str, answers: dict[str, Status]) -> None:
            async with limit:
                answers[spec] = (await client.lookup(parse_reference(spec))).status

        store = BlobStore(root)
        async with History.open(root, store) as history:
            for commit in out.decode().split():
                old = await history.at(commit, published.options)
                names = [n for n, image in old.images.items() if image.manifest.publish]
                answers: dict[str, Status] = {}
                async with anyio.create_task_group() as tg:
                    for spec in (await old.specs(names)).values():
                        tg.start_soon(present, spec, answers)
                if all(status is Status.PRESENT for status in answers.values()):
                    return commit, "the last commit whose images are all published"
    raise UsageError(
        f"--base auto: none of the last {published.search} commits has all its images"
        " published (nor does a CI variable say what the change is compared with); give"
        " --base REV, or --search more"
    )


async def affected_steps(
    repo: Repository,
    base: str,
    head: str | None,
    steps_file: Path | None,
    environ: Mapping[str, str] | None = None,
    published: Published | None = None,
) -> tuple[Comparison, list[StepDecision] | None]:
    """The comparison, and with a steps file each step's decision (``base`` ``auto``:
    :func:`auto_base` from ``environ``, else from what ``published`` says)."""
    steps = load_steps(steps_file) if steps_file is not None else None  # bad input first
    how = ""
    if base == "auto":
        base, how = await auto_base(repo.root, head, environ or {}, published)
    comparison = await affected(repo, base, head)
    if how:
        comparison = replace(comparison, base=f"{how}: {base[:12]}")
    if steps is None:
        return comparison, None
    known = set(comparison.unchanged) | comparison.names
    return comparison, decide(steps, comparison.names, comparison.files, known, comparison.base)
