"""GitHub Actions annotations: ``::error file=F,line=L,col=C,title=T::message``.

The runner turns these workflow commands, printed on stdout or stderr (we use
stderr: stdout may carry ``--json``), into annotations on the file and line of
the pull request. :func:`located` finds the
``path:line[:column]: `` a manifest error or warning starts with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_LOCATION = re.compile(
    r"^(?P<file>[^\s:][^:]*?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<rest>.+)$", re.S
)


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


def enabled(environ: Mapping[str, str]) -> bool:
    """Whether this runs as a GitHub Actions step."""
    return environ.get("GITHUB_ACTIONS") == "true"


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def command(
    kind: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """The workflow command line (``kind``: ``error``, ``warning``, ``notice``)."""
    properties = {"file": file, "line": line, "col": col, "title": title}
    given = ",".join(f"{k}={_property(str(v))}" for k, v in properties.items() if v is not None)
    return f"::{kind}{' ' + given if given else ''}::{_data(message)}"


def for_message(kind: str, message: str, title: str = "mzbuild-async") -> str:
    """The command for a message that may start with a location."""
    where = located(message)
    if where is None:
        return command(kind, message, title=title)
    return command(
        kind, where.message, file=where.file, line=where.line, col=where.col, title=title
    )
