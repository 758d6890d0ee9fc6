"""``pipeline``'s own flags, resolved: how the builds are cut into steps, what each runs.

Apart from :mod:`.resolve` (which every command loads) because only
``pipeline`` takes them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import UsageError
from .resolve import FromFlags

if TYPE_CHECKING:
    from .pipeline import PipelineShape


@dataclass(frozen=True)
class PipelineFlags(FromFlags):
    """``pipeline``'s own flags: how the builds are cut into steps, what each runs."""

    format: str = "buildkite"
    agents: int | None = None
    max_step_seconds: float | None = None
    startup: float = 30.0
    step_jobs: int = 4
    wait: float = 3600.0
    queue: str = "builder"
    runs_on: Sequence[str] = ()
    jobs_only: bool = False
    gitlab_tag: Sequence[str] = ()
    azure_demand: Sequence[str] = ()
    any_commit: bool = False
    program: str = "mzbuild-async"
    otlp: str | None = None
    attest: bool = False
    require_attested: bool = False
    sign_key: str | None = None
    install: str | None = None
    login: str | None = None
    keyless: bool = False
    attest_layout: str | None = None
    arch_runner: Sequence[str] = ()
    index_tag: str | None = None


#: Query parameters whose value is likely a secret.
_SECRET_QUERY = ("token", "key", "secret", "password", "passwd", "auth", "sig", "signature")


def step_otlp(url: str | None) -> str:
    """The ``--otlp`` URL every step is given, refused (one line, the secret not
    shown) when it carries credentials: the pipeline file holds it in clear, and
    every agent's log shows it."""
    if not url:
        return ""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    secret_query = [
        k for k, _ in parse_qsl(parts.query) if any(w in k.lower() for w in _SECRET_QUERY)
    ]
    if parts.username or parts.password or secret_query:
        where = "user:password@" if parts.username or parts.password else f"?{secret_query[0]}="
        shown = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"
        raise UsageError(
            f"pipeline --otlp {shown}...: the URL carries credentials ({where}), which every"
            " step would hold in clear in the pipeline file; give the URL without them and"
            " set OTEL_EXPORTER_OTLP_HEADERS (e.g. Authorization=Basic%20...) from a CI secret"
            " on the agents"
        )
    return url


def pipeline_shape(flags: PipelineFlags, environ: Mapping[str, str]) -> PipelineShape:
    """The ``pipeline`` flags (and the pipeline run's trace, for every step)."""
    from ..ci import pipeline_run
    from ..pipeline.emit import StepSettings
    from ..support.tracecontext import for_run
    from .pipeline import PipelineShape

    run = pipeline_run(environ)
    user, password = step_login(flags.login)
    extra = [
        f"--{name.replace('_', '-')}"
        for name in ("attest", "require_attested", "keyless")
        if getattr(flags, name)
    ]
    if flags.attest_layout:
        extra += ["--attest-layout", flags.attest_layout]
    if flags.sign_key:  # (the key's path on the agents, never its content)
        extra += ["--sign-key", flags.sign_key]
    return PipelineShape(
        format=flags.format,
        step=StepSettings(
            program=flags.program,
            wait=flags.wait,
            queue=flags.queue,
            runs_on=tuple(flags.runs_on or ["ubuntu-latest"]),
            tags=tuple(flags.gitlab_tag),
            demands=tuple(flags.azure_demand),
            extra=tuple(extra),
            traceparent=for_run(run).header() if run else "",
            otlp=step_otlp(flags.otlp),
            install=step_install(flags.install),
            login_user=user,
            login_password=password,
        ),
        agents=flags.agents,
        max_step_seconds=flags.max_step_seconds,
        startup=flags.startup,
        step_jobs=flags.step_jobs,
        any_commit=flags.any_commit,
        jobs_only=flags.jobs_only,
        arch_runners=arch_runners(flags.arch_runner),
        index_tag=flags.index_tag or "",
    )


def arch_runners(given: Sequence[str]) -> dict[str, str]:
    """``--arch-runner ARCH=RUNNER``s, by arch in the order given (an arch twice: the last)."""
    from ..model.options import Arch

    arches = [str(a) for a in Arch]
    runners: dict[str, str] = {}
    for flag in given:
        arch, sep, runner = flag.partition("=")
        if not sep or arch not in arches or not runner.strip():
            raise UsageError(
                f"pipeline --arch-runner {flag}: give ARCH=RUNNER with ARCH one of"
                f" {', '.join(arches)}, e.g. aarch64=ubuntu-24.04-arm"
            )
        runners[arch] = runner.strip()
    return runners


def step_install(flag: str | None) -> str:
    """What each step installs mzbuild-async with: ``--install CMD``, ``none`` (a
    prepared agent), else this version from the package index."""
    from ..support.version import VERSION

    if flag == "none":
        return ""
    return flag or f"python3 -m pip install --quiet mzbuild-async=={VERSION}"


#: A CI secret's or variable's name.
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def step_login(flag: str | None) -> tuple[str, str]:
    """``--login USER:PASSWORD``: the names of the CI secrets holding the registry's
    credentials (never their values); ("", ""): the CI system's own, where it has them."""
    if not flag:
        return "", ""
    user, sep, password = flag.partition(":")
    if not sep or not _NAME.match(user) or not _NAME.match(password):
        raise UsageError(
            f"pipeline --login {flag}: give USER:PASSWORD, the names of the CI secrets (or"
            " variables) holding the registry's user and password, e.g."
            " REGISTRY_USER:REGISTRY_TOKEN"
        )
    return user, password
