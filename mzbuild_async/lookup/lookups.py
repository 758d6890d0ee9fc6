"""The lookups: is this spec published? Tiers in order, all at once.

``Lookups.lookup_many`` answers for many specs concurrently: the local
tiers (memory, disk) first, then, at once, the daemon and (after one token
prefetch per registry host) the registry tiers for whatever is left. The
first definite answer in tier order wins (the daemon's "present" over the
registry's answer, which then stops); concurrent lookups of one spec share
one answer; ``unknown`` is never remembered.

With ``confirm`` (``ensure`` and CI steps, whose job is to guarantee
publication), a "present" from the disk tier is a hint, not an answer: the
registry is asked too (all at once, so about one round trip), and what it
says wins. An ``absent`` from the registry evicts the disk entry at once.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias

import anyio

from ..errors import UsageError
from ..model.status import TIER_ORDER, Probe, Status
from ..registry.client import RegistryClient
from ..registry.names import Reference, parse_reference
from ..support import logs
from ..support.deadline import deadline
from ..support.singleflight import SingleFlight
from .daemon import DaemonTier
from .disk import DiskTier
from .memory import MemoryTier
from .registry import ManifestTier, RegistryTier
from .tiers import Tier

CHEAP_TIERS = ("memory", "disk", "daemon")
#: The tiers asked before anything else: they only read this machine's files.
LOCAL_TIERS = ("memory", "disk")
#: A tier's answer and the tier's name.
Decided: TypeAlias = tuple[Probe, str]


@dataclass(frozen=True)
class Answer:
    """What the engine found out about one spec."""

    spec: str
    status: Status
    #: The tier that decided (None if no tier could).
    tier: str | None
    #: Wall time from the start of this spec's lookup to its answer.
    seconds: float
    detail: str = ""
    #: The manifest digest, when the deciding tier had one (a registry's ``HEAD``).
    digest: str = ""
    #: The manifest's size in bytes, when the deciding tier said (0: it did not).
    size: int = 0
    #: The manifest's media type, when the deciding tier said ("": it did not).
    media_type: str = ""


@dataclass(frozen=True)
class Span:
    """One tier's part in one lookup, for traces and statistics."""

    spec: str
    tier: str
    start: float
    end: float
    status: str


@dataclass(frozen=True)
class TierStatistics:
    """Latency of one tier over a run."""

    count: int
    p50: float
    p95: float
    max: float


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[index]


