"""Each group of flags, and :func:`flags`: the parsed command line as the workflow takes it.

The flags are defined here (``add_build_arguments``, ``add_registry_arguments``,
``add_engine_arguments``, ``add_run_arguments``); what they mean is resolved
once, with the settings file and the environment, by :mod:`..workflow.resolve`,
whose :class:`~..workflow.resolve.Flags` names a field after each flag's ``dest``:
a flag cannot be added without the field it fills (``tests/test_cli.py`` checks).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..model.options import DEFAULT_TRANSFERS, default_jobs
from ..model.status import TIER_ORDER
from ..workflow.resolve import Flags
from .argtypes import positive_int, positive_seconds
from .steps import add_otlp_argument

if TYPE_CHECKING:
    from ..workflow.shape import PipelineFlags


def flags(args: argparse.Namespace) -> Flags:
    """The parsed command line as :class:`Flags` (the registry flags' presence says
    whether the command talks to registries)."""
    return Flags.of(vars(args), registries=hasattr(args, "tiers"))


def pipeline_flags(args: argparse.Namespace) -> PipelineFlags:
    """``pipeline``'s own flags."""
    from ..workflow.shape import PipelineFlags

    return PipelineFlags.of(vars(args))


def add_build_arguments(group: argparse._ArgumentGroup) -> None:
    """The options every command takes: the repository and what enters a fingerprint."""
    group.add_argument(
        "--repo", metavar="DIR", help="repository root (default: git top level of the cwd)"
    )
    group.add_argument(
        "--strict", action="store_true", help="treat unknown manifest keys as errors"
    )
    profile = group.add_mutually_exclusive_group()
    for name in ("dev", "release", "optimized"):
        profile.add_argument(
            f"--{name}",
            dest="profile",
            action="append_const",
            const=name,
            help=f"build Rust binaries with the {name} profile",
        )
    profile.add_argument(
        "--profile",
        action="append",
        metavar="NAME",
        help="profile by name (default: optimized, or release when CI_LTO is set)",
    )
    group.add_argument(
        "--arch",
        action="append",
        metavar="ARCH",
        help="x86_64 or aarch64 (default: this machine's; promote and gc take several)",
    )
    group.add_argument(
        "--coverage",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build with coverage (default: CI_COVERAGE_ENABLED)",
    )
    group.add_argument(
        "--sanitizer",
        action="append",
        metavar="NAME",
        help="Rust sanitizer (default: CI_SANITIZER or none; gc takes several)",
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache directory (default: $MZBUILD_ASYNC_CACHE_DIR or ~/.cache/mzbuild-async)",
    )
    group.add_argument(
        "--no-digest-cache",
        dest="digest_cache",
        action="store_false",
        help="hash every input file instead of trusting unchanged stats from earlier runs",
    )
    group.add_argument("--image-registry", metavar="REGISTRY", help="registry of image specs")
    group.add_argument("--image-prefix", metavar="PREFIX", help="prefix of image names")


def add_lookup_arguments(p: argparse.ArgumentParser) -> None:
    """How images are looked up: the same flags on every command that looks them up."""
    group = p.add_argument_group("lookups")
    group.add_argument(
        "--tiers",
        help=f"tiers to consult, in this order: {','.join(TIER_ORDER)}"
        " (default: [lookup] tiers of mzbuild-async.toml, else all)",
    )
    group.add_argument(
        "--retries",
        type=positive_int,
        metavar="N",
        help="attempts per request on transient failures (default 5)",
    )
    group.add_argument(
        "--deadline",
        type=positive_seconds,
        metavar="SECONDS",
        help="longest one lookup may take, retries included (default 90)",
    )
    group.add_argument(
        "--no-disk-cache", action="store_true", help="do not read or keep answers on disk"
    )


