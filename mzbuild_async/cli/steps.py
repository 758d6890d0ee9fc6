"""The flags of CI steps and of ``pipeline`` (resolved by :mod:`..workflow.resolve`).

A CI step's own images (``--only``, ``--wait``, ``--step``), ``--otlp``, and how
``pipeline`` cuts the builds into steps and what each step runs.
"""

from __future__ import annotations

import argparse

from ..ci import NAMES as CI_NAMES
from .argtypes import non_negative_seconds, positive_int, positive_seconds

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
        "--arch-runner",
        action="append",
        metavar="ARCH=RUNNER",
        help="build ARCH's images on RUNNER (GitHub runs-on label, Buildkite queue, GitLab"
        " runner tag, Azure demand), e.g. aarch64=ubuntu-24.04-arm; repeatable: each arch"
        " its jobs, then one job writing --index-tag as an index of every arch",
    )
    p.add_argument(
        "--index-tag",
        metavar="TAG",
        help="with --arch-runner: the tag the final job (promote) points at the arches' images",
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
    p.add_argument(
        "--install",
        metavar="CMD|none",
        help="what each step installs mzbuild-async with (default: pip install of this"
        " version; none: the agents have it)",
    )
    p.add_argument(
        "--login",
        metavar="USER:PASSWORD",
        help="the names of the CI secrets with the registries' user and password: each step"
        " logs in with them (default: the CI system's own where it has them: GitHub's token"
        " for ghcr.io, GitLab's for registry.gitlab.com)",
    )
    p.add_argument(
        "--keyless",
        action="store_true",
        help="every step: ensure --keyless (GitHub: the jobs may ask for an OIDC token)",
    )
    p.add_argument(
        "--attest-layout",
        choices=("oci", "cosign", "both"),
        help="every step: ensure --attest-layout (where the statements go)",
    )