@dataclass
class Lookups:
    """Finds out, tier by tier, whether image specs exist."""

    client: RegistryClient
    tiers: Sequence[Tier]
    clock: Callable[[], float] = time.perf_counter
    spans: list[Span] = field(default_factory=list)
    #: Whether :meth:`aclose` closes ``client`` (whoever made it closes it).
    owns_client: bool = True
    #: Confirm the disk tier's "present" with the registry (see the module docstring).
    confirm: bool = False

    def __post_init__(self) -> None:
        self._flights: SingleFlight[str, Answer] = SingleFlight()
        self._origin = self.clock()

    @classmethod
    def create(
        cls,
        *,
        tiers: Iterable[str] = TIER_ORDER,
        client: RegistryClient | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        manifest_on_docker_hub: bool = False,
        owns_client: bool | None = None,
        confirm: bool = False,
        environ: Mapping[str, str] | None = None,
    ) -> Lookups:
        """An engine with the named tiers (``cache_dir`` is needed for ``disk``;
        ``environ`` says where the local engine is, for ``daemon``: ``DOCKER_HOST``,
        ``DOCKER_CONTEXT``; none: the default socket).

        The engine closes the registry client only if it owns it: when it
        made it (no ``client``), or when ``owns_client`` hands it over.
        """
        owns = client is None if owns_client is None else owns_client
        client = client or RegistryClient()
        chosen: list[Tier] = []
        for name in tiers:
            if name == "memory":
                chosen.append(MemoryTier())
            elif name == "disk":
                if cache_dir is None:
                    continue
                chosen.append(DiskTier(Path(cache_dir)))
            elif name == "daemon":
                chosen.append(DaemonTier.at(environ or {}))
            elif name == "registry":
                chosen.append(RegistryTier(client))
            elif name == "manifest":
                chosen.append(ManifestTier(client, allow_docker_hub=manifest_on_docker_hub))
            else:
                raise UsageError(f"unknown tier {name!r}")
        return cls(client=client, tiers=chosen, owns_client=owns, confirm=confirm)

    async def warm_up(self, hosts: Iterable[str]) -> None:
        """Prepare ahead of lookups: the hosts' auth challenges, the engine connection."""
        async with anyio.create_task_group() as tg:
            if self.tier("registry") or self.tier("manifest"):
                tg.start_soon(self.client.warm_up, hosts)
            daemon = self.tier("daemon")
            if isinstance(daemon, DaemonTier):
                tg.start_soon(daemon.warm_up)

    def tier(self, name: str) -> Tier | None:
        """The tier called ``name``, if this engine has it."""
        return next((t for t in self.tiers if t.name == name), None)

    async def _consult(self, spec: str, ref: Reference, names: Iterable[str]) -> Decided | None:
        """The first definite answer of the named tiers, else the last unknown one."""
        wanted = set(names)
        last: Decided | None = None
        for tier in self.tiers:
            if tier.name not in wanted:
                continue
            start = self.clock()
            probe = await tier.lookup(spec, ref)
            end = self.clock()
            status = "pass" if probe is None else str(probe.status)
            self.spans.append(
                Span(spec, tier.name, start - self._origin, end - self._origin, status)
            )
            if probe is None:
                continue
            last = (probe, tier.name)
            if probe.status is not Status.UNKNOWN:
                break
        return last

    async def _record(self, spec: str, answer: Answer) -> None:
        memory = self.tier("memory")
        if isinstance(memory, MemoryTier):
            memory.record(spec, answer.status, answer.digest, answer.size, answer.media_type)
        disk = self.tier("disk")
        if not isinstance(disk, DiskTier):
            return
        if answer.status is Status.ABSENT:
            await disk.forget(spec)  # deleted from the registry since it was seen
        elif answer.tier not in ("disk", "daemon"):
            # The disk tier keeps "published" across runs: a daemon hit is only local.
            await disk.record(spec, answer.status)

    async def forget(self, spec: str) -> None:
        """Drop every remembered answer for ``spec`` (memory and disk)."""
        memory = self.tier("memory")
        if isinstance(memory, MemoryTier):
            memory.forget(spec)
        disk = self.tier("disk")
        if isinstance(disk, DiskTier):
            await disk.forget(spec)

    def confirm_from_now(self) -> None:
        """Confirm the disk tier's answers with the registry from now on (a tag it
        vouched for was gone): "present" answers remembered so far are asked again."""
        self.confirm = True
        memory = self.tier("memory")
        if isinstance(memory, MemoryTier):
            memory.forget_present()

    async def found_absent(self, spec: str) -> None:
        """``spec`` is known absent for the rest of the run (a pull met "manifest
        unknown"): evicted from the disk tier, absent in the memory tier."""
        await self.forget(spec)
        memory = self.tier("memory")
        if isinstance(memory, MemoryTier):
            memory.record(spec, Status.ABSENT)

    async def lookup(self, spec: str) -> Answer:
        """The answer for one spec (through every tier)."""
        return (await self.lookup_many([spec]))[spec]

    async def lookup_many(
        self, specs: Iterable[str], on_answer: Callable[[Answer], None] | None = None
    ) -> dict[str, Answer]:
        """Answers for every spec, looked up concurrently.

        Each lookup has the client's deadline from here, for every tier,
        attempt and pause together: what is left when it is undecided is
        ``unknown``. ``on_answer`` hears each answer the moment it is known
        (a run acts on it without waiting for the others).
        """
        with deadline(self.client.deadline):
            return await self._lookup_many(specs, on_answer or (lambda _answer: None))

    async def _lookup_many(
        self, specs: Iterable[str], on_answer: Callable[[Answer], None]
    ) -> dict[str, Answer]:
        batch = _Batch(self, on_answer)
        return await batch.run(list(dict.fromkeys(specs)))

    def _with_hint(self, found: Decided | None, hint: Decided | None) -> Decided | None:
        """An unknown registry answer for a spec the disk tier vouched for says so."""
        if found is None or not _unconfirmed(hint) or found[0].status is not Status.UNKNOWN:
            return found
        assert hint is not None
        why = found[0].detail or "no answer"
        return (
            Probe(
                Status.UNKNOWN,
                f"the lookup cache says present ({hint[0].detail}), but the registry"
                f" could not confirm it: {why}",
            ),
            found[1],
        )

    def _answer(self, spec: str, decided: Decided | None, started: float) -> Answer:
        seconds = self.clock() - started
        if decided is None:
            return Answer(spec, Status.UNKNOWN, None, seconds, "no tier could answer")
        probe, tier = decided
        return Answer(
            spec,
            probe.status,
            tier,
            seconds,
            logs.redact_text(probe.detail),
            probe.digest,
            probe.size,
            probe.media_type,
        )

    def statistics(self) -> dict[str, TierStatistics]:
        """Per tier: how many lookups it took part in and their latencies."""
        by_tier: dict[str, list[float]] = {}
        for span in self.spans:
            by_tier.setdefault(span.tier, []).append(span.end - span.start)
        return {
            tier: TierStatistics(len(v), _percentile(v, 0.5), _percentile(v, 0.95), max(v))
            for tier, v in by_tier.items()
        }

    @property
    def requests(self) -> Mapping[str, int]:
        """HTTP requests actually sent, by host."""
        return dict(self.client.requests)

    async def flush(self) -> None:
        """Write what the disk tier recorded since it last wrote (shielded: a run
        cancelled while writing still keeps what it learnt)."""
        disk = self.tier("disk")
        if isinstance(disk, DiskTier):
            with anyio.CancelScope(shield=True):
                await disk.flush()

    async def aclose(self) -> None:
        """Write what is recorded; close the engine connection, and the registry client
        if this engine owns it."""
        await self.flush()
        daemon = self.tier("daemon")
        if isinstance(daemon, DaemonTier):
            await daemon.aclose()
        if self.owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> Lookups:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    def _undecided(self, decided: Decided | None) -> bool:
        """Whether the registry must be asked after the cheap tiers said ``decided``."""
        if decided is None or decided[0].status is Status.UNKNOWN:
            return True
        return self.confirm and _unconfirmed(decided)


