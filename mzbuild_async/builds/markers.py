"""Failure markers: how a CI step tells the steps awaiting its images that it failed.

A step that could not build one of its own images stores an empty OCI image
index at the image's tag plus ``.failed`` (``NAME:mzbuild-FP.failed``), with
the step, the error and the time in its annotations. A step awaiting that
image looks for the marker between its ``HEAD``s and stops at once, naming
the image and the step, instead of waiting out ``--wait``. A marker older
than the awaiting run is ignored (a re-run may fix it), and the image's own
tag always wins over a marker.

A marker is a claim by another machine, so it is believed only within
bounds: one dated more than :data:`MAX_CLOCK_SKEW` seconds in the future
(an agent whose clock runs ahead, or a forged one) is ignored, with a
warning; and where both the marker and the awaiting step know their
pipeline run (:func:`~mzbuild_async.ci.pipeline_run`: Buildkite's build, GitHub's
run and attempt, GitLab's pipeline, or ``MZBUILD_ASYNC_RUN_ID``), a marker of another
run is ignored.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import anyio

from ..errors import MzbuildError, shorten
from ..model.status import Status
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..registry.writer import OCI_INDEX, RegistryWriter
from ..support import logs
from ..support.deadline import deadline
from ..support.documents import parse_json

#: The annotation keys of a marker.
STEP, ERROR, AT = "io.mzbuild.step", "io.mzbuild.error", "io.mzbuild.failed-at"
RUN = "io.mzbuild.pipeline-run"

#: Seconds a marker may be dated ahead of this machine's clock and still count.
MAX_CLOCK_SKEW = 300.0


def marker_of(spec: str) -> str:
    """The reference of ``spec``'s failure marker."""
    return f"{spec}.failed"


async def mark_failed(
    writer: RegistryWriter, spec: str, step: str, error: str, run: str = ""
) -> None:
    """Store the failure marker of ``spec`` (raises TransferError if the registry refuses)."""
    # Anyone who can pull can read a marker: no credential goes into it.
    notes = {STEP: step, ERROR: logs.redact_text(error)[:2000], AT: f"{time.time():.3f}"}
    if run:
        notes[RUN] = run
    body = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "annotations": notes},
        sort_keys=True,
    ).encode()
    await writer.put_manifest(parse_reference(marker_of(spec)), OCI_INDEX, body)


async def failure_of(
    writer: RegistryWriter,
    spec: str,
    since: float,
    *,
    run: str = "",
    now: Callable[[], float] = time.time,
) -> str | None:
    """``step: error`` of a marker stored at or after ``since`` (UNIX time), else None.

    A marker that cannot be read or makes no sense counts as none; so does one
    dated past ``now() +`` :data:`MAX_CLOCK_SKEW`, and one of another pipeline
    run than ``run`` (when both name theirs).
    """
    try:
        document = await writer.manifest(parse_reference(marker_of(spec)))
    except MzbuildError:
        return None
    if document is None:
        return None
    try:
        notes = parse_json(document.body).get("annotations", {})
        at = float(notes.get(AT, "nan"))
        step, error = str(notes.get(STEP, "?")), str(notes.get(ERROR, ""))
        theirs = str(notes.get(RUN, ""))
    except (ValueError, TypeError, AttributeError):
        return None
    if not math.isfinite(at) or at < since:
        return None
    if run and theirs and run != theirs:
        return None
    if at > now() + MAX_CLOCK_SKEW:
        _warn_once(
            f"{marker_of(spec)}: a failure marker dated {at - now():.0f} s in the future"
            f" (by step {shorten(step)}); ignored: is that agent's clock wrong?"
        )
        return None
    return f"step {step}: {error}"


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    key = message.split(":", 1)[0]
    if key not in _warned:
        _warned.add(key)
        logs.warning(message)


@dataclass(frozen=True)
class Awaited:
    """How awaiting an image another CI step builds ended."""

    #: Seconds waited.
    seconds: float
    #: Why it will not come, as one line ("": it came).
    error: str = ""
    #: Whether ``--wait`` ran out (rather than the other step failing).
    ran_out: bool = False


async def await_published(
    client: RegistryClient,
    name: str,
    spec: str,
    *,
    wait: float,
    wait_until: float | None,
    unanswered: bool,
    since: float,
    run: str,
    clock: Callable[[], float],
) -> Awaited:
    """HEAD the image's tag with backoff until the registry has it, the step that
    builds it marked it failed (a marker of pipeline run ``run`` newer than ``since``),
    or ``--wait`` has passed in all, counted from the step's start (``wait_until`` on
    ``clock``; each request gets what is left, so ``--wait`` is a bound).
    ``unanswered``: its lookup got no answer."""
    ref = parse_reference(spec)
    start = clock()
    left = wait if wait_until is None else max(0.0, wait_until - start)
    pause = 0.5
    # Why the registry has not told so far ("" when it answered "absent").
    previous = "its lookup got no answer" if unanswered else ""
    unknown = previous
    with deadline(left), anyio.move_on_after(left):
        while True:
            # (a request the time runs out on is the registry's fault, not the step's)
            unknown = previous or "a request got no answer"
            probe = await client.lookup(ref)
            if probe.status is Status.PRESENT:
                return Awaited(clock() - start)
            previous = (probe.detail or "no answer") if probe.status is Status.UNKNOWN else ""
            failure = await failure_of(RegistryWriter(client), spec, since, run=run)
            unknown = previous
            if failure is not None:
                return Awaited(
                    clock() - start,
                    f"{name} will not come: the step that builds it failed ({failure})",
                )
            await anyio.sleep(pause)
            pause = min(pause * 2, 15.0)
    if unknown:
        why = (
            f"{name}: the registry did not tell within {wait:g} s whether it was"
            f" published ({unknown}); the registry, not the step, is at fault (--wait)"
        )
    else:
        why = (
            f"{name} was not published within {wait:g} s: the step that builds it"
            " failed or has not run (--wait)"
        )
    return Awaited(clock() - start, why, ran_out=True)
