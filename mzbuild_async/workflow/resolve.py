"""One resolution of a command's flags, the settings file and the environment.

The command line parses argv into :class:`Flags` (and ``pipeline`` also into
:class:`~.shape.PipelineFlags`) and calls these once: :func:`build_options` (what
enters a fingerprint), :func:`resolve_settings` (registries, the pool,
secrets: :class:`Settings`), :func:`run_options` (how ``acquire``,
``ensure``, ``build``, ``run``, ``plan`` and ``pipeline`` go about their work)
and :func:`~.shape.pipeline_shape`. Nothing else turns flags into settings, and
nothing below reads the environment or the file.

Heavy modules (the registry client, engines, signers) are imported only by the
readers that need them: ``spec`` and ``fingerprint`` resolve without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import UsageError
from ..model.options import (
    CONFIG_NAME,
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
from ..source.repository import Repository
from ..support import logs
from .defaults import Defaults, read_defaults

if TYPE_CHECKING:
    from ..attest.dsse import Signer
    from ..attest.keyless import BundleSigner
    from ..engine.endpoints import Endpoint
    from .config import ConfigFile
    from .options import RunOptions
    from .settings import RegistrySettings

__all__ = [  # (Repository: the commands hold it; they import it from here)
    "Flags",
    "Repository",
    "Settings",
    "build_options",
    "cache_dir_of",
    "open_repository",
    "published",
    "registry_settings",
    "resolve_settings",
    "run_options",
    "targets",
]

#: The commands that take several --arch (and gc several --profile and --sanitizer).
SEVERAL_ARCHES = ("promote", "publish-manifest", "gc")


class FromFlags:
    """Built from the parsed flags by name; a flag the command lacks keeps its default."""

    @classmethod
    def of(cls, given: Mapping[str, Any], **extra: Any) -> Self:
        """The fields of ``given`` (``vars(args)``) this class has, and ``extra``."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        values = {k: v for k, v in given.items() if k in names and v is not None}
        return cls(**{**values, **extra})


@dataclass(frozen=True)
class Flags(FromFlags):
    """A command's flags, by name, as given (absent or not given: the default)."""

    command: str = ""
    # The repository and what enters a fingerprint.
    repo: str | None = None
    strict: bool = False
    digest_cache: bool = True
    cache_dir: str | None = None
    profile: Sequence[str] = ()
    arch: Sequence[str] = ()
    coverage: bool | None = None
    sanitizer: Sequence[str] = ()
    image_registry: str | None = None
    image_prefix: str | None = None
    # Registries and lookups (``registries``: the command talks to them).
    registries: bool = False
    tiers: str | None = None
    retries: int | None = None
    deadline: float | None = None
    no_disk_cache: bool = False
    registry_limit: Sequence[str] = ()
    insecure_registry: Sequence[str] = ()
    mirror_registry: Sequence[str] = ()
    manifest_get_docker_hub: bool = False
    # The pool of engines (None: the command builds on none).
    engine: Sequence[str] | None = None
    transfer_registry: str | None = None
    # Runs.
    jobs: int | None = None
    transfers: int = DEFAULT_TRANSFERS
    fail_fast: bool = False
    force: bool = False
    cache_registry: str | None = None
    builder: str = "auto"
    trust_cache: bool = False
    attest: bool = False
    require_attested: bool = False
    keyless: bool = False
    attest_layout: str | None = None
    sign_key: str | None = None
    secret: Sequence[str] = ()
    ssh: Sequence[str] = ()
    # A CI step.
    only: Sequence[str] | None = None
    wait: float = 3600.0
    step: str | None = None


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
    #: ``[mirrors]``: where each registry's base images are pulled from instead.
    base_mirrors: Mapping[str, str] = field(default_factory=dict)

    @property
    def registries(self) -> RegistrySettings:
        """:attr:`registry`, for the commands that have one."""
        if self.registry is None:
            raise UsageError("this command talks to no registry")
        return self.registry


