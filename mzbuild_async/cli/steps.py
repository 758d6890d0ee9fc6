"""The flags of CI steps and of ``pipeline``, beside their readers.

A CI step's own images (``--only``, ``--wait``, ``--step``), ``--otlp``, and how
``pipeline`` cuts the builds into steps and what each step runs. Split from
:mod:`.settings` (which imports the step readers from here), light like it.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..ci import NAMES as CI_NAMES
from ..errors import UsageError
from .argtypes import non_negative_seconds, positive_int, positive_seconds

if TYPE_CHECKING:
    from ..workflow.pipeline import PipelineShape


# ---------------------------------------------------------------- CI steps


def add_wait_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--wait SECONDS``: how long a CI step awaits images other steps build."""
    p.add_argument(
        "--wait",
        type=positive_seconds,
        default=3600.0,
        metavar="SECONDS",
        help=f"{what} (default: 3600)",
    )


def add_step_arguments(p: argparse.ArgumentParser) -> None:
    """A CI step's own images; what other steps build is awaited in the registry."""
    p.add_argument(
        "--only",
        action="append",
        metavar="IMAGE[=FINGERPRINT]",
        help="build only these images (a CI step; the targets when no IMAGE is named);"
        " others this run needs are awaited in the registry. With =FINGERPRINT, the"
        " checkout must fingerprint the image so (repeatable)",
    )
    add_wait_argument(p, "how long to await an image another step builds")
    p.add_argument("--step", metavar="KEY", help="the CI step this run is (in --json and --report)")


def step_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """``--only``/``--wait``/``--step`` as RunOptions fields (a CI step), if given."""
    only = getattr(args, "only", None)  # (ensure and plan take them)
    if only is None:
        return {}
    expected: dict[str, str] = {}
    for item in only:
        name, _, fingerprint = item.partition("=")
        if not name:
            raise UsageError(f"--only {item!r}: give IMAGE or IMAGE=FINGERPRINT")
        expected[name] = fingerprint
    from ..ci import pipeline_run

    return {
        "only": expected,
        "wait": args.wait,
        "step": args.step,
        "pipeline_run": pipeline_run(environ),
    }


# ---------------------------------------------------------------- pipeline


def add_otlp_argument(p: argparse.ArgumentParser) -> None:
    """``--otlp URL``: where the run's OpenTelemetry spans go."""
    p.add_argument(
        "--otlp",
        metavar="URL",
        help="export the run's spans over OTLP/HTTP to URL (…/v1/traces is appended;"
        " default: OTEL_EXPORTER_OTLP_ENDPOINT; unset: nothing is exported)",
    )


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """How ``pipeline`` cuts the builds into steps, and what each step runs."""
    add_otlp_argument(p)
    p.add_argument("--attest", action="store_true", help="every step: ensure --attest")
    p.add_argument(
        "--require-attested", action="store_true", help="every step: ensure --require-attested"
    )
    p.add_argument(
        "--sign-key",
        metavar="PEM",
        help="every step signs with the key at PEM on its agent (the path is carried)",
    )
    p.add_argument(
        "--format",
        choices=CI_NAMES,
        default="buildkite",
        help="the CI system whose pipeline to print (default: buildkite)",
    )
    p.add_argument(
        "--agents",
        type=positive_int,
        metavar="N",
        help="agents to spread the steps over (default: 4)",
    )
    p.add_argument(
        "--max-step-seconds",
        type=positive_seconds,
        metavar="S",
        help="estimated build seconds one step may take at most",
    )
    p.add_argument(
        "--startup",
        type=non_negative_seconds,
        default=30.0,
        metavar="S",
        help="seconds a step costs before its first build (default: 30)",
    )
    p.add_argument(
        "--step-jobs",
        type=positive_int,
        default=4,
        metavar="N",
        help="builds at once within a step (default: 4)",
    )
    add_wait_argument(p, "how long a step awaits images other steps build")
    p.add_argument("--queue", default="builder", help="Buildkite agent queue (arch appended)")
    p.add_argument(
        "--runs-on", action="append", metavar="LABEL", help="GitHub Actions runner labels"
    )
    p.add_argument(
        "--jobs-only", action="store_true", help="GitHub, Azure: only the jobs (to template in)"
    )
    p.add_argument(
        "--gitlab-tag", action="append", metavar="TAG", help="GitLab runner tags (repeatable)"
    )
    p.add_argument(
        "--azure-demand",
        action="append",
        metavar="DEMAND",
        help="Azure Pipelines agent demands (repeatable)",
    )
    p.add_argument(
        "--any-commit",
        action="store_true",
        help="a pipeline kept in the repository: steps for every image, no fingerprints",
    )
    p.add_argument(
        "--program",
        default="mzbuild-async",
        help="how the steps start mzbuild-async (default: mzbuild-async)",
    )


def step_attest_flags(args: argparse.Namespace) -> tuple[str, ...]:
    """``--attest``, ``--require-attested`` and ``--sign-key PEM`` for every step (the
    key's path on the agents, never its content)."""
    flags = [f"--{n.replace('_', '-')}" for n in ("attest", "require_attested") if getattr(args, n)]
    if args.sign_key:
        flags += ["--sign-key", args.sign_key]
    return tuple(flags)


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


def pipeline_shape(args: argparse.Namespace, environ: Mapping[str, str]) -> PipelineShape:
    """The ``pipeline`` flags (and the pipeline run's trace, for every step)."""
    from ..ci import pipeline_run
    from ..pipeline.emit import StepSettings
    from ..support.tracecontext import for_run
    from ..workflow.pipeline import PipelineShape

    run = pipeline_run(environ)

    return PipelineShape(
        format=args.format,
        step=StepSettings(
            program=args.program,
            wait=args.wait,
            queue=args.queue,
            runs_on=tuple(args.runs_on or ["ubuntu-latest"]),
            tags=tuple(args.gitlab_tag or ()),
            demands=tuple(args.azure_demand or ()),
            extra=step_attest_flags(args),
            traceparent=for_run(run).header() if run else "",
            otlp=step_otlp(args.otlp),
        ),
        agents=args.agents,
        max_step_seconds=args.max_step_seconds,
        startup=args.startup,
        step_jobs=args.step_jobs,
        any_commit=args.any_commit,
        jobs_only=args.jobs_only,
    )
