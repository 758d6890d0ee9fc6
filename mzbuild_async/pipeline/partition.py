"""Cutting the images a run must build into CI steps: pure logic, no I/O.

Each step is a set of images in dependency order that one agent builds
with one ``ensure``; a step waits (``depends_on``/``needs``) for the steps
that build the images it builds on. The cut:

1. ``publish: false`` images never reach a registry, so each is in the
   step of every image that needs it (a union-find over those edges; a
   cycle between the resulting groups is merged away, so the steps form a
   DAG).
2. Candidate cuts are judged by simulating the pipeline each makes: every
   step after the steps it depends on, on the first free of ``agents``
   agents (or as many as there is work for, with only
   ``max_step_seconds``), costing ``startup`` seconds before its first
   build and running its images on ``jobs`` slots. The candidates:

   - rounds over an ideal schedule (no steps, all slots), at several
     widths: a group goes to the round of its ideal start, never before
     its predecessors'; groups of a round joined by an edge share a step
     (or, capped, a group that would make its piece outgrow a step moves
     to the next round), and the pieces are packed onto as many steps as
     agents, the biggest first onto the lightest;
   - a greedy cut formed while simulating: a free agent starts a step with
     the ready group on the longest remaining path, then adds other ready
     groups and those that only wait for this step (a chain stays
     together) while the step's work stays within a share (a quarter of
     the work per agent, at least ten start-ups of its slots, or
     ``max_step_seconds``);
   - one step for everything (Materialize's way).

   The one that ends first wins (within ``max_step_seconds``, if given).

Every ``depends_on`` points at an earlier step, so the steps form a DAG,
and the simulated makespan is what the pipeline takes when each image's
build takes its estimate. ``benchmarks/pipeline.py`` measures the cut
against its bound and against one build step.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from ..dag.paths import longest_paths, topological
from ..dag.simulate import list_schedule
from ..dag.unionfind import UnionFind

#: Seconds an agent spends on a step before its first build (checkout, start-up).
DEFAULT_STARTUP = 30.0
#: Builds at once within one step (``ensure --jobs``).
DEFAULT_AGENT_JOBS = 4


@dataclass(frozen=True)
class Step:
    """One CI step: its key, its images in dependency order, the steps it waits for."""

    key: str
    images: tuple[str, ...]
    depends_on: tuple[str, ...]
    #: Estimated seconds of its builds (without start-up).
    work: float
    #: When the simulation started and finished it.
    start: float
    end: float


@dataclass(frozen=True)
class Partition:
    """The steps, dependencies first, and the simulated makespan."""

    steps: tuple[Step, ...]
    makespan: float

    def step_of(self) -> dict[str, str]:
        """The key of the step that builds each image."""
        return {image: step.key for step in self.steps for image in step.images}


def _groups(
    images: Sequence[str],
    deps: Mapping[str, AbstractSet[str]],
    sticky: AbstractSet[str],
    together: AbstractSet[str] = frozenset(),
) -> dict[str, str]:
    """Each image's group: ``publish: false`` images with what needs them, cycles merged."""
    groups = UnionFind[str](images)
    for name in images:
        for dep in deps[name]:
            if dep in sticky:
                groups.union(dep, name)
    first_together = next((name for name in images if name in together), None)
    for name in images:
        if name in together and first_together is not None:
            groups.union(first_together, name)
    while True:  # merge cycles between groups until the groups form a DAG
        cycle = _a_cycle(images, deps, groups.find)
        if not cycle:
            return {name: groups.find(name) for name in images}
        first, *rest = cycle
        for other in rest:
            groups.union(first, other)


def _a_cycle(
    images: Sequence[str], deps: Mapping[str, AbstractSet[str]], root: object
) -> list[str]:
    """The groups of one cycle in the graph between groups (none: empty)."""
    assert callable(root)
    edges: dict[str, set[str]] = {}
    for name in images:
        group = root(name)
        edges.setdefault(group, set())
        for dep in deps[name]:
            other = root(dep)
            if other != group:
                edges[group].add(other)
    state: dict[str, int] = {}
    for start, targets in edges.items():
        if start in state:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(targets))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return path[path.index(nxt) :]
            if nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(edges[nxt])))
    return []


