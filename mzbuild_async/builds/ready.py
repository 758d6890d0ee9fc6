"""Which builds may start: what each job waits for, and the ready ones in order.

A job waits for the images of its ``after`` that are not there yet (pulled,
built, or there already); when the last arrives it may be queued. The queue
hands out the ready job with the longest remaining critical path first (ties
in the order they became ready).
"""

from __future__ import annotations

import heapq
from collections.abc import Container, Mapping, Sequence

from .jobs import Job, critical_paths, weight


class ReadyQueue:
    """The dependency counts of one run's jobs and the queue of those ready."""

    def __init__(self, jobs: Mapping[str, Job]) -> None:
        #: Every job of the run (shared with the scheduler: it grows as jobs join).
        self.jobs = jobs
        #: Per image: the jobs that wait for it.
        self.dependents: dict[str, list[str]] = {}
        #: Per job: how many of the images it waits for are not there yet.
        self.waiting: dict[str, int] = {}
        #: Per job: its remaining critical path (the queue's order).
        self.priority: dict[str, float] = {}
        #: Images there for their dependents.
        self.there: set[str] = set()
        self._heap: list[tuple[float, int, str]] = []
        self._queued: set[str] = set()
        self._sequence = 0

    def add(self, jobs: Sequence[Job]) -> None:
        """Jobs joining the run (already in :attr:`jobs`)."""
        for job in jobs:
            self.dependents[job.name] = []
        for job in jobs:
            for dep in job.after:
                self.dependents[dep].append(job.name)
            self.waiting[job.name] = sum(d not in self.there for d in job.after)
        self._lengthen(jobs)

    def _lengthen(self, jobs: Sequence[Job]) -> None:
        """The critical paths with ``jobs`` joined, in time for what they change: a new
        job waits only for jobs added before or with it, so its path is among the new
        jobs', and an older job's path grows only through the jobs that wait on it."""
        new = {job.name: job for job in jobs}
        self.priority.update(critical_paths(new))
        grown = [(dep, job.name) for job in jobs for dep in job.after if dep not in new]
        while grown:
            name, dependent = grown.pop()
            path = weight(self.jobs[name]) + self.priority[dependent]
            if path > self.priority[name]:
                self.priority[name] = path
                grown.extend((dep, name) for dep in self.jobs[name].after)

    def push(self, name: str) -> None:
        """Queue ``name`` (once: a job released twice is queued once)."""
        if name in self._queued:
            return
        self._queued.add(name)
        self._sequence += 1
        heapq.heappush(self._heap, (-self.priority[name], self._sequence, name))

    def drop(self, name: str) -> None:
        """``name`` left the queue without running: it may be queued again."""
        self._queued.discard(name)

    def __bool__(self) -> bool:
        return bool(self._heap)

    def pop(self) -> tuple[float, int, str]:
        """The first ready job's entry (give it back with :meth:`put_back`)."""
        return heapq.heappop(self._heap)

    def put_back(self, entries: Sequence[tuple[float, int, str]]) -> None:
        """Entries popped but not started, in their places again."""
        for entry in entries:
            heapq.heappush(self._heap, entry)

    def arrived(self, name: str) -> list[str] | None:
        """``name`` is there: the jobs that now wait for nothing (None: it was there
        already)."""
        if name in self.there:
            return None
        self.there.add(name)
        free: list[str] = []
        for dependent in self.dependents[name]:
            self.waiting[dependent] -= 1
            if self.waiting[dependent] == 0:
                free.append(dependent)
        return free

    def gone(self, names: Sequence[str], done: Container[str]) -> None:
        """``names`` are no longer there (lost with an engine, to be built again): their
        dependents not ``done`` wait for them again, and each of them waits for what of
        its own is not there."""
        self.there.difference_update(names)
        for name in names:
            for dependent in self.dependents[name]:
                if dependent not in done:
                    self.waiting[dependent] += 1
        for name in names:
            self.waiting[name] = sum(d not in self.there for d in self.jobs[name].after)
            self.drop(name)
