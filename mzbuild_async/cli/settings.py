"""Each group of flags beside the settings it fills, and :class:`Settings`, built once.

``run_command`` builds one :class:`Settings` per command from argv, the
settings file (:mod:`..workflow.config`, read once) and the environment it
was given, and passes it down: nothing below the command line reads the
environment or the file. A group's flags and its reader sit together here,
so a flag cannot be added without the setting it fills:

- build options (every command): :func:`add_build_arguments`, :func:`options_from_args`;
- registries and lookups (every command that looks images up or writes them):
  :func:`add_registry_arguments`, :func:`registry_settings`;
- the pool of engines: :func:`add_engine_arguments`, :func:`engine_settings`;
- runs (``acquire``, ``ensure``, ``build``, ``run``): :func:`add_run_arguments`,
  :func:`run_options`;
- CI steps: :func:`add_step_arguments`, :func:`step_options`;
- ``pipeline``: :func:`add_pipeline_arguments`, :func:`pipeline_shape`.

Heavy modules (the registry client, engines) are imported only by the
readers that need them: ``spec`` and ``fingerprint`` build their settings
without them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..model.options import (
    DEFAULT_IMAGE_PREFIX,
    DEFAULT_IMAGE_REGISTRY,
    DEFAULT_TRANSFERS,
    Arch,
    BuildOptions,
    Profile,
    Sanitizer,
    default_jobs,
    env_is_truthy,
)
from ..model.status import TIER_ORDER, parse_tiers
from ..support import logs
from .argtypes import positive_int, positive_seconds
from .steps import add_otlp_argument, step_options

if TYPE_CHECKING:
    from ..attest.dsse import Signer
    from ..attest.keyless import BundleSigner
    from ..engine.endpoints import Endpoint
    from ..workflow.config import ConfigFile
    from ..workflow.options import RunOptions
    from ..workflow.settings import RegistrySettings


@dataclass(frozen=True)
class Settings:
    """Everything one command runs with."""

    options: BuildOptions
    cache_dir: Path
    #: The environment the command was started with (credentials, Docker's and the
    #: CI system's variables): the only one anything below reads.
    environ: Mapping[str, str]
    #: How the command talks to registries (None: it talks to none).
    registry: RegistrySettings | None = None
    #: The pool's engines, home first (empty: the local engine alone).
    engines: tuple[Endpoint, ...] = ()
    #: Build secrets by id (``[[secret]]``, ``--secret``): read once, masked in output.
    secrets: Mapping[str, bytes] = field(default_factory=dict)

    @property
    def registries(self) -> RegistrySettings:
        """:attr:`registry`, for the commands that have one."""
        if self.registry is None:
            raise UsageError("this command talks to no registry")
        return self.registry


def build_settings(
    args: argparse.Namespace,
    environ: Mapping[str, str],
    root: Path,
    cache_dir: Path,
    options: BuildOptions,
) -> Settings:
    """The command's settings: the file is read only by commands that talk to
    registries or engines (``spec`` and ``fingerprint`` start without it)."""
    if not hasattr(args, "tiers"):  # (the registry flags: see add_registry_arguments)
        return Settings(options, cache_dir, environ)
    from ..workflow.config import load_config

    config = load_config(root)
    return Settings(
        options,
        cache_dir,
        environ,
        registry=registry_settings(args, config, environ, options),
        engines=engine_settings(args, config, environ) if hasattr(args, "engine") else (),
        secrets=secret_settings(args, config, root, environ),
    )


def ssh_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The SSH agents of ``--ssh`` flags, by id (checked now: one line before any work)."""
    from ..model.secrets import parse_ssh_flag

    return dict(parse_ssh_flag(text, environ) for text in getattr(args, "ssh", None) or ())


def secret_settings(
    args: argparse.Namespace, config: ConfigFile, root: Path, environ: Mapping[str, str]
) -> dict[str, bytes]:
    """The build secrets of the file's ``[[secret]]`` tables and ``--secret`` flags (the
    flags win), read now: a missing file or variable is one line before any work. Their
    values are masked wherever text leaves the process."""
    from ..model.secrets import load_secrets, parse_secret_flag

    flags = [parse_secret_flag(text) for text in getattr(args, "secret", None) or ()]
    values = load_secrets([*config.secrets, *flags], root, environ)
    for value in values.values():
        logs.register_secret(value.decode("utf-8", "replace").strip())
    return values


# ---------------------------------------------------------------- build options


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


def options_from_args(args: argparse.Namespace, environ: dict[str, str]) -> BuildOptions:
    """Build options from flags, falling back to the original's environment defaults."""
    if args.profile:
        profile = Profile.parse(_one(args, "profile", args.profile))
    elif env_is_truthy(environ, "CI_LTO"):
        profile = Profile.RELEASE
    else:
        profile = Profile.OPTIMIZED
    if args.sanitizer:
        sanitizer = Sanitizer.parse(_one(args, "sanitizer", args.sanitizer))
    else:
        sanitizer = Sanitizer.parse(environ.get("CI_SANITIZER") or "none", source="CI_SANITIZER")
    registry = args.image_registry or DEFAULT_IMAGE_REGISTRY
    prefix = DEFAULT_IMAGE_PREFIX if args.image_prefix is None else args.image_prefix
    return BuildOptions(
        profile=profile,
        arch=_single_arch(args, environ),
        coverage=(
            args.coverage
            if args.coverage is not None
            else env_is_truthy(environ, "CI_COVERAGE_ENABLED")
        ),
        sanitizer=sanitizer,
        image_registry=registry,
        image_prefix=prefix,
    )


