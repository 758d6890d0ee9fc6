"""The decisions of a run kept up to date as lookup answers arrive, each answer
costing time in what it changes, not in the number of images.

:func:`~.decisions.decide` and :func:`~.decisions.settled_decisions` say from
scratch what a run needs and which decisions are final; a run of 10,000 images
that asked them again after every batch of answers spent more time deciding than
looking up. :class:`Decider` gives the same answers at every step (a property
test holds it to them) by following only what each new answer can change: the
image's own decision, the dependencies a build makes needed, the images below
what is still unanswered, and the builds waiting for what was just released.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet

from ..model.graph import Image
from .decisions import AWAITED, Decision, Found, Workflow, decide_one
from .scheduler import Action

__all__ = ["Decider", "decide_one"]


class Decider:
    """One run's decisions, updated with each batch of answers.

    ``images`` is the closure of the targets in dependency order; ``force``
    and ``only`` are :func:`~.decisions.decide`'s.
    """

    def __init__(
        self,
        workflow: Workflow,
        images: Sequence[Image],
        targets: Sequence[str],
        specs: Mapping[str, str],
        *,
        force: bool = False,
        only: AbstractSet[str] | None = None,
    ) -> None:
        self.workflow = workflow
        self.specs = specs
        self.only = only
        self.images = {image.name: image for image in images}
        #: Each image's place in dependency order.
        self.position = {image.name: i for i, image in enumerate(images)}
        self.dependents: dict[str, list[str]] = {name: [] for name in self.images}
        for image in images:
            for dep in image.dependencies:
                self.dependents[dep].append(image.name)
        self.wants_local: set[str] = set()
        self.wants_published: set[str] = set()
        self.forced: set[str] = set()
        for name in targets:
            if workflow is Workflow.ENSURE and self.images[name].manifest.publish:
                self.wants_published.add(name)
            else:
                self.wants_local.add(name)
            if workflow is Workflow.BUILD and force:
                self.forced.add(name)
        #: The decisions so far (in the order made; :meth:`ordered` sorts them).
        self.decisions: dict[str, Decision] = {}
        #: Needed images not answered yet.
        self.missing: set[str] = set()
        #: Images handed out as final.
        self.released: set[str] = set()
        #: Per image: how many missing images it is (or is below).
        self._under: dict[str, int] = {}
        self._closures: dict[str, tuple[str, ...]] = {}
        self._answered: set[str] = set()
        self._recheck: set[str] = set()
        self._update(dict.fromkeys(targets), {})

    def answer(self, found: Mapping[str, Found], names: Iterable[str]) -> list[str]:
        """``names`` were just added to ``found``: the images whose decision became
        final with them, dependencies first (each handed out once)."""
        self._update([n for n in names if n not in self._answered], found)
        return self._release(found)

    def ordered(self) -> dict[str, Decision]:
        """The decisions in dependency order, as :func:`~.decisions.decide` gives them."""
        return dict(sorted(self.decisions.items(), key=lambda item: self.position[item[0]]))

    def _update(self, names: Iterable[str], found: Mapping[str, Found]) -> None:
        work = list(names)
        while work:
            name = work.pop()
            if name not in self.wants_local and name not in self.wants_published:
                continue  # (answered before any build needed it)
            if name not in found:
                if name not in self.missing:
                    self.missing.add(name)
                    self._cover(name, 1)
                continue
            if name in self.missing:
                self.missing.discard(name)
                self._cover(name, -1)
            self._answered.add(name)
            decision = self._one(name, found[name])
            if self.decisions.get(name) == decision:
                continue
            self.decisions[name] = decision
            self._recheck.add(name)
            if decision.action is Action.BUILD:
                for dep in self.images[name].dependencies:
                    if dep not in self.wants_local:
                        self.wants_local.add(dep)
                        work.append(dep)

    def _one(self, name: str, state: Found) -> Decision:
        spec = self.specs[name]
        if name in self.forced:
            decision = Decision(name, spec, Action.BUILD, False, "rebuild forced (--force)")
        else:
            decision = decide_one(
                self.workflow,
                self.images[name],
                spec,
                state,
                local=name in self.wants_local,
                published=name in self.wants_published,
            )
        if self.only is not None and decision.action is Action.BUILD and name not in self.only:
            return Decision(name, spec, Action.PULL, False, AWAITED, decision.tier)
        return decision

    def _closure(self, name: str) -> tuple[str, ...]:
        """``name`` and every image below it."""
        closure = self._closures.get(name)
        if closure is None:
            seen = {name}
            stack = [name]
            while stack:
                for dep in self.images[stack.pop()].dependencies:
                    if dep not in seen:
                        seen.add(dep)
                        stack.append(dep)
            closure = self._closures[name] = tuple(seen)
        return closure

    def _cover(self, name: str, step: int) -> None:
        """Count a missing image over everything below it (``step`` 1), or no longer
        (-1: an image no longer below anything missing may now be final)."""
        for below in self._closure(name):
            count = self._under.get(below, 0) + step
            self._under[below] = count
            if not count:
                self._recheck.add(below)

    def _settled(self, name: str, found: Mapping[str, Found]) -> bool:
        decision = self.decisions.get(name)
        if decision is None:
            return False
        may_need_pull = decision.action is Action.NONE and not found[name].local
        return not may_need_pull or not self._under.get(name, 0)

    def _release(self, found: Mapping[str, Found]) -> list[str]:
        heap = [(self.position[n], n) for n in self._recheck if n not in self.released]
        self._recheck.clear()
        heapq.heapify(heap)
        final: list[str] = []
        while heap:
            _, name = heapq.heappop(heap)
            if name in self.released or not self._settled(name, found):
                continue
            decision = self.decisions[name]
            if decision.action is Action.BUILD and not all(
                self._settled(dep, found)
                and (self.decisions[dep].action is Action.NONE or dep in self.released)
                for dep in self.images[name].dependencies
            ):
                continue
            final.append(name)
            self.released.add(name)
            for dependent in self.dependents[name]:
                if dependent not in self.released and dependent in self.decisions:
                    heapq.heappush(heap, (self.position[dependent], dependent))
        return final