# ---------------------------------------------------------------- the repository


def cache_dir_of(flags: Flags, environ: Mapping[str, str]) -> Path:
    """``--cache-dir``, else ``$MZBUILD_ASYNC_CACHE_DIR``, else the user's cache."""
    from ..store.layout import default_cache_dir

    return Path(flags.cache_dir) if flags.cache_dir else default_cache_dir(environ)


async def open_repository(
    flags: Flags, environ: Mapping[str, str], cache_dir: Path
) -> tuple[Repository, Settings]:
    """The repository the flags name, read with their build options, and the
    command's settings: everything a command runs with, resolved once."""
    options = build_options(flags, environ)
    repo = await Repository.open(
        flags.repo,
        options,
        strict=flags.strict,
        cache_dir=cache_dir,
        digest_cache=flags.digest_cache
        and env_is_truthy(environ, "MZBUILD_ASYNC_DIGEST_CACHE", "1"),
    )
    defaults = read_defaults(repo.root)  # (the file is at the top level found)
    if defaults != Defaults():
        options = build_options(flags, environ, defaults)
        if options != repo.options:
            repo = repo.variant(options)
    settings = resolve_settings(flags, environ, repo.root, cache_dir, options)
    # (affected asks a registry only for --base auto outside a CI change: not said there)
    talks = flags.registries and flags.command != "affected"
    if talks and given_registry(flags, environ, defaults) is None:
        logs.warning(  # (after the settings: a bad one is the only line)
            f"no image registry is set: using {DEFAULT_IMAGE_REGISTRY} (Materialize's);"
            f" set [defaults] image-registry in {CONFIG_NAME}, {REGISTRY_VARIABLE} or"
            " --image-registry"
        )
    return repo, settings


def resolve_settings(
    flags: Flags,
    environ: Mapping[str, str],
    root: Path,
    cache_dir: Path,
    options: BuildOptions,
) -> Settings:
    """The command's settings: the file is read only by commands that talk to
    registries or engines (``spec`` and ``fingerprint`` start without it)."""
    if not flags.registries:
        return Settings(options, cache_dir, environ)
    from .config import load_config

    config = load_config(root)
    return Settings(
        options,
        cache_dir,
        environ,
        registry=registry_settings(flags, config, environ, options),
        engines=engine_settings(flags, config, environ) if flags.engine is not None else (),
        # (read only by the commands that build: check or affected needs no secret)
        secrets=secret_settings(flags, config, root, environ) if flags.engine is not None else {},
        base_mirrors=config.base_mirrors,
    )


def targets(
    repo: Repository,
    command: str,
    images: Sequence[str],
    *,
    every: bool = False,
    only: Sequence[str] | None = None,
) -> list[str]:
    """The images a command works on: those named, ``--all``'s, or a CI step's own
    (``--only``); a name the repository lacks is one line naming it."""
    if every and images:
        raise UsageError("give IMAGE names or --all, not both")
    if only and (images or every):
        raise UsageError(
            f"{command}: --only names a CI step's own images, which are its targets;"
            " give no IMAGE or --all with it"
        )
    if only:  # a CI step: its own images are the targets
        return [repo.image(item.partition("=")[0]).name for item in only]
    if every:
        return list(repo.images)
    if not images:
        raise UsageError(f"{command}: name at least one IMAGE, or pass --all")
    return [repo.image(name).name for name in images]


def published(repo: Repository, names: Sequence[str]) -> list[str]:
    """The images of ``names`` that are published (``publish: true``)."""
    return [n for n in names if repo.image(n).manifest.publish]


# ---------------------------------------------------------------- build options


#: The environment's image registry and prefix (between the flags and ``[defaults]``).
REGISTRY_VARIABLE, PREFIX_VARIABLE = "MZBUILD_ASYNC_IMAGE_REGISTRY", "MZBUILD_ASYNC_IMAGE_PREFIX"


