"""What every CI system's pipeline says of a cut build: each step's command.

Each step runs ``ensure`` for its own images only (``--only NAME=FINGERPRINT``,
so a checkout on another commit stops with one line), with the options the
pipeline was made with, awaiting in the registry what other steps build.
Steps wait for the steps that build the parents they await; a concurrency
group keyed by a hash of the step's specs keeps two pipelines from building
the same images at once. Each CI system writes these jobs (:class:`Job`) as its own pipeline
(:mod:`mzbuild_async.ci`); the tests check each against its published schema.
With a runner per architecture, each arch's cut is its own set of jobs (keys
prefixed with the arch) and a final job merges the arches into an index
(``promote``).
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

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
    #: GitLab runner tags (none: any runner).
    tags: tuple[str, ...] = ()
    #: Azure Pipelines agent demands (none: any agent of the pool).
    demands: tuple[str, ...] = ()
    #: The architecture the images are built for.
    arch: str = "x86_64"
    #: This arch's runner (``--arch-runner ARCH=RUNNER``): GitHub's ``runs-on``,
    #: Buildkite's queue, a GitLab runner tag, an Azure demand ("": the defaults).
    runner: str = ""
    #: Flags the pipeline was given for its steps (``--attest``, ``--sign-key PEM``).
    extra: tuple[str, ...] = ()
    #: The pipeline run's trace: every step continues it (``TRACEPARENT``), "" none.
    traceparent: str = ""
    #: ``--otlp`` of every step ("": the agents' own OTEL_EXPORTER_OTLP_ENDPOINT).
    otlp: str = ""
    #: What installs mzbuild-async on the agent before each step ("": it is there).
    install: str = ""
    #: The registry hosts each step logs in to (the primary first, then the mirrors).
    registries: tuple[str, ...] = ()
    #: The CI secrets (or variables) with the registry user and password, by name
    #: ("": the system's own, where it has them: GitHub's token for ghcr.io, GitLab's
    #: job registry credentials; else no login step).
    login_user: str = ""
    login_password: str = ""


def prepare_commands(settings: StepSettings, own: tuple[str, str, str] | None = None) -> list[str]:
    """The shell lines a step runs before ``ensure``: the install, and a ``docker login``
    to each registry with the ``--login`` variables, else (``own``: a registry host and
    the variables with its credentials) the CI system's own where the host is its."""
    lines = [settings.install] if settings.install else []
    for host in settings.registries:
        if settings.login_user:
            lines.append(login_command(host, settings.login_user, settings.login_password))
        elif own is not None and host == own[0]:
            lines.append(login_command(host, own[1], own[2]))
    return lines


def login_command(host: str, user: str, password: str) -> str:
    """A shell command logging Docker in to ``host`` with the variables ``user`` and
    ``password`` (their values never in the pipeline file)."""
    return (
        f'printf %s "${password}" | docker login {shlex.quote(host)} -u "${user}" --password-stdin'
    )


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


@dataclass(frozen=True)
class Job:
    """One job of a pipeline, as every CI system writes it."""

    key: str
    label: str
    #: The shell command it runs (after ``prepare_commands`` of its settings).
    command: str
    depends_on: tuple[str, ...]
    #: Where it runs and what it prepares.
    settings: StepSettings
    #: Jobs of any pipeline with the same group never run at once ("": no such limit).
    group: str = ""


def build_jobs(
    cut: Partition,
    specs: Mapping[str, str],
    fingerprints: Mapping[str, str],
    settings: StepSettings,
    prefix: str = "",
) -> list[Job]:
    """Each step of ``cut`` as a job; ``prefix`` before its key (one cut per arch)."""
    jobs = []
    for step in cut.steps:
        keyed = replace(
            step,
            key=prefix + step.key,
            depends_on=tuple(prefix + d for d in step.depends_on),
        )
        jobs.append(
            Job(
                keyed.key,
                label(keyed),
                step_command(keyed, fingerprints, settings),
                keyed.depends_on,
                settings,
                concurrency_group(step, specs),
            )
        )
    return jobs


#: The key of the job that merges the arches into an index.
INDEX_JOB = "index"


def index_job(
    tag: str,
    targets: Sequence[str],
    arches: Sequence[str],
    settings: StepSettings,
    after: Sequence[Job],
) -> Job:
    """The final job: ``promote`` writes ``tag`` of each target as an index of its
    ``arches`` images, once every build job is done (``settings``: a build job's
    flags, whose ``--arch`` it replaces by all of them)."""
    flags = list(settings.flags)
    while "--arch" in flags:
        at = flags.index("--arch")
        del flags[at : at + 2]
    words = [*shlex.split(settings.program), "promote", *flags]
    for arch in arches:
        words += ["--arch", arch]
    words += [tag, *targets]
    return Job(
        INDEX_JOB,
        f"index: {tag} ({', '.join(arches)})",
        shlex.join(words),
        tuple(job.key for job in after),
        settings,
    )