#: The commands that take several --arch (and gc several --profile and --sanitizer).
SEVERAL_ARCHES = ("promote", "publish-manifest", "gc")


def _one(args: argparse.Namespace, flag: str, values: list[str]) -> str:
    """The one value of a flag only ``gc`` takes several times (its first, for gc)."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1 and args.command != "gc":
        raise UsageError(f"{args.command}: give --{flag} once (only gc takes several)")
    return distinct[0]


def _single_arch(args: argparse.Namespace, environ: Mapping[str, str]) -> Arch:
    arches: list[str] = args.arch or []
    if len(set(arches)) > 1 and args.command not in SEVERAL_ARCHES:
        raise UsageError(f"{args.command}: give --arch once (only promote and gc take several)")
    return Arch.parse(arches[0]) if arches else default_arch(environ)


def default_arch(environ: Mapping[str, str]) -> Arch:
    """``DOCKER_DEFAULT_PLATFORM``'s architecture (as ``docker build`` takes it), else
    this machine's."""
    platform = environ.get("DOCKER_DEFAULT_PLATFORM", "").strip()
    if not platform:
        return Arch.host()
    os_name, _, rest = platform.partition("/")
    try:
        if os_name != "linux" or not rest:
            raise UsageError(platform)
        return Arch.parse(rest.split("/")[0])
    except UsageError:
        raise UsageError(
            f"DOCKER_DEFAULT_PLATFORM={platform}: not a platform mzbuild images are built for;"
            " use linux/amd64 or linux/arm64, or pass --arch"
        ) from None


# ---------------------------------------------------------------- registries and lookups


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


def registry_settings(
    args: argparse.Namespace,
    file: ConfigFile,
    environ: Mapping[str, str],
    options: BuildOptions,
) -> RegistrySettings:
    """The file's registry and publication settings with the command's flags applied."""
    from ..model.publication import Destination
    from ..registry.client import DEFAULT_DEADLINE
    from ..registry.config import with_flags
    from ..support.retry import DEFAULT_RETRY
    from ..workflow.settings import RegistrySettings

    config = with_flags(
        file.registry,
        args.registry_limit,
        args.insecure_registry,
        getattr(args, "manifest_get_docker_hub", False),  # (check's own flag)
    )
    tiers = parse_tiers(args.tiers) if args.tiers else (config.tiers or TIER_ORDER)
    if args.no_disk_cache:
        tiers = tuple(t for t in tiers if t != "disk")
    attempts = args.retries or config.retries
    retry = DEFAULT_RETRY if attempts is None else replace(DEFAULT_RETRY, attempts=attempts)
    return RegistrySettings(
        config=config,
        tiers=tiers,
        retry=retry,
        deadline=args.deadline or config.deadline or DEFAULT_DEADLINE,
        environ=dict(environ),
        publication=file.publish.publication(
            Destination(options.image_registry, options.image_prefix), args.mirror_registry
        ),
    )


# ---------------------------------------------------------------- engines


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


def engine_settings(
    args: argparse.Namespace, config: ConfigFile, environ: Mapping[str, str]
) -> tuple[Endpoint, ...]:
    """The pool: ``--engine`` flags, else the ``[[engine]]`` tables (none: the local engine)."""
    from ..engine.endpoints import parse_engine_flag, resolve_engines

    configs = [parse_engine_flag(flag) for flag in args.engine] or list(config.engines)
    return tuple(resolve_engines(configs, dict(environ)))


# ---------------------------------------------------------------- runs


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


def run_options(args: argparse.Namespace, settings: Settings, *, force: bool = False) -> RunOptions:
    """A run's options: its flags, the file's lookup settings, the pool, a CI step's."""
    from ..workflow.options import RunOptions

    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    if args.transfers < 1:
        raise UsageError(f"--transfers must be at least 1, not {args.transfers}")
    registry = settings.registries
    return RunOptions(
        tiers=registry.tiers,
        trust_cache=args.trust_cache or registry.config.trust_cache,
        jobs=jobs,
        transfers=args.transfers,
        fail_fast=args.fail_fast,
        force=force,
        cache_registry=args.cache_registry,
        builder="auto" if args.builder == "engine" else args.builder,
        engines=settings.engines,
        slots=args.jobs,
        transfer_registry=args.transfer_registry,
        environ=settings.environ,
        mirrors=registry.publication_for(settings.options).mirrors,
        attest=args.attest or args.sign_key is not None or args.require_attested or args.keyless,
        require_attested=args.require_attested,
        keyless=keyless_from(args, settings.environ),
        signers=signers_from(args),
        secrets=settings.secrets,
        ssh=ssh_settings(args, settings.environ),
        **step_options(args, settings.environ),
    )


def keyless_from(args: argparse.Namespace, environ: Mapping[str, str]) -> BundleSigner | None:
    """The sigstore signer ``--keyless`` asks for (checked now: one line before any work)."""
    if not args.keyless:
        return None
    from ..attest.keyless import keyless_signer

    return keyless_signer(environ)


def signers_from(args: argparse.Namespace) -> tuple[Signer, ...]:
    """The keys ``--sign-key`` names (read now: a bad key is one line before any work)."""
    if args.sign_key is None:
        return ()
    from ..attest.dsse import KeySigner

    return (KeySigner.load(args.sign_key),)