def build_options(
    flags: Flags, environ: Mapping[str, str], defaults: Defaults | None = None
) -> BuildOptions:
    """Build options: each from its flag, else the environment (the original's
    variables, ``MZBUILD_ASYNC_IMAGE_*``), else ``[defaults]``, else the default."""
    defaults = defaults or Defaults()
    if flags.profile:
        profile = Profile.parse(_one(flags, "profile", flags.profile))
    elif env_is_truthy(environ, "CI_LTO"):
        profile = Profile.RELEASE
    else:
        profile = defaults.profile or Profile.OPTIMIZED
    if flags.sanitizer:
        sanitizer = Sanitizer.parse(_one(flags, "sanitizer", flags.sanitizer))
    else:
        sanitizer = Sanitizer.parse(environ.get("CI_SANITIZER") or "none", source="CI_SANITIZER")
    return BuildOptions(
        profile=profile,
        arch=_single_arch(flags, environ, defaults.arch),
        coverage=(
            flags.coverage
            if flags.coverage is not None
            else env_is_truthy(environ, "CI_COVERAGE_ENABLED")
        ),
        sanitizer=sanitizer,
        image_registry=given_registry(flags, environ, defaults) or DEFAULT_IMAGE_REGISTRY,
        image_prefix=next(
            (
                p
                for p in (flags.image_prefix, environ.get(PREFIX_VARIABLE), defaults.image_prefix)
                if p is not None
            ),
            DEFAULT_IMAGE_PREFIX,
        ),
    )


def given_registry(flags: Flags, environ: Mapping[str, str], defaults: Defaults) -> str | None:
    """The image registry the user set, if any (flag, environment, ``[defaults]``)."""
    return flags.image_registry or environ.get(REGISTRY_VARIABLE) or defaults.image_registry


