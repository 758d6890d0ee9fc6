"""Where each build goes: one rule, used by the run and by ``plan``'s prediction.

A build may go to a live engine of its platform that holds every
``publish: false`` image it needs that no registry has (such images travel
only with ``--transfer-registry``); ``publish: false`` images that a common
dependent needs together form a group, pinned to the engine the first of them
went to; a ``publish: false`` target of ``acquire``/``run`` must end in the
home engine. Among the engines with a free slot it takes the one holding the
most of what the build needs, then the one with the most free slots, then
the first (:func:`choose_engine`).

:class:`Placement` holds that state for the scheduler; :func:`predict_placement`
runs the same rule in virtual time (:func:`~..dag.simulate.list_schedule`) on
the estimates, for ``plan``'s ENGINE column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from ..dag.simulate import SKIP, list_schedule
from ..dag.unionfind import UnionFind
from .jobs import Action, Job, Slots, critical_paths


def fits(job: Job, slots: Slots) -> bool:
    """Whether ``slots``' engine builds ``job``'s platform."""
    return job.platform is None or slots.platform is None or job.platform == slots.platform


def choose_engine(
    job: Job, free: Sequence[str], held: Mapping[str, AbstractSet[str]], spare: Mapping[str, int]
) -> str:
    """The engine with a free slot that holds the most of what ``job`` needs
    (then the one with the most free slots, then the first)."""
    needs = set(job.needs) | set(job.after)
    return max(
        free,
        key=lambda e: (sum(e in held.get(n, ()) for n in needs), spare[e], -free.index(e)),
    )


@dataclass
class Placement:
    """The placement rule's state: engines, where images are, the pinned groups.

    ``held`` and ``live`` are shared with the scheduler (it updates them as
    images land and engines go); ``in_registry(name)`` says whether an image
    can be fetched from a registry now.
    """

    jobs: Mapping[str, Job]
    engines: Mapping[str, Slots]
    live: list[str]
    held: MutableMapping[str, set[str]]
    in_registry: Callable[[str], bool]
    home: str
    groups: UnionFind[str] = field(default_factory=UnionFind)
    pinned: dict[str, str] = field(default_factory=dict)
    #: Per engine: the registries it could not reach in this run, and what it said.
    cut: dict[str, dict[str, str]] = field(default_factory=dict)

    def join(self, names: Sequence[str]) -> None:
        """``names`` (``publish: false`` images a build needs together) share an engine."""
        for other in names[1:]:
            self.groups.union(names[0], other)

    def usable(self, job: Job) -> list[str]:
        """The live engines ``job`` could be built on (free or not)."""
        usable = [
            e
            for e in self.live
            if fits(job, self.engines[e]) and not self._needs_cut_registry(job, e)
        ]
        pinned = self.pinned.get(self.groups.find(job.name)) if not job.portable else None
        if pinned is not None and pinned in self.live:
            usable = [e for e in usable if e == pinned]
        for need in {*job.needs, *job.after}:
            if not self.jobs[need].portable and not self.in_registry(need):
                usable = [e for e in usable if e in self.held[need]]
        if job.home and not job.portable:
            usable = [e for e in usable if e == self.home]
        return usable

    def _needs_cut_registry(self, job: Job, engine: str) -> bool:
        """Whether ``job`` on ``engine`` would need a registry ``engine`` cannot reach: to
        push, or to fetch an input it does not hold."""
        if job.registry not in self.cut.get(engine, {}):
            return False
        return job.push or any(engine not in self.held[n] for n in {*job.needs, *job.after})

    def why_not(self, job: Job) -> str:
        """Why no engine can take ``job`` (when :meth:`usable` is empty)."""
        fitting = [e for e in self.live if fits(job, self.engines[e])]
        if not fitting:
            return f"no engine of the pool builds {job.platform}"
        if all(self._needs_cut_registry(job, e) for e in fitting):
            said = self.cut[fitting[-1]][job.registry]
            return f"no engine of the pool reaches {job.registry} (the last said: {said})"
        for need in {*job.needs, *job.after}:
            if not self.jobs[need].portable and not self.held[need]:
                return (
                    f"{need} (publish: false) was on an engine that was lost; name a"
                    " --transfer-registry to let such images move between engines"
                )
        return "no engine can build it (its publish: false parents are on different engines)"

    def choose(self, job: Job, free: Sequence[str], spare: Mapping[str, int]) -> str:
        """The engine among ``free`` that ``job`` goes to (its group is pinned there)."""
        engine = choose_engine(job, free, self.held, spare)
        root = self.groups.find(job.name)
        if not job.portable and self.pinned.get(root) not in self.live:
            self.pinned[root] = engine
        return engine


def predict_placement(jobs: Sequence[Job], engines: Sequence[Slots]) -> dict[str, str]:
    """The engine each build would go to (``plan``): the scheduler's placement rule,
    run in virtual time on the estimates (transfers and pulls taking none)."""
    by_name = {job.name: job for job in jobs}
    priority = critical_paths(by_name)
    home = engines[0].name
    placement = Placement(
        by_name,
        {e.name: e for e in engines},
        [e.name for e in engines],
        {
            job.name: {home} if job.local or (job.action is Action.PULL and job.home) else set()
            for job in jobs
        },
        lambda name: by_name[name].published,
        home,
    )
    for job in jobs:
        placement.join([n for n in (job.name, *job.needs) if not by_name[n].portable])
    free = {e.name: e.slots for e in engines}

    def place(name: str, now: float) -> str | object | None:
        job = by_name[name]
        usable = placement.usable(job)
        if not usable:
            return SKIP  # it would fail; what waits for it is not held back
        candidates = [e for e in usable if free[e] > 0]
        if not candidates:
            return None
        engine = placement.choose(job, candidates, free)
        free[engine] -= 1
        return engine

    def finished(name: str, engine: object) -> None:
        free[str(engine)] += 1
        placement.held[name].add(str(engine))

    builds = [job.name for job in jobs if job.action is Action.BUILD]
    started = list_schedule(
        builds,
        {
            name: [d for d in by_name[name].after if by_name[d].action is Action.BUILD]
            for name in builds
        },
        lambda name: by_name[name].estimate,
        priority.__getitem__,
        place,
        finished,
    )
    return {name: str(start.place) for name, start in started.items()}
