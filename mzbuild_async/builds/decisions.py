"""Deciding what each image needs: nothing, a pull, a build, a push.

Pure logic over lookup answers, so it is tested without any engine. The
rules, per workflow:

- ``acquire``: each target must be in the local daemon: there already →
  nothing; published → pull; else → build, which needs its dependencies
  local (recursively, by the same rule).
- ``ensure``: each publishable target must be published: published →
  nothing at all (not even its dependencies); in the daemon but not
  published → push it; else → build (dependencies local) and push.
  Dependencies a build needs are acquired, and those that are publishable
  but not published are pushed too (as the original does), so the next
  job elsewhere finds them. ``publish: false`` images are acquired (built
  when missing, never pushed).
- ``build``: like ``acquire``, but with ``force`` the targets are built
  even when found.

Each image gets one decision, whatever number of images ask for it.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from ..model.graph import Image, ImageGraph
from ..model.status import Status
from .scheduler import Action, Job


class Workflow(enum.Enum):
    """What a run makes true of its targets."""

    ACQUIRE = "acquire"
    ENSURE = "ensure"
    BUILD = "build"


@dataclass(frozen=True)
class Decision:
    """One image's part in a run, and why."""

    name: str
    spec: str
    action: Action
    push: bool
    reason: str
    #: The lookup tier that decided (``daemon`` for the local engine), if any.
    tier: str | None = None


#: The reason of an image another CI step builds, awaited in the registry.
AWAITED = "built by another step: awaited in the registry"


@dataclass(frozen=True)
class Found:
    """What the lookups said about one image."""

    local: bool
    published: bool
    #: The tier that found it published, or why it could not tell.
    tier: str | None = None
    unknown: bool = False
    #: For an answer of the disk tier: when it was seen present (unconfirmed).
    cached: str = ""
    #: Each mirror registry's answer (``ensure`` with mirrors), by registry.
    mirrors: Mapping[str, Status] = field(default_factory=dict)
    #: The mirror the primary's copy came from (or, in a plan, would come from).
    copied_from: str = ""
    #: The manifest digest the registry answered with ("" when no registry said).
    digest: str = ""
    #: The manifest's size the registry said (0: it did not).
    size: int = 0
    #: The manifest's media type the registry said ("": it did not).
    media_type: str = ""


def decide(
    workflow: Workflow,
    images: Sequence[Image],
    targets: Sequence[str],
    specs: Mapping[str, str],
    found: Mapping[str, Found],
    *,
    force: bool = False,
    missing: set[str] | None = None,
    only: AbstractSet[str] | None = None,
) -> dict[str, Decision]:
    """Decisions for the images a run needs, dependencies first.

    ``images`` is the closure of the targets in dependency order (as
    :meth:`Repository.resolve` returns it); images the run does not need
    get no decision.

    With ``missing``, ``found`` may lack images: a needed image not looked
    up yet is added to ``missing`` and left undecided (so are the images
    only it would need). Looking those up and deciding again, until nothing
    is missing, looks up only images whose state can change the run.

    ``only`` (a CI step): the images this run may build; any other image it
    would build is another step's, awaited in the registry and pulled
    instead (and nothing below it is needed here).
    """
    by_name = {image.name: image for image in images}
    wants_local: set[str] = set()
    wants_published: set[str] = set()
    forced: set[str] = set()
    for name in targets:
        image = by_name[name]
        if workflow is Workflow.ENSURE and image.manifest.publish:
            wants_published.add(name)
        else:
            wants_local.add(name)
        if workflow is Workflow.BUILD and force:
            forced.add(name)
    decisions: dict[str, Decision] = {}
    # Dependents come before their dependencies in reversed order, so every
    # image's requirements are known when it is decided.
    for image in reversed(images):
        name = image.name
        if name not in wants_local and name not in wants_published:
            continue
        if missing is not None and name not in found:
            missing.add(name)
            continue
        if name in forced:
            decision = Decision(name, specs[name], Action.BUILD, False, "rebuild forced (--force)")
        else:
            decision = decide_one(
                workflow,
                image,
                specs[name],
                found[name],
                local=name in wants_local,
                published=name in wants_published,
            )
        if only is not None and decision.action is Action.BUILD and name not in only:
            decision = Decision(name, specs[name], Action.PULL, False, AWAITED, decision.tier)
        decisions[name] = decision
        if decision.action is Action.BUILD:
            wants_local.update(image.dependencies)
    return {image.name: decisions[image.name] for image in images if image.name in decisions}