class _Batch:
    """One :meth:`Lookups.lookup_many`: local tiers first, then, at once, the
    daemon and the registry for what is left. The daemon's "present" wins (it comes
    first in tier order) and stops the registry's lookup of that spec; otherwise the
    registry's answer stands, and no registry request waited for the daemon."""

    def __init__(self, engine: Lookups, on_answer: Callable[[Answer], None]) -> None:
        self.engine = engine
        self.on_answer = on_answer
        self.refs: dict[str, Reference] = {}
        self.answers: dict[str, Answer] = {}
        self.started: dict[str, float] = {}
        self.local: dict[str, Decided | None] = {}
        self.daemon: dict[str, anyio.Event] = {}
        self.scopes: dict[str, anyio.CancelScope] = {}

    async def run(self, wanted: list[str]) -> dict[str, Answer]:
        """Every spec's answer, each given to ``on_answer`` the moment it is known."""
        engine = self.engine
        for spec in wanted:
            try:
                self.refs[spec] = parse_reference(spec)
            except UsageError as exc:
                self.answers[spec] = Answer(spec, Status.UNKNOWN, None, 0.0, str(exc))
                self.on_answer(self.answers[spec])
        async with anyio.create_task_group() as tg:
            for spec in self.refs:
                tg.start_soon(self._local, spec)
        rest = [s for s in self.refs if engine._undecided(self.local[s])]
        self.daemon = {s: anyio.Event() for s in rest}
        self.scopes = {s: anyio.CancelScope() for s in rest}
        daemon = engine.tier("daemon")

        async def ask_daemon() -> None:
            if isinstance(daemon, DaemonTier):
                await daemon.prefetch(rest)
            for spec in rest:
                tg.start_soon(self._daemon, spec)

        try:
            async with anyio.create_task_group() as tg:
                if daemon is not None:
                    tg.start_soon(ask_daemon)
                else:
                    for spec in rest:
                        self.daemon[spec].set()
                if rest and engine.tier("registry") is not None:
                    await engine.client.prepare(self.refs[s] for s in rest)
                for spec in rest:
                    tg.start_soon(self._registry, spec)
        finally:
            if isinstance(daemon, DaemonTier):
                daemon.forget(rest)
            await engine.flush()
        return {spec: self.answers[spec] for spec in wanted}

    async def _settle(self, spec: str, answer: Answer) -> None:
        if spec in self.answers:
            return  # (the daemon said present first)
        self.answers[spec] = answer
        await self.engine._record(spec, answer)
        self.on_answer(answer)

    async def _local(self, spec: str) -> None:
        self.started[spec] = self.engine.clock()
        decided = self.local[spec] = await self.engine._consult(spec, self.refs[spec], LOCAL_TIERS)
        if not self.engine._undecided(decided):  # decided here: no need to wait for the rest
            await self._settle(spec, self.engine._answer(spec, decided, self.started[spec]))

    async def _daemon(self, spec: str) -> None:
        found = await self.engine._consult(spec, self.refs[spec], ("daemon",))
        if found is not None and found[0].status is Status.PRESENT:
            self.scopes[spec].cancel()
            await self._settle(spec, self.engine._answer(spec, found, self.started[spec]))
        self.daemon[spec].set()

    async def _registry(self, spec: str) -> None:
        engine = self.engine
        remote = [t for t in TIER_ORDER if t not in CHEAP_TIERS]

        async def ask() -> Answer:
            found = await engine._consult(spec, self.refs[spec], remote)
            found = engine._with_hint(found, self.local[spec])
            return engine._answer(spec, found or self.local[spec], self.started[spec])

        with self.scopes[spec]:
            answer = await engine._flights.do(spec, ask)
            await self.daemon[spec].wait()  # (its "present" would come first)
            await self._settle(spec, answer)


def _unconfirmed(decided: Decided | None) -> bool:
    """A "present" from the disk tier: seen in an earlier run, maybe deleted since."""
    return decided is not None and decided[1] == "disk" and decided[0].status is Status.PRESENT


#: The name :class:`Lookups` had before (kept for scripts written against it).
LookupEngine = Lookups