def _one(flags: Flags, flag: str, values: Sequence[str]) -> str:
    """The one value of a flag only ``gc`` takes several times (its first, for gc)."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) > 1 and flags.command != "gc":
        raise UsageError(f"{flags.command}: give --{flag} once (only gc takes several)")
    return distinct[0]


def _single_arch(flags: Flags, environ: Mapping[str, str], default: Arch | None) -> Arch:
    if len(set(flags.arch)) > 1 and flags.command not in SEVERAL_ARCHES:
        raise UsageError(f"{flags.command}: give --arch once (only promote and gc take several)")
    if flags.arch:
        return Arch.parse(flags.arch[0])
    if default is not None and not environ.get("DOCKER_DEFAULT_PLATFORM", "").strip():
        return default
    return default_arch(environ)


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


# ---------------------------------------------------------------- registries, engines, secrets


def registry_settings(
    flags: Flags,
    file: ConfigFile,
    environ: Mapping[str, str],
    options: BuildOptions,
) -> RegistrySettings:
    """The file's registry and publication settings with the command's flags applied."""
    from ..model.publication import Destination
    from ..registry.client import DEFAULT_DEADLINE
    from ..registry.config import with_flags
    from ..support.retry import DEFAULT_RETRY
    from .settings import RegistrySettings

    config = with_flags(
        file.registry,
        list(flags.registry_limit),
        list(flags.insecure_registry),
        flags.manifest_get_docker_hub,  # (check's own flag)
    )
    tiers = parse_tiers(flags.tiers) if flags.tiers else (config.tiers or TIER_ORDER)
    if flags.no_disk_cache:
        tiers = tuple(t for t in tiers if t != "disk")
    attempts = flags.retries or config.retries
    retry = DEFAULT_RETRY if attempts is None else replace(DEFAULT_RETRY, attempts=attempts)
    return RegistrySettings(
        config=config,
        tiers=tiers,
        retry=retry,
        deadline=flags.deadline or config.deadline or DEFAULT_DEADLINE,
        environ=dict(environ),
        publication=file.publish.publication(
            Destination(options.image_registry, options.image_prefix), list(flags.mirror_registry)
        ),
    )


def engine_settings(
    flags: Flags, config: ConfigFile, environ: Mapping[str, str]
) -> tuple[Endpoint, ...]:
    """The pool: ``--engine`` flags, else the ``[[engine]]`` tables (none: the local engine)."""
    from ..engine.endpoints import parse_engine_flag, resolve_engines

    configs = [parse_engine_flag(flag) for flag in flags.engine or ()] or list(config.engines)
    return tuple(resolve_engines(configs, dict(environ)))


def secret_settings(
    flags: Flags, config: ConfigFile, root: Path, environ: Mapping[str, str]
) -> dict[str, bytes]:
    """The build secrets of the file's ``[[secret]]`` tables and ``--secret`` flags (the
    flags win), read now: a missing file or variable is one line before any work. Their
    values are masked wherever text leaves the process."""
    from ..model.secrets import load_secrets, parse_secret_flag

    values = load_secrets(
        [*config.secrets, *(parse_secret_flag(text) for text in flags.secret)], root, environ
    )
    for value in values.values():
        logs.register_secret(value.decode("utf-8", "replace").strip())
    return values


# ---------------------------------------------------------------- runs


def run_options(flags: Flags, settings: Settings) -> RunOptions:
    """A run's (or a plan's) options: its flags, the file's lookup settings, the pool,
    a CI step's images."""
    from ..model.secrets import parse_ssh_flag
    from .options import RunOptions

    jobs = flags.jobs if flags.jobs is not None else default_jobs()
    if jobs < 1:
        raise UsageError(f"--jobs must be at least 1, not {jobs}")
    if flags.transfers < 1:
        raise UsageError(f"--transfers must be at least 1, not {flags.transfers}")
    registry = settings.registries
    return RunOptions(
        tiers=registry.tiers,
        trust_cache=flags.trust_cache or registry.config.trust_cache,
        jobs=jobs,
        transfers=flags.transfers,
        fail_fast=flags.fail_fast,
        force=flags.force,
        cache_registry=flags.cache_registry,
        builder="auto" if flags.builder == "engine" else flags.builder,
        engines=settings.engines,
        slots=flags.jobs,
        transfer_registry=flags.transfer_registry,
        environ=settings.environ,
        mirrors=registry.publication_for(settings.options).mirrors,
        attest=any(
            (
                flags.attest,
                flags.sign_key,
                flags.require_attested,
                flags.keyless,
                flags.attest_layout,
            )
        ),
        attest_layout=flags.attest_layout or "oci",
        require_attested=flags.require_attested,
        keyless=keyless_signer(flags, settings.environ),
        signers=signers(flags),
        secrets=settings.secrets,
        base_mirrors=settings.base_mirrors,
        ssh=dict(parse_ssh_flag(text, settings.environ) for text in flags.ssh),
        **_step(flags, settings.environ),
    )


def _step(flags: Flags, environ: Mapping[str, str]) -> dict[str, Any]:
    """``--only``/``--wait``/``--step`` as RunOptions fields (a CI step), if given."""
    if flags.only is None:
        return {}
    expected: dict[str, str] = {}
    for item in flags.only:
        name, _, fingerprint = item.partition("=")
        if not name:
            raise UsageError(f"--only {item!r}: give IMAGE or IMAGE=FINGERPRINT")
        expected[name] = fingerprint
    from ..ci import pipeline_run

    return {
        "only": expected,
        "wait": flags.wait,
        "step": flags.step,
        "pipeline_run": pipeline_run(environ),
    }


def keyless_signer(flags: Flags, environ: Mapping[str, str]) -> BundleSigner | None:
    """The sigstore signer ``--keyless`` asks for (checked now: one line before any work)."""
    if not flags.keyless:
        return None
    from ..attest.keyless import keyless_signer as signer

    return signer(environ)


def signers(flags: Flags) -> tuple[Signer, ...]:
    """The keys ``--sign-key`` names (read now: a bad key is one line before any work)."""
    if flags.sign_key is None:
        return ()
    from ..attest.dsse import KeySigner

    return (KeySigner.load(flags.sign_key),)
