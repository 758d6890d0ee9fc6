"""What every CI system's pipeline says of a cut build: each step's command.

Each step runs ``ensure`` for its own images only (``--only NAME=FINGERPRINT``,
so a checkout on another commit stops with one line), with the options the
pipeline was made with, awaiting in the registry what other steps build.
Steps wait for the steps that build the parents they await; a concurrency
group keyed by a hash of the step's specs keeps two pipelines from building
the same images at once. Each CI system writes these as its own pipeline
(:mod:`mzbuild_async.ci`); the tests check each against its published schema.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from ..model.options import BuildOptions
from .partition import Step

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
    #: GitLab runner tags (none: any runner).
    tags: tuple[str, ...] = ()
    #: Azure Pipelines agent demands (none: any agent of the pool).
    demands: tuple[str, ...] = ()
    #: The architecture the images are built for.
    arch: str = "x86_64"
    #: Flags the pipeline was given for its steps (``--attest``, ``--sign-key PEM``).
    extra: tuple[str, ...] = ()
    #: The pipeline run's trace: every step continues it (``TRACEPARENT``), "" none.
    traceparent: str = ""
    #: ``--otlp`` of every step ("": the agents' own OTEL_EXPORTER_OTLP_ENDPOINT).
    otlp: str = ""


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
    if settings.traceparent:  # one trace for the whole pipeline, whichever agent runs it
        words = ["env", f"TRACEPARENT={settings.traceparent}", *words]
    words += settings.extra
    if settings.otlp:
        words += ["--otlp", settings.otlp]
    words += ["--wait", f"{settings.wait:g}"]
    for name in step.images:
        fingerprint = fingerprints.get(name, "")
        words += ["--only", f"{name}={fingerprint}" if fingerprint else name]
    return shlex.join(words)


def concurrency_group(step: Step, specs: Mapping[str, str]) -> str:
    """A name shared by every pipeline's step that builds exactly these specs."""
    digest = hashlib.sha256("\n".join(sorted(specs[n] for n in step.images)).encode())
    return f"mzbuild-async/{digest.hexdigest()[:20]}"


def label(step: Step) -> str:
    """``build-3: app, lib, tool +2``: a step's key and its first images."""
    shown = ", ".join(step.images[:3]) + (
        f" +{len(step.images) - 3}" if len(step.images) > 3 else ""
    )
    return f"{step.key}: {shown}"
