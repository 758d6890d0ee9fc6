"""The CI systems the tool knows: each one module behind :class:`~.protocol.CiSystem`.

:data:`SYSTEMS` lists them, by the name ``pipeline --format`` takes, with the
module and class that implement each (imported only when used: the parser
reads the names without loading any of them). The first system whose
:meth:`~.protocol.CiSystem.detect` says so is the one a process runs in.
``MZBUILD_ASYNC_RUN_ID`` names the pipeline run anywhere.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..support.annotate import Annotation, Annotator, located

if TYPE_CHECKING:
    from .protocol import CiSystem

#: Every CI system: name -> ``module:Class`` (a new system is one module and one line).
SYSTEMS: Mapping[str, str] = {
    "azure": "azure:AzurePipelines",
    "buildkite": "buildkite:Buildkite",
    "github": "github:GitHubActions",
    "gitlab": "gitlab:GitLabCi",
}
#: Their names (the parser's choices).
NAMES = tuple(SYSTEMS)
_LOADED: dict[str, CiSystem] = {}


def by_name(name: str) -> CiSystem:
    """The system called ``name`` (KeyError when there is none)."""
    if name not in _LOADED:
        module, _, cls = SYSTEMS[name].partition(":")
        system: CiSystem = getattr(importlib.import_module(f".{module}", __name__), cls)()
        _LOADED[name] = system
    return _LOADED[name]


def detect(environ: Mapping[str, str]) -> CiSystem | None:
    """The CI system this process runs in, if any."""
    return next((by_name(n) for n in SYSTEMS if by_name(n).detect(environ)), None)


def pipeline_run(environ: Mapping[str, str]) -> str:
    """The pipeline run a CI step belongs to ("" outside one): ``MZBUILD_ASYNC_RUN_ID``,
    else what the CI system says."""
    if environ.get("MZBUILD_ASYNC_RUN_ID"):
        return environ["MZBUILD_ASYNC_RUN_ID"]
    system = detect(environ)
    if system is not None:
        return system.run_id(environ)
    # (outside a detected job: any system's run id that is set)
    return next((run for n in SYSTEMS if (run := by_name(n).run_id(environ))), "")


def build_url(environ: Mapping[str, str]) -> str:
    """The web page of the CI run this process is a job of ("" outside one, or when
    the system does not say)."""
    system = detect(environ)
    if system is not None:
        return system.build_url(environ)
    # (outside a detected job: any system's page that is known)
    return next((url for n in SYSTEMS if (url := by_name(n).build_url(environ))), "")


def annotator(environ: Mapping[str, str], title: str = "mzbuild-async") -> Annotator | None:
    """What makes the log line that shows a message on its file's line (the location
    it starts with, if any) in the CI system this runs in; None outside one, or in one
    that has no such thing."""
    system = detect(environ)
    if system is None or system.annotation(Annotation("error", "")) is None:
        return None
    shows = system

    def annotate(kind: str, message: str) -> str | None:
        where = located(message)
        if where is None:
            return shows.annotation(Annotation(kind, message, title=title))
        return shows.annotation(
            Annotation(kind, where.message, where.file, where.line, where.col, title)
        )

    return annotate
