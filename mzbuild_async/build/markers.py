"""Failure markers: how a CI step tells the steps awaiting its images that it failed.

A step that could not build one of its own images stores an empty OCI image
index at the image's tag plus ``.failed`` (``NAME:mzbuild-FP.failed``), with
the step, the error and the time in its annotations. A step awaiting that
image looks for the marker between its ``HEAD``s and stops at once, naming
the image and the step, instead of waiting out ``--wait``. A marker older
than the awaiting run is ignored (a re-run may fix it), and the image's own
tag always wins over a marker.
"""

from __future__ import annotations

import json
import math
import time

from ..errors import MzbuildError
from ..registry.names import parse_reference
from ..registry.writer import RegistryWriter
from .multiarch import OCI_INDEX

#: The annotation keys of a marker.
STEP, ERROR, AT = "io.mzbuild.step", "io.mzbuild.error", "io.mzbuild.failed-at"


def marker_of(spec: str) -> str:
    """The reference of ``spec``'s failure marker."""
    return f"{spec}.failed"


async def mark_failed(writer: RegistryWriter, spec: str, step: str, error: str) -> None:
    """Store the failure marker of ``spec`` (raises TransferError if the registry refuses)."""
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [],
            "annotations": {STEP: step, ERROR: error[:2000], AT: f"{time.time():.3f}"},
        },
        sort_keys=True,
    ).encode()
    await writer.put_manifest(parse_reference(marker_of(spec)), OCI_INDEX, body)


async def failure_of(writer: RegistryWriter, spec: str, since: float) -> str | None:
    """``step: error`` of a marker stored at or after ``since`` (UNIX time), else None.

    A marker that cannot be read or makes no sense counts as none.
    """
    try:
        document = await writer.manifest(parse_reference(marker_of(spec)))
    except MzbuildError:
        return None
    if document is None:
        return None
    try:
        notes = json.loads(document.body).get("annotations", {})
        at = float(notes.get(AT, "nan"))
        step, error = str(notes.get(STEP, "?")), str(notes.get(ERROR, ""))
    except (ValueError, TypeError, AttributeError):
        return None
    if not math.isfinite(at) or at < since:
        return None
    return f"step {step}: {error}"
