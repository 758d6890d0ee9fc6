"""Where a message points: the ``path:line[:column]: `` a manifest error or warning
starts with (:func:`located`), so a CI system can show it on that file's line.

How a system shows it (GitHub Actions' ``::error file=...``, Azure Pipelines'
``##vso[task.logissue ...]``) is the system's: :meth:`CiSystem.annotation
<mzbuild_async.ci.protocol.CiSystem.annotation>`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_LOCATION = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<rest>.+)$", re.S
)

#: Makes the log line that annotates a message of a kind (``error``, ``warning``):
#: ``(kind, message) -> line`` (None: the CI system shows no such thing).
Annotator = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Annotation:
    """A problem to show in a CI system's UI, on a file's line where it has one."""

    #: ``error`` or ``warning``.
    kind: str
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    title: str | None = None


@dataclass(frozen=True)
class Location:
    """Where a message points, and the message without it."""

    file: str
    line: int
    col: int | None
    message: str


def located(message: str) -> Location | None:
    """The location ``message`` starts with (``a/mzbuild.yml:3:5: ...``), if any."""
    match = _LOCATION.match(message)
    if match is None:
        return None
    col = match.group("col")
    return Location(
        match.group("file"), int(match.group("line")), int(col) if col else None, match["rest"]
    )
