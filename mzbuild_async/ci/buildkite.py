"""Buildkite: steps made with Buildkite's own SDK, ``---``/``+++`` log groups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ..pipeline.emit import (
    INFRASTRUCTURE_EXIT_STATUSES,
    StepSettings,
    concurrency_group,
    label,
    step_command,
)
from ..pipeline.partition import Partition


class Buildkite:
    """Buildkite (``BUILDKITE=true``)."""

    name = "buildkite"

    def detect(self, environ: Mapping[str, str]) -> bool:
        """Whether this runs as a Buildkite job."""
        return environ.get("BUILDKITE") == "true"

    def run_id(self, environ: Mapping[str, str]) -> str:
        """The build: its retried jobs share it."""
        build = environ.get("BUILDKITE_BUILD_ID", "")
        return f"buildkite:{build}" if build else ""

    def fold(self, out: TextIO, title: str, lines: Sequence[str], *, failed: bool) -> None:
        """A ``---`` group (``+++``: opened, for a failure)."""
        out.write(f"{'+++' if failed else '---'} {title}\n")
        out.writelines(f"{line}\n" for line in lines)

    def summary_path(self, environ: Mapping[str, str]) -> str | None:
        """None: Buildkite has annotations, not a summary file."""
        return None

    def pipeline(
        self,
        cut: Partition,
        specs: Mapping[str, str],
        fingerprints: Mapping[str, str],
        settings: StepSettings,
        *,
        jobs_only: bool = False,
    ) -> dict[str, Any]:
        """The Buildkite pipeline (``steps: []`` when there is nothing to build)."""
        from buildkite_sdk.pipeline import Pipeline
        from buildkite_sdk.schema import AutomaticRetry, CommandStep, CommandStepRetry

        pipeline = Pipeline()
        for step in cut.steps:
            pipeline.add_step(
                CommandStep(
                    key=step.key,
                    label=f":docker: {label(step)}",
                    command=step_command(step, fingerprints, settings),
                    depends_on=list(step.depends_on) or None,
                    agents={"queue": f"{settings.queue}-{settings.arch}"},
                    concurrency_group=concurrency_group(step, specs),
                    concurrency=1,
                    retry=CommandStepRetry(
                        automatic=[
                            AutomaticRetry(exit_status=status, limit=2)
                            for status in INFRASTRUCTURE_EXIT_STATUSES
                        ]
                    ),
                )
            )
        document: dict[str, Any] = pipeline.to_dict()
        return document
