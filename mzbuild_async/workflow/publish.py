"""After an ``ensure``: every image it publishes, at every mirror too.

The images a run publishes (its publishable targets, and whatever it
pushed) are copied from the primary to each mirror that said absent or was
not asked (:mod:`..release.mirrors`); the result says, per image and
registry, what was there, pushed or copied, and the digest.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..builds.decisions import Found, Workflow
from ..builds.jobs import OutcomeKind
from ..builds.scheduler import Outcome
from ..model.publication import Destination
from ..registry.client import RegistryClient
from ..registry.writer import RegistryWriter
from ..release.mirrors import Mirrored, copy_to_mirrors
from ..source.repository import Repository
from .results import RunPlan


async def publish_to_mirrors(
    client: RegistryClient,
    workflow: Workflow,
    repo: Repository,
    targets: Sequence[str],
    plan: RunPlan,
    outcomes: Mapping[str, Outcome],
    mirrors: Sequence[Destination],
) -> dict[str, Mirrored]:
    """Copy what the run publishes to the mirrors that lack it; per image, what each
    mirror had or got."""
    if workflow is not Workflow.ENSURE or not mirrors:
        return {}
    wanted: dict[str, str] = {}
    for name, decision in plan.decisions.items():
        outcome = outcomes.get(name)
        if outcome is None or outcome.action in (OutcomeKind.FAILED, OutcomeKind.SKIPPED):
            continue
        if repo.image(name).manifest.publish and (name in targets or outcome.pushed):
            wanted[name] = decision.spec
    answers = {name: plan.found[name].mirrors for name in wanted if name in plan.found}
    return await copy_to_mirrors(RegistryWriter(client), wanted, mirrors, answers)


def primary_state(outcome: Outcome, found: Found | None) -> str:
    """What the primary registry had of an image after the run ("" where it is not
    published: ``acquire``, ``publish: false``)."""
    if outcome.pushed:
        return "pushed"
    if found is not None and found.copied_from:
        return "copied"
    if found is not None and found.published:
        return "present"
    if outcome.note.startswith("already published"):
        return "present"
    return ""
