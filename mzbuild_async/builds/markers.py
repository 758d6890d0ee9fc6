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

from ..errors import MzbuildError, shorten
from ..registry.names import parse_reference
from ..registry.writer import OCI_INDEX, RegistryWriter
from ..support import logs
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
