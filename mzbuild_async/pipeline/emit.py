"""Writing a cut build as a Buildkite pipeline or a GitHub Actions workflow.

Each step runs ``ensure`` for its own images only (``--only NAME=FINGERPRINT``,
so a checkout on another commit stops with one line), with the options the
pipeline was made with, awaiting in the registry what other steps build.
Steps wait for the steps that build the parents they await; a concurrency
group keyed by a hash of the step's specs keeps two pipelines from building
the same images at once. Buildkite steps are made with Buildkite's own SDK
(``buildkite-sdk``: its pydantic models check every field as it is set);
GitHub Actions jobs are plain mappings (there is no maintained SDK for
them), both checked against the published schemas by the tests.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..model.options import BuildOptions
from .partition import Partition, Step

#: Exit statuses that mean the agent, not the build, failed (Buildkite: -1 is a
#: lost agent, 255 a failed connection or an agent that stopped).
INFRASTRUCTURE_EXIT_STATUSES = (-1, 255)


@dataclass(frozen=True)
class StepSettings:
    """What every step runs and where."""

    #: The command line that starts mzbuild-async on an agent.
    program: str = "mzbuild-async"
    #: Flags every step passes (registry, prefix, profile, arch, ...).
    flags: tuple[str, ...] = ()
    #: ``--wait`` of each step.
    wait: float = 3600.0
    #: Buildkite agent queue (the arch is appended: ``builder-x86_64``).
    queue: str = "builder"
    #: GitHub Actions runner labels.
    runs_on: tuple[str, ...] = ("ubuntu-latest",)
    #: The architecture the images are built for.
    arch: str = "x86_64"


def carried_flags(options: BuildOptions) -> tuple[str, ...]:
    """The options a step must be run with to fingerprint as the pipeline did."""
    flags = [
        "--image-registry",
        options.image_registry,
        "--profile",
        options.profile.value,
        "--arch",
        str(options.arch),
    ]
    if options.image_prefix:
        flags += ["--image-prefix", options.image_prefix]
    if options.coverage:
        flags.append("--coverage")
    if options.sanitizer.value != "none":
        flags += ["--sanitizer", options.sanitizer.value]
    return tuple(flags)


def step_command(step: Step, fingerprints: Mapping[str, str], settings: StepSettings) -> str:
    """The shell command of one step: ``ensure`` of its images only."""
    words = [*shlex.split(settings.program), "ensure", "--step", step.key, *settings.flags]
    words += ["--wait", f"{settings.wait:g}"]
    for name in step.images:
        fingerprint = fingerprints.get(name, "")
        words += ["--only", f"{name}={fingerprint}" if fingerprint else name]
    return shlex.join(words)


def concurrency_group(step: Step, specs: Mapping[str, str]) -> str:
    """A name shared by every pipeline's step that builds exactly these specs."""
    digest = hashlib.sha256("\n".join(sorted(specs[n] for n in step.images)).encode())
    return f"mzbuild-async/{digest.hexdigest()[:20]}"


def _label(step: Step) -> str:
    shown = ", ".join(step.images[:3]) + (
        f" +{len(step.images) - 3}" if len(step.images) > 3 else ""
    )
    return f":docker: {step.key}: {shown}"


def buildkite_pipeline(
    partition: Partition,
    specs: Mapping[str, str],
    fingerprints: Mapping[str, str],
    settings: StepSettings,
) -> dict[str, Any]:
    """The Buildkite pipeline (``steps: []`` when there is nothing to build)."""
    from buildkite_sdk.pipeline import Pipeline
    from buildkite_sdk.schema import AutomaticRetry, CommandStep, CommandStepRetry

    pipeline = Pipeline()
    for step in partition.steps:
        pipeline.add_step(
            CommandStep(
                key=step.key,
                label=_label(step),
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


def github_workflow(
    partition: Partition,
    specs: Mapping[str, str],
    fingerprints: Mapping[str, str],
    settings: StepSettings,
    *,
    jobs_only: bool = False,
) -> dict[str, Any]:
    """A reusable GitHub Actions workflow (``on: workflow_call``), or its ``jobs:``."""
    runs_on: str | Sequence[str] = (
        settings.runs_on[0] if len(settings.runs_on) == 1 else list(settings.runs_on)
    )
    jobs: dict[str, Any] = {}
    for step in partition.steps:
        job: dict[str, Any] = {"name": _label(step).removeprefix(":docker: "), "runs-on": runs_on}
        if step.depends_on:
            job["needs"] = list(step.depends_on)
        job["concurrency"] = {"group": concurrency_group(step, specs), "cancel-in-progress": False}
        job["steps"] = [
            {"uses": "actions/checkout@v4"},
            {"run": step_command(step, fingerprints, settings)},
        ]
        jobs[step.key] = job
    if not jobs:  # (a workflow needs a job; this one says there is nothing to do)
        jobs["nothing-to-build"] = {
            "runs-on": runs_on,
            "steps": [{"run": "echo 'mzbuild-async: every image is published; nothing to build'"}],
        }
    if jobs_only:
        return {"jobs": jobs}
    return {"name": "mzbuild-async builds", "on": {"workflow_call": {}}, "jobs": jobs}