def decide_one(
    workflow: Workflow, image: Image, spec: str, state: Found, *, local: bool, published: bool
) -> Decision:
    """The decision for one image the run wants ``local`` and/or ``published``."""
    name = image.name
    publish = image.manifest.publish
    if published and state.published:
        action = Action.PULL if local and not state.local else Action.NONE
        return Decision(name, spec, action, False, "published", state.tier)
    if published and state.local:
        why = "not published" if not state.unknown else "registry could not tell"
        return Decision(name, spec, Action.NONE, True, f"in the local daemon, {why}", "daemon")
    if published:
        why = "not published" if not state.unknown else "registry could not tell"
        return Decision(name, spec, Action.BUILD, True, why, state.tier)
    if state.local:
        # ensure publishes the dependencies it needs, as the original does.
        push = workflow is Workflow.ENSURE and publish and not state.published
        unpublished = ", registry could not tell" if state.unknown else ", not published"
        why = "in the local daemon" + (unpublished if push else "")
        return Decision(name, spec, Action.NONE, push, why, "daemon")
    if publish and state.published:
        return Decision(name, spec, Action.PULL, False, "published", state.tier)
    if not publish:
        why = "not in the local daemon (never published)"
    elif state.unknown:
        why = "not local; registry could not tell"
    else:
        why = "not local, not published"
    return Decision(
        name, spec, Action.BUILD, workflow is Workflow.ENSURE and publish, why, state.tier
    )


def settled_decisions(
    graph: ImageGraph,
    order: Sequence[str],
    decisions: Mapping[str, Decision],
    found: Mapping[str, Found],
    missing: set[str],
    released: set[str],
) -> list[str]:
    """Decided images not released yet whose decision cannot change, dependencies first.

    Later answers can only make more images needed locally, and that changes
    one kind of decision: "published, not local, nothing to do" becomes a
    pull if an image still to be looked up (one above it) turns out to be
    built. Every other decision is final when made. A build is released
    once what it needs is final and, where that needs work, released.
    """
    unsettled = {i.name for i in graph.resolve(missing)} if missing else set()

    def settled(name: str) -> bool:
        decision = decisions.get(name)
        if decision is None:
            return False
        may_need_pull = decision.action is Action.NONE and not found[name].local
        return not may_need_pull or name not in unsettled

    final: list[str] = []
    ready = set(released)
    for name in order:
        decision = decisions.get(name)
        if decision is None or name in released or not settled(name):
            continue
        if decision.action is Action.BUILD and not all(
            settled(dep) and (decisions[dep].action is Action.NONE or dep in ready)
            for dep in graph.images[name].dependencies
        ):
            continue
        final.append(name)
        ready.add(name)
    return final


def jobs(
    decisions: Mapping[str, Decision],
    images: Mapping[str, Image],
    *,
    estimates: Mapping[str, float],
    registry: str,
    names: Iterable[str] | None = None,
    found: Mapping[str, Found] | None = None,
    homes: AbstractSet[str] = frozenset(),
    platform: str | None = None,
    transfer: bool = False,
) -> list[Job]:
    """Scheduler jobs for the decisions (builds wait for deps pulled or built).

    ``names``: only these images' jobs (their dependencies must be decided).
    For a pool of engines: ``found`` (where each image is at the start),
    ``homes`` (images that must end in the home engine), the ``platform``
    builds need, and whether ``publish: false`` images may travel through a
    ``transfer`` registry.
    """
    out: list[Job] = []
    for name in decisions if names is None else names:
        decision = decisions[name]
        image = images[name]
        after: tuple[str, ...] = ()
        needs: tuple[str, ...] = ()
        if decision.action is Action.BUILD:
            after = tuple(
                d for d in image.dependencies if decisions[d].action in (Action.PULL, Action.BUILD)
            )
            needs = tuple(image.dependencies)
        cargo = bool(image.manifest.cargo_builds)
        state = found.get(name) if found is not None else None
        out.append(
            Job(
                name,
                decision.action,
                push=decision.push,
                after=after,
                cargo=cargo and decision.action is Action.BUILD,
                estimate=estimates.get(name, 0.0),
                registry=registry,
                needs=needs,
                platform=platform,
                portable=image.manifest.publish or transfer,
                local=state is not None and state.local and decision.action is not Action.BUILD,
                published=state is not None and state.published and image.manifest.publish,
                home=name in homes,
            )
        )
    return out
