"""``check``: look the targets up in every tier and say where each answer came from.

The registry's first round trip and the daemon tier's set-up overlap
fingerprinting, which is local work; the lookups join the warm-up's
requests in flight, so the time it takes counts against their deadline.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..errors import UsageError, single_error
from ..lookup.lookups import Answer, Lookups, Span, TierStatistics
from ..model.status import Status
from ..registry.names import parse_reference
from ..source.repository import Repository
from .settings import RegistrySettings


@dataclass(frozen=True)
class CheckResult:
    """Each target's answer, and what the lookups cost."""

    #: Target name to spec, in the order asked.
    specs: Mapping[str, str]
    #: Spec to answer.
    answers: Mapping[str, Answer]
    tiers: tuple[str, ...]
    #: Requests sent and 429s received, per registry host.
    requests: Mapping[str, int]
    throttled: Mapping[str, int]
    statistics: Mapping[str, TierStatistics]
    spans: Sequence[Span]
    #: The whole command, and the lookups alone (after the fingerprints).
    seconds: float
    lookup_seconds: float

    def answer(self, name: str) -> Answer:
        """The answer for target ``name``."""
        return self.answers[self.specs[name]]

    @property
    def definite(self) -> bool:
        """Whether every answer is present or absent (none unknown)."""
        return all(a.status is not Status.UNKNOWN for a in self.answers.values())


async def check(
    repo: Repository, targets: Sequence[str], *, cache_dir: Path, settings: RegistrySettings
) -> CheckResult:
    """Fingerprint ``targets`` and look each one up; the registry hosts' challenges
    are saved for the next run."""
    async with settings.session(cache_dir) as client:
        engine = Lookups.create(
            tiers=settings.tiers,
            client=client,
            cache_dir=cache_dir,
            manifest_on_docker_hub=settings.config.manifest_on_docker_hub,
            environ=settings.environ,
        )
        try:
            hosts = [parse_reference(f"{repo.options.image_registry}/probe:probe").api_host]
        except UsageError:
            hosts = []  # every spec is then unknown, with the reason
        started = time.perf_counter()
        try:
            with single_error():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(engine.warm_up, hosts)
                    specs = await repo.specs(list(targets))
                    fingerprinted = time.perf_counter()
                    names = {name: specs[name] for name in targets}
                    answers = await engine.lookup_many(names.values())
                    tg.cancel_scope.cancel()
        finally:
            await engine.aclose()
        ended = time.perf_counter()
        return CheckResult(
            specs=names,
            answers=answers,
            tiers=settings.tiers,
            requests=dict(engine.requests),
            throttled=dict(client.throttled),
            statistics=engine.statistics(),
            spans=tuple(engine.spans),
            seconds=ended - started,
            lookup_seconds=ended - fingerprinted,
        )
