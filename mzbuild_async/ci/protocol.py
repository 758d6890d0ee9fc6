"""What the tool needs of a CI system: one protocol, one module per system.

A system says whether the process runs in it (its environment), which pipeline
run a step belongs to (failure markers of other runs are ignored) and its web
page (provenance names it), how a problem shows on a file's line, how a log
folds a block of lines, which CI steps a change needs (``affected``, and how
later steps are told), where a
step summary goes, and how a cut build is written as its pipeline. A new system
is one module behind this protocol and one entry in :data:`~mzbuild_async.ci.SYSTEMS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from ..model.steps import StepDecision
from ..pipeline.emit import Job
from ..support.annotate import Annotation


@dataclass(frozen=True)
class Produced:
    """What a run produced, for the CI system to show and pass on."""

    #: Each image published, by name: its ``name@digest`` reference (the primary's).
    references: Mapping[str, str]
    #: Each image that failed, by name: its one-line error.
    failures: Mapping[str, str]
    #: The CI step the run was (``--step``), if any.
    step: str | None = None


@dataclass(frozen=True)
class ChangeBase:
    """What a CI job says its change is compared with: a commit, or a branch whose
    merge-base with the change is the base."""

    #: ``commit`` (a SHA, the base itself) or ``branch`` (a target branch's name).
    kind: str
    value: str
    #: Which variable said it (messages name it).
    source: str


class CiSystem(Protocol):
    """One CI system (see the module docstring)."""

    #: The name ``pipeline --format`` and messages use.
    name: str

    def detect(self, environ: Mapping[str, str]) -> bool:
        """Whether this process runs as a job of this system."""
        ...

    def run_id(self, environ: Mapping[str, str]) -> str:
        """The pipeline run this job belongs to ("" when it cannot tell)."""
        ...

    def build_url(self, environ: Mapping[str, str]) -> str:
        """The web page of the run this job belongs to ("" when it cannot tell)."""
        ...

    def annotation(self, note: Annotation) -> str | None:
        """The log line that shows ``note`` in the system's UI, on its file's line
        where it has one; None where the system shows no such thing."""
        ...

    def fold(self, out: TextIO, title: str, lines: Sequence[str], *, failed: bool) -> None:
        """Write ``lines`` as one folded block of the job's log, titled ``title``."""
        ...

    def summary_path(self, environ: Mapping[str, str]) -> str | None:
        """Where a Markdown summary of the run is appended (None: nowhere)."""
        ...

    def output_files(self, environ: Mapping[str, str]) -> Mapping[str, str]:
        """The files this system has the run append to (its step summary, its step
        outputs), by the variable naming each: checked before any work."""
        ...

    async def hand_over(self, environ: Mapping[str, str], produced: Produced) -> None:
        """Give the system what the run produced (step outputs, meta-data, an
        annotation), where it takes such things; OSError when it could not."""
        ...

    async def affected_outputs(
        self,
        environ: Mapping[str, str],
        out: TextIO,
        affected: Sequence[str],
        decisions: Sequence[StepDecision] | None,
    ) -> None:
        """Hand ``affected``'s answer to later steps where this system takes such
        values (step outputs, meta-data, output variables: logging commands go to
        ``out``); OSError when it could not."""
        ...

    def change_base(self, environ: Mapping[str, str]) -> ChangeBase | None:
        """``affected --base auto``: what this job's change (a pull or merge request, a
        merge queue's group) is compared with (None: the job says nothing of one)."""
        ...

    def affected(self, decisions: Sequence[StepDecision]) -> str | None:
        """``affected --format NAME``: the steps of a steps file to run and to skip, as
        this system takes them (None: it takes no such document)."""
        ...

    def pipeline(self, jobs: Sequence[Job], *, jobs_only: bool = False) -> dict[str, Any]:
        """``jobs`` (a cut build's steps, each arch's, and the index's) as this system's
        pipeline document (none: one that says there is nothing to build)."""
        ...
