"""Buildkite: steps made with Buildkite's own SDK, ``---``/``+++`` log groups."""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TextIO

import anyio
import yaml

from ..model.steps import StepDecision
from ..pipeline.emit import INFRASTRUCTURE_EXIT_STATUSES, Job, prepare_commands
from ..support.annotate import Annotation
from .protocol import ChangeBase, Produced


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

    def change_base(self, environ: Mapping[str, str]) -> ChangeBase | None:
        """A pull request's build: its target branch (``BUILDKITE_PULL_REQUEST_BASE_BRANCH``;
        Buildkite sets ``BUILDKITE_PULL_REQUEST`` to ``false`` otherwise)."""
        branch = environ.get("BUILDKITE_PULL_REQUEST_BASE_BRANCH", "")
        if branch and environ.get("BUILDKITE_PULL_REQUEST", "false") != "false":
            return ChangeBase("branch", branch, "BUILDKITE_PULL_REQUEST_BASE_BRANCH")
        return None

    def build_url(self, environ: Mapping[str, str]) -> str:
        """``$BUILDKITE_BUILD_URL``."""
        return environ.get("BUILDKITE_BUILD_URL", "")

    def affected(self, decisions: Sequence[StepDecision]) -> str | None:
        """A pipeline of every step, the skipped ones with ``skip:`` and the reason
        (Buildkite shows it on the step; it takes 70 characters)."""
        steps: list[dict[str, Any]] = []
        for d in decisions:
            step: dict[str, Any] = {"label": d.step.label, "key": d.step.key}
            step["command"] = d.step.command or f"echo {json.dumps(d.step.key)}"
            if not d.run:
                step["skip"] = d.reason[:70]
            steps.append(step)
        return yaml.safe_dump({"steps": steps}, sort_keys=False)

    def annotation(self, note: Annotation) -> str | None:
        """None: Buildkite shows annotations per build, not per line (the run hands one over)."""
        return None

    def fold(self, out: TextIO, title: str, lines: Sequence[str], *, failed: bool) -> None:
        """A ``---`` group (``+++``: opened, for a failure)."""
        out.write(f"{'+++' if failed else '---'} {title}\n")
        out.writelines(f"{line}\n" for line in lines)

    def summary_path(self, environ: Mapping[str, str]) -> str | None:
        """None: Buildkite has annotations, not a summary file."""
        return None

    def output_files(self, environ: Mapping[str, str]) -> Mapping[str, str]:
        """Nothing: Buildkite takes meta-data and annotations through its agent."""
        return {}

    async def affected_outputs(
        self,
        environ: Mapping[str, str],
        out: TextIO,
        affected: Sequence[str],
        decisions: Sequence[StepDecision] | None,
    ) -> None:
        """With ``buildkite-agent`` on the PATH: ``meta-data set mzbuild:affected``
        (the images, space-separated) and, with steps, ``mzbuild:run`` (the keys of
        the steps to run)."""
        agent = _agent(environ)
        if agent is None:
            return
        await agent("meta-data", "set", "mzbuild:affected", " ".join(affected))
        if decisions is not None:
            keys = " ".join(d.step.key for d in decisions if d.run)
            await agent("meta-data", "set", "mzbuild:run", keys)

    async def hand_over(self, environ: Mapping[str, str], produced: Produced) -> None:
        """With ``buildkite-agent`` on the PATH: ``meta-data set mzbuild:IMAGE
        name@digest`` per image, and one annotation (context ``mzbuild-STEP``) listing
        them, failures in the error style."""
        run = _agent(environ)
        if run is None or not (produced.references or produced.failures):
            return
        for name, reference in produced.references.items():
            await run("meta-data", "set", f"mzbuild:{name}", reference)
        lines = [f"- `{name}`: `{ref}`" for name, ref in produced.references.items()]
        lines += [f"- **{name} failed**: {error}" for name, error in produced.failures.items()]
        title = "mzbuild-async" + (f" {produced.step}" if produced.step else "")
        style = "error" if produced.failures else "success"
        await run(
            "annotate",
            "--context",
            f"mzbuild-{produced.step or 'run'}",
            "--style",
            style,
            body=f"**{title}**\n\n" + "\n".join(lines) + "\n",
        )

    def pipeline(self, jobs: Sequence[Job], *, jobs_only: bool = False) -> dict[str, Any]:
        """The Buildkite pipeline (``steps: []`` when there is nothing to build); each
        job on its arch's queue (``--arch-runner``, else ``QUEUE-ARCH``)."""
        from buildkite_sdk.pipeline import Pipeline
        from buildkite_sdk.schema import AutomaticRetry, CommandStep, CommandStepRetry

        pipeline = Pipeline()
        for job in jobs:
            settings = job.settings
            pipeline.add_step(
                CommandStep(
                    key=job.key,
                    label=f":docker: {job.label}",
                    commands=[*prepare_commands(settings), job.command],
                    depends_on=list(job.depends_on) or None,
                    agents={"queue": settings.runner or f"{settings.queue}-{settings.arch}"},
                    concurrency_group=job.group or None,
                    concurrency=1 if job.group else None,
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


def _agent(environ: Mapping[str, str]) -> Callable[..., Awaitable[None]] | None:
    """``buildkite-agent ARGS`` (``body=``: its stdin), OSError with its last line
    when it fails; None when it is not on the PATH."""
    agent = shutil.which("buildkite-agent", path=environ.get("PATH"))
    if agent is None:
        return None

    async def run(*args: str, body: str | None = None) -> None:
        done = await anyio.run_process(
            [agent, *args],
            input=None if body is None else body.encode(),
            env=dict(environ),
            check=False,
        )
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise OSError(
                f"buildkite-agent {args[0]} exited {done.returncode}"
                f"{': ' + detail[-1] if detail else ''}"
            )

    return run
