"""The walk from fingerprints to decisions: lookups go out, answers come back, and each
image is released to the scheduler the moment its decision can no longer change.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

import anyio

from ..builds.deciding import Decider
from ..builds.decisions import Decision, Found, Workflow
from ..engine.listing import TagSnapshot
from ..engine.protocol import Engine
from ..errors import single_error
from ..lookup.lookups import Answer, Lookups
from ..model.publication import Destination
from ..model.spec import fingerprint_of
from ..model.status import Status
from ..release.mirrors import mirror_specs
from ..source.repository import Repository
from ..store.history import BuildHistory
from ..support.deadline import deadline
from ..support.events import Event, EventStatus, Listener, Phase, ignore
from ..support.words import counted
from .options import RunOptions
from .results import RunPlan, found_state

#: Copies a mirror's spec to the primary's; the digest and size, or None if it could not.
Restore = Callable[[str, str], Awaitable[tuple[str, int] | None]]


class Answers:
    """Local and published state of images, each recorded the moment all is known.

    With ``mirrors`` (name -> registry -> spec), every registry is asked at
    once; an image the primary lacks but a mirror has is ``restore``d (copied
    to the primary: then it is published), or, in a plan (no ``restore``),
    counted published with where it would come from.
    """

    def __init__(
        self,
        repo: Repository,
        specs: Mapping[str, str],
        docker: Engine,
        engine: Lookups,
        mirrors: Mapping[str, Mapping[str, str]] | None = None,
        restore: Restore | None = None,
        others: tuple[AbstractSet[str], float] | None = None,
    ) -> None:
        self.repo = repo
        #: A CI step's own images, and when (anyio's clock) its ``--wait`` runs out:
        #: lookups of the other steps' images end by then.
        self.others = others
        self.specs = specs
        self.docker = docker
        self.engine = engine
        self.mirrors = mirrors or {}
        self.restore = restore
        self.found: dict[str, Found] = {}
        self._changed = anyio.Event()

    async def changed(self) -> None:
        """Wait until some state was recorded since the last call."""
        await self._changed.wait()
        self._changed = anyio.Event()

    async def look_up(self, names: list[str]) -> None:
        """Ask the engine and the registry about ``names``, all at once."""
        local: dict[str, bool] = {}
        answers: dict[str, Answer] = {}
        mirrored: dict[str, dict[str, Status]] = {}
        publishable = {self.specs[n]: n for n in names if self.repo.image(n).manifest.publish}
        at_mirror = {
            spec: (name, registry)
            for name in publishable.values()
            for registry, spec in self.mirrors.get(name, {}).items()
        }
        settling: set[str] = set()

        def complete(name: str) -> bool:
            if name not in local:
                return False
            if self.specs[name] not in publishable:
                return True
            return name in answers and len(mirrored.get(name, {})) == len(
                self.mirrors.get(name, {})
            )

        def settle(name: str) -> None:
            if complete(name) and name not in settling:
                settling.add(name)
                tg.start_soon(self._record, name, local[name], answers.get(name), mirrored)

        async def check_local(snapshot: TagSnapshot, name: str) -> None:
            local[name] = await snapshot.exists(self.specs[name])
            settle(name)

        async def check_locals() -> None:
            snapshot = TagSnapshot(self.docker)  # (many at once: one listing)
            await snapshot.prefetch([self.specs[n] for n in names])
            for name in names:
                tg.start_soon(check_local, snapshot, name)

        def answered(answer: Answer) -> None:
            if answer.spec in publishable:
                name = publishable[answer.spec]
                answers[name] = answer
            else:
                name, registry = at_mirror[answer.spec]
                mirrored.setdefault(name, {})[registry] = answer.status
            settle(name)

        async def ask(specs: list[str], until: float | None) -> None:
            if until is None:
                await self.engine.lookup_many(specs, answered)
                return
            with deadline(max(0.0, until - anyio.current_time())):
                await self.engine.lookup_many(specs, answered)

        async with anyio.create_task_group() as tg:
            tg.start_soon(check_locals)
            if publishable:
                asked = [*publishable, *at_mirror]
                if self.others is None:
                    tg.start_soon(ask, asked, None)
                else:  # (another step's image is awaited: its lookup counts to --wait)
                    own, until = self.others
                    mine = [s for s in asked if (publishable.get(s) or at_mirror[s][0]) in own]
                    theirs = [s for s in asked if s not in set(mine)]
                    if mine:
                        tg.start_soon(ask, mine, None)
                    if theirs:
                        tg.start_soon(ask, theirs, until)

    async def _record(
        self,
        name: str,
        local: bool,
        answer: Answer | None,
        mirrored: Mapping[str, Mapping[str, Status]],
    ) -> None:
        state = found_state(local, answer)
        said = dict(mirrored.get(name, {}))
        if said:
            state = replace(state, mirrors=said)
            source = next((r for r, s in said.items() if s is Status.PRESENT), None)
            if source is not None and answer is not None and answer.status is Status.ABSENT:
                from_spec = self.mirrors[name][source]
                if self.restore is None:  # (a plan: what the run would do)
                    state = replace(state, published=True, tier="mirror", copied_from=source)
                else:
                    copied = await self.restore(from_spec, self.specs[name])
                    if copied is not None:
                        state = replace(
                            state,
                            published=True,
                            tier="mirror",
                            copied_from=source,
                            digest=copied[0],
                            size=copied[1],
                        )
        self.found[name] = state
        self._changed.set()


#: Answers are acted on in batches of a 64th of a run's images (below 128 images:
#: each at once)...
BATCHES = 64
#: ...or of what came in this long (seconds): no answer waits longer to be acted on.
COALESCE_MAX = 0.05


#: Receives, as they become final, the names of images whose decision can no
#: longer change (dependencies first), with every decision and state so far.
Release = Callable[[Sequence[str], Mapping[str, Decision], Mapping[str, Found]], None]


async def walk(
    repo: Repository,
    workflow: Workflow,
    targets: list[str],
    docker: Engine,
    engine: Lookups,
    *,
    force: bool,
    listener: Listener = ignore,
    since: Callable[[], float] = lambda: 0.0,
    release: Release | None = None,
    fingerprinted: bool = False,
    only: AbstractSet[str] | None = None,
    mirrors: Sequence[Destination] = (),
    restore: Restore | None = None,
    wait_until: float | None = None,
) -> RunPlan:
    """Fingerprints, lookups and decisions, each image released as soon as it is final.

    Lookups go out for the targets first; then, if some must be built, for
    everything below what those builds need, in one more round (a chain of
    builds is not a round per image; a found target's dependencies are
    never asked about). Each answer is acted on as it comes: an image whose
    decision no later answer can change (it is below no image still being
    looked up), and whose build's inputs are released too, goes to
    ``release`` at once, so its work can start while other lookups go on.
    With ``only`` (a CI step), ``wait_until`` (anyio's clock) bounds the lookups
    of every other image: an image another step builds is awaited until then.
    """
    images = repo.resolve(targets)
    order = [i.name for i in images]
    if not fingerprinted:  # (else the caller did, and said so)
        listener(
            Event(
                since(), None, Phase.FINGERPRINT, EventStatus.START, counted(len(images), "image")
            )
        )
    specs = await repo.specs(targets)
    if not fingerprinted:
        listener(Event(since(), None, Phase.FINGERPRINT, EventStatus.DONE))
    listener(Event(since(), None, Phase.LOOKUP, EventStatus.START, counted(len(images), "image")))
    asked_mirrors = (
        {n: mirror_specs(n, specs[n], mirrors) for n in specs}
        if mirrors and workflow is Workflow.ENSURE
        else {}
    )
    others = (only, wait_until) if only is not None and wait_until is not None else None
    answers = Answers(repo, specs, docker, engine, asked_mirrors, restore, others)
    found = answers.found
    requested: set[str] = set()
    decider = Decider(workflow, images, targets, specs, force=force, only=only)
    answered = 0

    with single_error():
        async with anyio.create_task_group() as tg:
            while True:
                new = list(itertools.islice(found, answered, None))  # (found only grows)
                answered += len(new)
                final = decider.answer(found, new)
                if final and release is not None:
                    release(final, decider.decisions, found)
                missing = decider.missing
                if not missing:
                    break
                ask = missing - requested
                if ask and requested:  # after the targets: all below what builds need
                    ask = {i.name for i in repo.resolve(ask)} - requested - found.keys()
                if ask:
                    requested.update(ask)
                    tg.start_soon(answers.look_up, [n for n in order if n in ask])
                await answers.changed()
                # Answers are taken in batches of a 64th of the images (or what came in
                # COALESCE_MAX): each batch costs the decider time in what it changes,
                # and the scheduler one call. (Everything found was requested, so the
                # counts say whether answers are still to come.)
                batch = max(1, len(order) // BATCHES)
                with anyio.move_on_after(COALESCE_MAX):
                    while len(found) - answered < batch and len(found) < len(requested):
                        await answers.changed()
            tg.cancel_scope.cancel()  # lookups nothing needs any more
    decisions = decider.ordered()
    listener(Event(since(), None, Phase.LOOKUP, EventStatus.DONE, f"{len(found)} looked up"))
    return RunPlan(
        workflow,
        decisions,
        found,
        {name: fingerprint_of(specs[name]) for name in decisions},
        {name: repo.image(name).dependencies for name in decisions},
        {name: repo.image(name).manifest.publish for name in decisions},
    )


def build_estimates(
    repo: Repository, names: Iterable[str], history: BuildHistory
) -> dict[str, float]:
    """Expected build seconds of each image, from the build history."""
    return {
        name: history.estimate(name, cargo=bool(repo.image(name).manifest.cargo_builds))
        for name in names
    }


def job_settings(
    repo: Repository, workflow: Workflow, targets: Sequence[str], options: RunOptions, platform: str
) -> dict[str, Any]:
    """What jobs() needs to know of the pool: homes, platform, transfers."""
    return {
        "homes": homes(repo, workflow, targets),
        "platform": platform,
        "transfer": options.transfer_registry is not None,
    }


def homes(repo: Repository, workflow: Workflow, targets: Sequence[str]) -> frozenset[str]:
    """Targets that must end in the home engine: all but the ones ``ensure`` publishes."""
    return frozenset(
        name
        for name in targets
        if workflow is not Workflow.ENSURE or not repo.image(name).manifest.publish
    )