def step_seconds(
    images: Sequence[str],
    deps: Mapping[str, AbstractSet[str]],
    seconds: Mapping[str, float],
    jobs: int,
    released: Mapping[str, float],
) -> float:
    """Seconds ``images`` (dependency order) take within one step on ``jobs`` slots,
    the longest remaining path first (``released``: an image's earliest start in
    its step, e.g. after the step's cargo build)."""
    chosen = set(images)
    preds = {name: [d for d in deps[name] if d in chosen] for name in images}
    rest = longest_paths(images, _successors(images, preds), seconds.__getitem__, ordered=True)
    started = list_schedule(
        sorted(images),  # (ties of the longest path: by name)
        preds,
        seconds.__getitem__,
        rest.__getitem__,
        lambda _name, _now: "slot",
        slots=jobs,
        earliest=released,
    )
    return max((s.at + seconds[s.node] for s in started.values()), default=0.0)


def _successors(
    nodes: Sequence[str], preds: Mapping[str, AbstractSet[str] | Sequence[str]]
) -> dict[str, list[str]]:
    """What waits for each node (``preds`` turned around)."""
    after: dict[str, list[str]] = {n: [] for n in nodes}
    for n in nodes:
        for p in preds[n]:
            after[p].append(n)
    return after


def partition(
    images: Sequence[str],
    deps: Mapping[str, AbstractSet[str]],
    seconds: Mapping[str, float],
    *,
    sticky: AbstractSet[str] = frozenset(),
    together: AbstractSet[str] = frozenset(),
    released: Mapping[str, float] | None = None,
    agents: int | None = None,
    max_step_seconds: float | None = None,
    startup: float = DEFAULT_STARTUP,
    jobs: int = DEFAULT_AGENT_JOBS,
) -> Partition:
    """Cut ``images`` (dependency order; ``deps`` within them) into steps (see the
    module docstring). ``agents`` or ``max_step_seconds`` (or both) size them;
    ``sticky``: images that never leave their step; ``together``: images that
    share one step; ``released``: seconds into its step before an image can
    start (a cargo image: the step's cargo build, run once per step)."""
    if not images:
        return Partition((), 0.0)
    if agents is not None and agents < 1:
        raise ValueError("agents must be at least 1")
    cutter = _Cutter(images, deps, seconds, sticky, together, startup, jobs)
    cutter.released = released or {}
    lanes = agents if agents is not None else len(cutter.members)
    limit = max_step_seconds if max_step_seconds is not None else float("inf")
    share = limit
    if agents is not None:
        total = sum(cutter.work.values())
        # Several steps per agent (a quarter of its share of the work each), none
        # shorter than ten start-ups' worth of its slots' time.
        floor = startup * jobs * 10
        share = min(share, max(floor, total / (agents * 4), *cutter.work.values()))
    # Candidates: the greedy cut, rounds of several widths, one step for all;
    # the one whose simulated pipeline ends first (within the step limit) wins.
    candidates = [[list(step.images) for step in cutter.run(lanes, share, limit).steps]]
    mean = sum(cutter.work.values()) / len(cutter.members)
    for width in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 13, 16, 21):
        for cap in (None, 0.25, 1.0, 1.25):
            candidates.append(cutter.rounds(width * max(mean, 1e-9), lanes, limit, cap))
    candidates.append([list(images)])
    scored = [cutter.simulate(steps, lanes) for steps in candidates]

    def excess(cut: Partition) -> float:  # work beyond --max-step-seconds
        return sum(max(0.0, step.work - limit) for step in cut.steps)

    return min(scored, key=lambda c: (excess(c), c.makespan, len(c.steps)))


Item = tuple[float, int, str]


