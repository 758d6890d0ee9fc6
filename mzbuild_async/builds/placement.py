"""Where each build goes: one rule, used by the run and by ``plan``'s prediction.

A build may go to a live engine of its platform that holds every
``publish: false`` image it needs that no registry has (such images travel
only with ``--transfer-registry``); ``publish: false`` images that a common
dependent needs together form a group, pinned to the engine the first of them
went to; a ``publish: false`` target of ``acquire``/``run`` must end in the
home engine. Among the engines with a free slot it takes the one where what
the build needs and the engine lacks is quickest to bring (its bytes over the
engine's link rate, :mod:`.links`), then the one holding the most of it, then
the one with the most free slots, then the first (:func:`choose_engine`). A
build waits for a busy engine instead when that engine is expected to be free
and to have the inputs sooner than the best free one would bring them
(:meth:`Placement.worth_waiting`: a link that carries a few Mbit/s costs more
than a wait).

:class:`Placement` holds that state for the scheduler; :func:`predict_placement`
runs the same rule in virtual time (:func:`~..dag.simulate.list_schedule`) on
the estimates, for ``plan``'s ENGINE column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import partial

from ..dag.simulate import SKIP, list_schedule
from ..dag.unionfind import UnionFind
from .jobs import Action, Job, Slots, critical_paths
from .links import Links, link

#: Seconds a wait for a busy engine must save over the best free one to be taken.
WAIT_MARGIN = 1.0


def fits(job: Job, slots: Slots) -> bool:
    """Whether ``slots``' engine builds ``job``'s platform."""
    return job.platform is None or slots.platform is None or job.platform == slots.platform


def choose_engine(
    job: Job,
    free: Sequence[str],
    held: Mapping[str, AbstractSet[str]],
    spare: Mapping[str, int],
    cost: Callable[[str], float] = lambda engine: 0.0,
) -> str:
    """The engine with a free slot where bringing what ``job`` needs ``cost``s the
    least (then the one holding the most of it, the most free slots, the first)."""
    needs = set(job.needs) | set(job.after)
    return max(
        free,
        key=lambda e: (
            -round(cost(e), 3),
            sum(e in held.get(n, ()) for n in needs),
            spare[e],
            -free.index(e),
        ),
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
    #: Link rates and image bytes, learned from transfers.
    links: Links = field(default_factory=Links)

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
        pinned = [
            n
            for n in sorted({*job.needs, *job.after})
            if not self.jobs[n].portable and not self.in_registry(n)
        ]
        holders = [e for e in fitting if all(e in self.held[n] for n in pinned)]
        if pinned and holders and all(self._needs_cut_registry(job, e) for e in holders):
            said = self.cut[holders[-1]][job.registry]
            return (
                f"{', '.join(pinned)} (publish: false) is only on engine {', '.join(holders)},"
                f" which cannot reach {job.registry} ({said})"
            )
        for need in {*job.needs, *job.after}:
            if not self.jobs[need].portable and not self.held[need]:
                return (
                    f"{need} (publish: false) was on an engine that was lost; name a"
                    " --transfer-registry to let such images move between engines"
                )
        return "no engine can build it (its publish: false parents are on different engines)"

    def missing(self, job: Job, engine: str) -> list[str]:
        """What ``job`` needs that ``engine`` does not hold (to be brought)."""
        return sorted(n for n in {*job.needs, *job.after} if engine not in self.held[n])

    def cost(self, job: Job, engine: str) -> float:
        """Expected seconds to bring into ``engine`` what ``job`` needs and it lacks."""
        missing = self.missing(job, engine)
        return self.links.seconds(engine, [(n, self.jobs[n].registry) for n in missing])

    def worth_waiting(self, job: Job, free: Sequence[str], busy: Mapping[str, float]) -> str | None:
        """The busy engine (of ``busy``: engine -> expected seconds until it has a free
        slot) that ``job`` had better wait for than go to any of ``free`` now, if any."""
        if not free or not busy:
            return None
        now = min(self.cost(job, e) for e in free)
        waits = {e: wait + self.cost(job, e) for e, wait in busy.items()}
        best = min(waits, key=lambda e: (waits[e], e))
        return best if waits[best] + WAIT_MARGIN < now else None

    def choose(self, job: Job, free: Sequence[str], spare: Mapping[str, int]) -> str:
        """The engine among ``free`` that ``job`` goes to (its group is pinned there)."""
        engine = choose_engine(job, free, self.held, spare, partial(self.cost, job))
        root = self.groups.find(job.name)
        if not job.portable and self.pinned.get(root) not in self.live:
            self.pinned[root] = engine
        return engine


@dataclass(frozen=True)
class LinkForecast:
    """What a run is expected to move over one link (``engine<->registry``)."""

    images: int
    bytes: int
    #: Its rate, bytes per second (None: not measured yet).
    rate: float | None
    seconds: float
    #: Of the images, those whose bytes no transfer has told yet (guessed).
    unsized: int = 0


@dataclass(frozen=True)
class Forecast:
    """``plan``'s prediction for a pool: the engine of each build, the bytes per link."""

    engines: dict[str, str]
    links: dict[str, LinkForecast]


def predict_placement(
    jobs: Sequence[Job], engines: Sequence[Slots], links: Links | None = None
) -> Forecast:
    """The engine each build would go to and what would move over each link (``plan``):
    the scheduler's placement rule (waits for busy engines included), run in virtual
    time on the estimates (transfers and pulls taking none) with the link rates and
    image bytes learned so far."""
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
        links=links or Links(),
    )
    for job in jobs:
        placement.join([n for n in (job.name, *job.needs) if not by_name[n].portable])
    free = {e.name: e.slots for e in engines}
    moved: dict[tuple[str, str], list[int]] = {}  # (images, bytes, of unknown size)
    ends: dict[str, tuple[str, float]] = {}  # (the builds running: engine, expected end)

    def carry(engine: str, image: str) -> None:
        key = (engine, by_name[image].registry)
        images, total, unsized = moved.get(key, [0, 0, 0])
        guessed = image not in placement.links.sizes
        moved[key] = [images + 1, total + placement.links.size(image), unsized + guessed]

    def place(name: str, now: float) -> str | object | None:
        job = by_name[name]
        usable = placement.usable(job)
        if not usable:
            return SKIP  # it would fail; what waits for it is not held back
        candidates = [e for e in usable if free[e] > 0]
        busy = {
            e: min(end for where, end in ends.values() if where == e) - now
            for e in usable
            if free[e] == 0
        }
        if not candidates or placement.worth_waiting(job, candidates, busy):
            return None
        engine = placement.choose(job, candidates, free)
        free[engine] -= 1
        ends[name] = (engine, now + job.estimate)
        for need in placement.missing(job, engine):
            carry(engine, need)
            placement.held[need].add(engine)
        if job.push:
            carry(engine, name)
        return engine

    def finished(name: str, engine: object) -> None:
        del ends[name]
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
    forecast: dict[str, LinkForecast] = {}
    for (engine, registry), (images, total, unsized) in sorted(moved.items()):
        rate = placement.links.rate(engine, registry)
        known = placement.links.rates.get(link(engine, registry))
        forecast[link(engine, registry)] = LinkForecast(images, total, known, total / rate, unsized)
    return Forecast({name: str(start.place) for name, start in started.items()}, forecast)
