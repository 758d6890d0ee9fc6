"""The ``check`` command: look images up and report where each answer came from."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import anyio

from ..errors import UsageError, single_error
from ..lookup.engine import Answer, LookupEngine, TierStatistics
from ..model.status import Status
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..report.trace import write_trace
from ..source.repository import Repository
from ..store.challenges import save_challenges
from .settings import RegistrySettings, registry_settings


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms"


def check_json(
    names: dict[str, str],
    answers: dict[str, Answer],
    engine: LookupEngine,
    seconds: float,
    lookups: float | None = None,
) -> dict[str, Any]:
    """The ``check --json`` document."""
    counts = {s.value: 0 for s in Status}
    for answer in answers.values():
        counts[answer.status.value] += 1
    return {
        "images": {
            name: {
                "spec": spec,
                "status": answers[spec].status.value,
                "tier": answers[spec].tier,
                "seconds": round(answers[spec].seconds, 6),
                "detail": answers[spec].detail,
            }
            for name, spec in names.items()
        },
        "requests": dict(engine.requests),
        "throttled": dict(engine.client.throttled),
        "tiers": {
            tier: {"count": s.count, "p50": s.p50, "p95": s.p95, "max": s.max}
            for tier, s in engine.statistics().items()
        },
        "totals": {
            **counts,
            "images": len(names),
            "seconds": round(seconds, 6),
            # (after the fingerprints: the lookups alone)
            "lookup_seconds": round(seconds if lookups is None else lookups, 6),
        },
    }


def check_text(
    names: dict[str, str],
    answers: dict[str, Answer],
    engine: LookupEngine,
    seconds: float,
    lookups: float | None = None,
) -> str:
    """The human-readable ``check`` report."""
    width = max([len(n) for n in names] + [5])
    lines = [f"{'IMAGE':<{width}}  {'STATUS':<8} {'TIER':<9} {'TIME':>9}  SPEC"]
    for name, spec in names.items():
        a = answers[spec]
        cached = f"  ({a.detail}, not confirmed)" if a.tier == "disk" else ""
        lines.append(
            f"{name:<{width}}  {a.status.value:<8} {a.tier or '-':<9} {_ms(a.seconds):>9}"
            f"  {spec}{cached}"
        )
    counts = {s: sum(1 for a in answers.values() if a.status is s) for s in Status}
    lines.append("")
    lines.append(
        f"{len(names)} images: {counts[Status.PRESENT]} present, {counts[Status.ABSENT]} absent,"
        f" {counts[Status.UNKNOWN]} unknown in {seconds:.2f} s"
        + ("" if lookups is None else f" (lookups {lookups:.2f} s after the fingerprints)")
    )
    requests = engine.requests
    if requests:
        sent = ", ".join(f"{host} {n}" for host, n in sorted(requests.items()))
        lines.append(f"requests sent: {sent}")
    throttled = engine.client.throttled
    if throttled:
        lines.append("429s received: " + ", ".join(f"{h} {n}" for h, n in throttled.items()))
    stats: dict[str, TierStatistics] = engine.statistics()
    if stats:
        lines.append(f"{'tier':<9} {'count':>5} {'p50':>9} {'p95':>9} {'max':>9}")
        for tier, s in stats.items():
            lines.append(f"{tier:<9} {s.count:>5} {_ms(s.p50):>9} {_ms(s.p95):>9} {_ms(s.max):>9}")
    for name, spec in names.items():
        if answers[spec].status is Status.UNKNOWN:
            lines.append(f"{name}: unknown: {answers[spec].detail}")
    return "\n".join(lines)


async def run_check(
    args: argparse.Namespace, repo: Repository, targets: list[str], cache_dir: Path
) -> int:
    """Run ``check``; exit status 0 if every answer is definite, 1 if any is unknown."""
    settings = registry_settings(args, repo.root)
    async with settings.client(cache_dir) as client:
        return await _check(args, repo, targets, cache_dir, settings, client)


async def _check(
    args: argparse.Namespace,
    repo: Repository,
    targets: list[str],
    cache_dir: Path,
    settings: RegistrySettings,
    client: RegistryClient,
) -> int:
    import time

    tiers = settings.tiers
    specs: dict[str, str] = {}

    async def fingerprint() -> None:
        specs.update(await repo.specs(targets))

    engine = LookupEngine.create(
        tiers=tiers,
        client=client,
        cache_dir=cache_dir,
        manifest_on_docker_hub=settings.config.manifest_on_docker_hub,
    )
    try:
        hosts = [parse_reference(f"{repo.options.image_registry}/probe:probe").api_host]
    except UsageError:
        hosts = []  # every spec is then unknown, with the reason, below
    started = time.perf_counter()
    try:
        # The registry's first round trip and the daemon tier's set-up overlap
        # fingerprinting, which is local work.
        # The lookups do not wait for the warm-up: they join its requests in
        # flight, so the time it takes counts against their deadline.
        with single_error():
            async with anyio.create_task_group() as tg:
                tg.start_soon(engine.warm_up, hosts)
                await fingerprint()
                fingerprinted = time.perf_counter()
                names = {name: specs[name] for name in targets}
                answers = await engine.lookup_many(names.values())
                tg.cancel_scope.cancel()
    finally:
        await engine.aclose()
    ended = time.perf_counter()
    seconds, lookups = ended - started, ended - fingerprinted
    save_challenges(cache_dir, client.challenges, client.schemes)
    if args.trace:
        write_trace(Path(args.trace), engine.spans, tiers)
    if args.json:
        sys.stdout.write(
            json.dumps(check_json(names, answers, engine, seconds, lookups), indent=2) + "\n"
        )
    else:
        sys.stdout.write(check_text(names, answers, engine, seconds, lookups) + "\n")
    return 1 if any(a.status is Status.UNKNOWN for a in answers.values()) else 0
