"""A CI step's part of a run: its images fingerprint as the pipeline expects, and
those it fails are marked failed in the registry for the steps awaiting them.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from ..builds.scheduler import Outcome
from ..errors import MzbuildError, UsageError
from ..model.spec import fingerprint_of
from ..registry.client import RegistryClient
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from ..support import logs
from .options import RunOptions


async def check_fingerprints(repo: Repository, options: RunOptions) -> None:
    """A CI step's images must fingerprint as the pipeline expects (same commit)."""
    if not options.only:
        return
    unknown = sorted(set(options.only) - set(repo.images))
    if unknown:
        raise UsageError(f"--only {unknown[0]}: no such image in {repo.root}")
    specs = await repo.specs(list(options.only))
    for name, expected in options.only.items():
        actual = fingerprint_of(specs[name])
        if expected and actual != expected:
            raise UsageError(
                f"image {name}: this checkout fingerprints it as {actual}, the pipeline expects"
                f" {expected}; the agents are on different commits (regenerate the pipeline)"
            )


async def mark_failures(
    client: RegistryClient,
    options: RunOptions,
    outcomes: Mapping[str, Outcome],
    specs: Mapping[str, str],
) -> None:
    """A CI step's own images that failed get a failure marker in the registry, so the
    steps awaiting them stop at once (best effort: a warning when it cannot)."""
    if not options.only:
        return
    writer = RegistryWriter(client)
    for name in options.only:
        outcome = outcomes.get(name)
        if outcome is None or outcome.action not in ("failed", "skipped"):
            continue
        with anyio.move_on_after(MARK_SECONDS) as scope:
            await _mark_failed(writer, name, specs[name], options, outcome)
        if scope.cancelled_caught:
            logs.warning(
                f"{name}: could not mark it failed for the steps awaiting it: no answer from"
                f" the registry in {MARK_SECONDS:g} s"
            )


#: Seconds a CI step's failure marker may take to write (best effort).
MARK_SECONDS = 10.0


async def _mark_failed(
    writer: RegistryWriter, name: str, spec: str, options: RunOptions, outcome: Outcome
) -> None:
    from ..builds.markers import mark_failed

    try:
        await mark_failed(writer, spec, options.step or "?", outcome.error, options.pipeline_run)
    except MzbuildError as exc:
        logs.warning(f"{name}: could not mark it failed for the steps awaiting it: {exc}")