def add_registry_arguments(p: argparse.ArgumentParser) -> None:
    """Options of every command that talks to registries (the lookup flags among them)."""
    add_lookup_arguments(p)
    p.add_argument(
        "--registry-limit",
        action="append",
        default=[],
        metavar="HOST=CONC[,RATE[,BURST]]",
        help="limit requests to HOST (repeatable; also mzbuild-async.toml)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="speak plain HTTP to HOST (loopback hosts always are)",
    )
    p.add_argument(
        "--mirror-registry",
        action="append",
        default=[],
        metavar="REGISTRY",
        help="publish to this registry too, with the --image-prefix (repeatable;"
        " also [[publish]] tables of mzbuild-async.toml); an image is published when"
        " every registry has it",
    )


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The pool of engines builds are spread over."""
    p.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="URL",
        help="build on this Docker engine too: unix://, tcp:// (TLS from DOCKER_CERT_PATH),"
        " ssh://, or a Docker context name; repeatable, the first is the home engine"
        " (default: [[engine]] tables of mzbuild-async.toml, else the local engine)",
    )
    p.add_argument(
        "--transfer-registry",
        metavar="REF",
        help="where publish: false images travel between engines (default: they stay on one)",
    )


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that pull, build or push."""
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help=f"Docker builds at once (default: {default_jobs()} on this machine; with"
        " --engine: per engine, else each engine's CPU count)",
    )
    p.add_argument(
        "--transfers",
        type=int,
        default=DEFAULT_TRANSFERS,
        metavar="N",
        help=f"pulls and pushes at once per registry (default: {DEFAULT_TRANSFERS})",
    )
    p.add_argument(
        "--fail-fast", action="store_true", help="stop at the first failure (default: go on)"
    )
    add_otlp_argument(p)
    p.add_argument(
        "--progress",
        choices=("auto", "plain", "tty", "quiet", "rawjson"),
        help="how progress shows on stderr: auto (live on a terminal, lines otherwise),"
        " plain, tty, quiet, rawjson (an event per line) (default: BUILDKIT_PROGRESS, else"
        " auto)",
    )
    p.add_argument(
        "--cache-registry",
        metavar="REF",
        help="layer cache: build from REF/NAME:buildcache and push it back after builds",
    )
    p.add_argument(
        "--report", metavar="FILE", help="write the run as JSON (plan, results, lookups)"
    )
    p.add_argument(
        "--trace", metavar="FILE", help="write a Chrome trace-event JSON of the run (Perfetto)"
    )
    p.add_argument(
        "--timeline", metavar="FILE", help="write a self-contained HTML Gantt chart of the run"
    )
    p.add_argument(
        "--attest",
        action="store_true",
        help="ensure: attach a provenance statement (in-toto, SLSA v1) to every image pushed"
        " and every one found without one, as an OCI 1.1 artifact",
    )
    p.add_argument(
        "--keyless",
        action="store_true",
        help="ensure: also sign each statement through sigstore with the CI's OIDC token"
        " (SIGSTORE_ID_TOKEN; the sigstore extra; implies --attest)",
    )
    p.add_argument(
        "--attest-layout",
        choices=("oci", "cosign", "both"),
        help="ensure: where the signed statements go: OCI 1.1 artifacts (oci, the default),"
        " cosign's sha256-<hex>.att tag that cosign verify-attestation finds (cosign), or"
        " both (implies --attest)",
    )
    p.add_argument(
        "--require-attested",
        action="store_true",
        help="ensure: a found image whose attached provenance does not verify (with the"
        " --sign-key's public key) is attested again, never rebuilt (implies --attest)",
    )
    p.add_argument(
        "--sign-key",
        metavar="PEM",
        help="sign the statements with this key (ECDSA P-256 or Ed25519; implies --attest)",
    )
    p.add_argument(
        "--metadata-file",
        metavar="FILE",
        help="write each image's spec, digest, size, platform and name@digest per registry"
        " as JSON (schema: report/schemas/metadata.json)",
    )
    p.add_argument(
        "--trust-cache",
        action="store_true",
        help="ensure and CI steps: take the lookup cache's 'present' without asking the"
        " registry again (registries that never delete tags; also [lookup] trust-cache)",
    )
    p.add_argument(
        "--builder",
        choices=["auto", "buildkit", "classic", "buildx", "engine"],
        default="auto",
        help="auto (default): through the engine API with its BuildKit where it has one,"
        " else the classic builder; buildkit or classic to choose; buildx: the docker"
        " buildx CLI (its registry cache); engine: the same as auto",
    )
    p.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="id=ID,src=PATH|env=VAR",
        help="a build secret for RUN --mount=type=secret,id=ID: a file's content or a"
        " variable's value (repeatable; also [[secret]] tables); BuildKit only, never a"
        " fingerprint input",
    )
    p.add_argument(
        "--ssh",
        action="append",
        default=[],
        metavar="default|ID=SOCKET",
        help="an SSH agent for RUN --mount=type=ssh: default is $SSH_AUTH_SOCK's"
        " (repeatable); BuildKit only",
    )
    add_engine_arguments(p)
    add_registry_arguments(p)