class _Cutter:
    """The groups' graph and the simulation that forms the steps."""

    def __init__(
        self,
        images: Sequence[str],
        deps: Mapping[str, AbstractSet[str]],
        seconds: Mapping[str, float],
        sticky: AbstractSet[str],
        together: AbstractSet[str],
        startup: float,
        jobs: int,
    ) -> None:
        self.deps, self.seconds, self.startup, self.jobs = deps, seconds, startup, jobs
        self.order = {name: i for i, name in enumerate(images)}
        group_of = _groups(images, deps, sticky, together)
        self.members: dict[str, list[str]] = {}
        for name in images:
            self.members.setdefault(group_of[name], []).append(name)
        self.work = {g: sum(seconds[n] for n in names) for g, names in self.members.items()}
        self.preds = {
            g: {group_of[d] for n in names for d in deps[n]} - {g}
            for g, names in self.members.items()
        }
        self.succs: dict[str, set[str]] = {g: set() for g in self.members}
        for g, ps in self.preds.items():
            for p in ps:
                self.succs[p].add(g)
        # Longest remaining path of each group (its work and what waits for it).
        self.path = longest_paths(self.members, self.succs, self.work.__getitem__)
        #: The groups, each after its predecessors (ties: the order of their images).
        self.topological = topological(list(self.members), self.preds, self.succs, self.first)
        self.done: set[str] = set()  # groups whose step has ended
        self.step_of: dict[str, int] = {}
        self.steps: list[Step] = []
        self.queued: set[str] = set()
        self.ready: list[Item] = []
        self.released: Mapping[str, float] = {}
        self._ideal: dict[int, dict[str, float]] = {}

    def first(self, group: str) -> int:
        """Where a group's first image stands in the dependency order."""
        return self.order[self.members[group][0]]

    def item(self, group: str) -> Item:
        return (-self.path[group], self.order[self.members[group][0]], group)

    def link(self, group: str) -> bool:
        """A link of a chain: its one predecessor has it as its one successor."""
        preds = self.preds[group]
        return len(preds) == 1 and all(len(self.succs[p]) == 1 for p in preds)

    def simulate(self, sets: Sequence[Sequence[str]], lanes: int) -> Partition:
        """The pipeline of these image sets (each after those it needs) on ``lanes``
        agents: each step in turn on the agent free first, once its dependencies end."""
        step_of = {name: i for i, names in enumerate(sets) for name in names}
        steps: list[Step] = []
        free = [0.0] * lanes
        for i, names in enumerate(sets):
            ordered = sorted(names, key=self.order.__getitem__)
            needs = sorted({step_of[d] for n in ordered for d in self.deps[n]} - {i})
            agent = min(range(lanes), key=free.__getitem__)
            start = max([free[agent], *(steps[j].end for j in needs)])
            inside = step_seconds(ordered, self.deps, self.seconds, self.jobs, self.released)
            free[agent] = end = start + self.startup + inside
            work = sum(self.seconds[n] for n in ordered)
            key = f"build-{i + 1}"
            steps.append(
                Step(key, tuple(ordered), tuple(steps[j].key for j in needs), work, start, end)
            )
        return Partition(tuple(steps), max(step.end for step in steps))

    def rounds(
        self, width: float, lanes: int, limit: float, cap: float | None = None
    ) -> list[list[str]]:
        """Steps in rounds: each group goes to the round of its start in an ideal
        schedule (``width`` seconds per round, never before its predecessors'
        rounds); within a round, groups joined by an edge share a step, and the
        pieces are packed into as many steps as there are agents (or as the limit
        needs), the biggest first onto the lightest. With ``cap`` (a fraction of
        one step's slot time in a round), a group whose joining would make its
        piece bigger than that goes to the next round instead, so no piece
        outgrows a step."""
        start = self.ideal_starts(lanes)
        round_of: dict[str, int] = {}
        pieces_of = UnionFind[str]()  # (each piece's representative: its last group)
        size: dict[str, float] = {}
        for g in self.topological:
            own = int(min(start[n] for n in self.members[g]) // width)
            r = max([own, *(round_of[p] for p in self.preds[g])])
            joined = {pieces_of.find(p) for p in self.preds[g] if round_of[p] == r}
            grown = self.work[g] + sum(size[j] for j in joined)
            if cap is not None and joined and grown > cap * width * self.jobs:
                r, joined = r + 1, set()
            round_of[g] = r
            size[g] = self.work[g] + sum(size[j] for j in joined)
            for j in joined:
                pieces_of.union(g, j)
        by_round: dict[int, dict[str, list[str]]] = {}
        for g in self.members:  # (each round's pieces, their groups in the members' order)
            parts = by_round.setdefault(round_of[g], {})
            parts.setdefault(pieces_of.find(g), []).extend(self.members[g])
        out: list[list[str]] = []
        for r in sorted(by_round):
            weighed = [(sum(self.seconds[x] for x in n), n) for n in by_round[r].values()]
            weighed.sort(key=lambda wn: -wn[0])
            work = sum(self.seconds[n] for _, piece in weighed for n in piece)
            count = max(1, min(len(weighed), max(lanes, int(work // limit) + 1 if limit else 1)))
            bins: list[list[str]] = [[] for _ in range(count)]
            load = [0.0] * count
            for w, piece in weighed:
                i = min(range(count), key=load.__getitem__)
                bins[i].extend(piece)
                load[i] += w
            out.extend(b for b in bins if b)
        return out

    def ideal_starts(self, lanes: int) -> dict[str, float]:
        """When each image would start with ``lanes`` x ``jobs`` slots and no steps."""
        cached = self._ideal.get(lanes)
        if cached is None:
            cached = self._ideal[lanes] = self._ideal_starts(lanes)
        return cached

    def _ideal_starts(self, lanes: int) -> dict[str, float]:
        images = sorted(self.order, key=self.order.__getitem__)
        after = _successors(images, self.deps)
        rest = longest_paths(images, after, self.seconds.__getitem__, ordered=True)
        started = list_schedule(
            sorted(images),  # (ties of the longest path: by name)
            self.deps,
            self.seconds.__getitem__,
            rest.__getitem__,
            None,
            slots=lanes * self.jobs,
        )
        return {name: s.at for name, s in started.items()}

    def run(self, lanes: int, share: float, limit: float = float("inf")) -> Partition:
        for g in self.members:
            if not self.preds[g]:
                self.queued.add(g)
                heapq.heappush(self.ready, self.item(g))
        free = [0.0] * lanes  # when each agent is free
        running: list[tuple[float, int]] = []  # (end, step index)
        now = 0.0
        while len(self.step_of) < len(self.members):
            while self.ready and min(free) <= now:
                agent = free.index(min(free))
                free[agent] = self.form_step(now, share, limit)
                heapq.heappush(running, (free[agent], len(self.steps) - 1))
            if len(self.step_of) >= len(self.members):
                break
            if not running:
                raise RuntimeError("partition: groups that never become ready (a cycle)")
            end, index = heapq.heappop(running)
            now = max(now, end)
            self.done.update(g for g, i in self.step_of.items() if i == index)
            for g in self.members:
                if g not in self.queued and self.preds[g] <= self.done:
                    self.queued.add(g)
                    heapq.heappush(self.ready, self.item(g))
        return Partition(tuple(self.steps), max(step.end for step in self.steps))

    def form_step(self, now: float, share: float, limit: float) -> float:
        """Start one step at ``now`` with what is ready (within ``share``); its end."""
        taken: list[str] = []
        taken_work = 0.0
        # What waits only for this step and finished steps may join it, but no
        # other step: it is ready only once this one has ended.
        joining: list[Item] = []
        while self.ready or joining:
            first = joining and (
                self.link(joining[0][2]) or not self.ready or joining[0] < self.ready[0]
            )
            source = joining if first else self.ready
            item = heapq.heappop(source)
            group = item[2]
            # A chain's link stays with it: a new step could not start it sooner.
            over = taken_work + self.work[group]
            chained = source is joining and self.link(group)
            if taken and (over > limit or (over > share and not chained)):
                heapq.heappush(source, item)
                break
            taken.append(group)
            taken_work += self.work[group]
            self.step_of[group] = len(self.steps)
            for s in self.succs[group]:
                if s not in self.queued and all(
                    p in self.done or p in taken for p in self.preds[s]
                ):
                    self.queued.add(s)
                    heapq.heappush(joining, self.item(s))
        self.queued.difference_update(item[2] for item in joining)
        names = sorted((n for g in taken for n in self.members[g]), key=self.order.__getitem__)
        inside = step_seconds(names, self.deps, self.seconds, self.jobs, self.released)
        end = now + self.startup + inside
        depends = {
            self.steps[self.step_of[p]].key for g in taken for p in self.preds[g] if p not in taken
        }
        key = f"build-{len(self.steps) + 1}"
        self.steps.append(Step(key, tuple(names), tuple(sorted(depends)), taken_work, now, end))
        return end
