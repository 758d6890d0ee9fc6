"""The walk from fingerprints to decisions: lookups go out, answers come back, and each
image is released to the scheduler the moment its decision can no longer change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import anyio

from ..builds.plan import Decision, Found, Workflow, decide, settled_decisions
from ..engine.protocol import Engine
from ..errors import single_error
from ..lookup.engine import Answer, LookupEngine
from ..model.spec import fingerprint_of
from ..source.repository import Repository
from ..store.history import BuildHistory
from ..support.events import Event, EventStatus, Listener, Phase, ignore
from .options import RunOptions
from .results import RunPlan, found_state


class Answers:
    """Local and published state of images, each recorded the moment both are known."""

    def __init__(
        self, repo: Repository, specs: Mapping[str, str], docker: Engine, engine: LookupEngine
    ) -> None:
        self.repo = repo
        self.specs = specs
        self.docker = docker
        self.engine = engine
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
        publishable = {self.specs[n]: n for n in names if self.repo.image(n).manifest.publish}

        def settle(name: str) -> None:
            if name in local and (name in answers or self.specs[name] not in publishable):
                self.found[name] = found_state(local[name], answers.get(name))
                self._changed.set()

        async def check_local(name: str) -> None:
            local[name] = await self.docker.exists(self.specs[name])
            settle(name)

        def answered(answer: Answer) -> None:
            name = publishable[answer.spec]
            answers[name] = answer
            settle(name)

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(check_local, name)
            if publishable:
                tg.start_soon(self.engine.lookup_many, list(publishable), answered)


#: Receives, as they become final, the names of images whose decision can no
#: longer change (dependencies first), with every decision and state so far.
Release = Callable[[Sequence[str], Mapping[str, Decision], Mapping[str, Found]], None]


async def walk(
    repo: Repository,
    workflow: Workflow,
    targets: list[str],
    docker: Engine,
    engine: LookupEngine,
    *,
    force: bool,
    listener: Listener = ignore,
    since: Callable[[], float] = lambda: 0.0,
    release: Release | None = None,
    fingerprinted: bool = False,
    only: AbstractSet[str] | None = None,
) -> RunPlan:
    """Fingerprints, lookups and decisions, each image released as soon as it is final.

    Lookups go out for the targets first; then, if some must be built, for
    everything below what those builds need, in one more round (a chain of
    builds is not a round per image; a found target's dependencies are
    never asked about). Each answer is acted on as it comes: an image whose
    decision no later answer can change (it is below no image still being
    looked up), and whose build's inputs are released too, goes to
    ``release`` at once, so its work can start while other lookups go on.
    """
    images = repo.resolve(targets)
    order = [i.name for i in images]
    if not fingerprinted:  # (else the caller did, and said so)
        listener(
            Event(since(), None, Phase.FINGERPRINT, EventStatus.START, f"{len(images)} images")
        )
    specs = await repo.specs(targets)
    if not fingerprinted:
        listener(Event(since(), None, Phase.FINGERPRINT, EventStatus.DONE))
    listener(Event(since(), None, Phase.LOOKUP, EventStatus.START, f"{len(images)} images"))
    answers = Answers(repo, specs, docker, engine)
    found = answers.found
    requested: set[str] = set()
    released: set[str] = set()

    with single_error():
        async with anyio.create_task_group() as tg:
            while True:
                missing: set[str] = set()
                decisions = decide(
                    workflow, images, targets, specs, found, force=force, missing=missing, only=only
                )
                final = settled_decisions(repo.graph, order, decisions, found, missing, released)
                if final:
                    released.update(final)
                    if release is not None:
                        release(final, decisions, found)
                if not missing:
                    break
                ask = missing - requested
                if ask and requested:  # after the targets: all below what builds need
                    ask = {i.name for i in repo.resolve(ask)} - requested - found.keys()
                if ask:
                    requested.update(ask)
                    tg.start_soon(answers.look_up, [n for n in order if n in ask])
                await answers.changed()
            tg.cancel_scope.cancel()  # lookups nothing needs any more
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
