"""Build options as frozen values, with the original mzbuild's defaults.

The options that enter a fingerprint (profile, arch, coverage, sanitizer)
keep the exact spelling the original system hashes: ``Profile.OPTIMIZED``,
``x86_64``, ``False``, ``none``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import UsageError, shorten
from .spec import format_spec, repository_problem

DEFAULT_IMAGE_REGISTRY = "ghcr.io/materializeinc/materialize"
DEFAULT_IMAGE_PREFIX = ""
#: The original hashes its image mirror; ours is always the GHCR default.
MIRROR = "ghcr"
#: The settings file at the repository root (:mod:`..workflow.config` reads it).
CONFIG_NAME = "mzbuild-async.toml"


class Profile(enum.Enum):
    """The Cargo profile Rust binaries are built with."""

    DEV = "dev"
    RELEASE = "release"
    OPTIMIZED = "optimized"

    def __str__(self) -> str:
        return f"Profile.{self.name}"

    @classmethod
    def parse(cls, text: str) -> Profile:
        """The profile named ``text`` (``dev``, ``release``, ``optimized``)."""
        try:
            return cls(text.lower())
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise UsageError(f"unknown profile {text!r}; choose one of {choices}") from None


class Arch(enum.Enum):
    """A CPU architecture images are built for."""

    X86_64 = "x86_64"
    AARCH64 = "aarch64"

    def __str__(self) -> str:
        return self.value

    @property
    def go(self) -> str:
        """The name Go, Docker and OCI platforms use (``amd64``, ``arm64``)."""
        return {"x86_64": "amd64", "aarch64": "arm64"}[self.value]

    @property
    def platform(self) -> str:
        """The OCI platform of a Linux image for this arch (``linux/amd64``)."""
        return f"linux/{self.go}"

    @classmethod
    def parse(cls, text: str) -> Arch:
        """The architecture named ``text``, accepting Docker's aliases too."""
        aliases = {"amd64": "x86_64", "arm64": "aarch64", "x86-64": "x86_64"}
        try:
            return cls(aliases.get(text.lower(), text.lower()))
        except ValueError:
            choices = ", ".join(a.value for a in cls)
            raise UsageError(f"unknown architecture {text!r}; choose one of {choices}") from None

    @classmethod
    def host(cls) -> Arch:
        """The architecture of this machine."""
        machine = os.uname().machine
        try:
            return cls.parse(machine)
        except UsageError:
            raise UsageError(
                f"this machine's architecture {machine!r} is not supported; pass --arch"
            ) from None


class Sanitizer(enum.Enum):
    """A Rust sanitizer, as the original's ``Sanitizer`` enum names them."""

    ADDRESS = "address"
    HWADDRESS = "hwaddress"
    CFI = "cfi"
    THREAD = "thread"
    LEAK = "leak"
    UNDEFINED = "undefined"
    MEMORY = "memory"
    NONE = "none"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, text: str, *, source: str = "--sanitizer") -> Sanitizer:
        """The sanitizer named ``text``; ``source`` names where it came from."""
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise UsageError(
                f"{source}: unknown sanitizer {text!r}; choose one of {choices}"
            ) from None


def env_is_truthy(environ: Mapping[str, str], name: str, default: str = "0") -> bool:
    """Whether ``name`` (or ``default``) is anything but exactly "", "0", "no" or "false".

    Compared exactly, as the original's ``ui.env_is_truthy`` does: ``False``
    or ``NO`` are truthy there, so they must be here, or specs would differ.
    """
    return environ.get(name, default) not in ("", "0", "no", "false")


@dataclass(frozen=True)
class BuildOptions:
    """The options that decide fingerprints and image specs.

    Build a default from the environment with :meth:`from_environ`, as the
    original ``mzimage`` does (``CI_LTO``, ``CI_COVERAGE_ENABLED``,
    ``CI_SANITIZER``).
    """

    profile: Profile = Profile.OPTIMIZED
    arch: Arch = field(default_factory=Arch.host)
    coverage: bool = False
    sanitizer: Sanitizer = Sanitizer.NONE
    image_registry: str = DEFAULT_IMAGE_REGISTRY
    image_prefix: str = DEFAULT_IMAGE_PREFIX

    def __post_init__(self) -> None:
        registry = self.image_registry
        if not registry or registry != registry.strip() or registry.endswith("/"):
            raise UsageError(
                f"invalid image registry {registry!r}; give a host with an optional path,"
                " e.g. ghcr.io/acme, without a trailing slash"
            )
        if any(c.isspace() or c in ":@" for c in self.image_prefix):
            raise UsageError(f"invalid image prefix {self.image_prefix!r}")
        problem = repository_problem(registry, "")
        if problem is not None:
            raise UsageError(f"invalid image registry {shorten(registry)!r}: {problem}")
        problem = repository_problem(registry, self.image_prefix)
        if problem is not None:
            raise UsageError(f"invalid image prefix {shorten(self.image_prefix)!r}: {problem}")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> BuildOptions:
        """The original's defaults, read from ``environ``."""
        profile = Profile.RELEASE if env_is_truthy(environ, "CI_LTO") else Profile.OPTIMIZED
        sanitizer = Sanitizer.parse(
            environ.get("CI_SANITIZER", "none") or "none", source="CI_SANITIZER"
        )
        return cls(
            profile=profile,
            coverage=env_is_truthy(environ, "CI_COVERAGE_ENABLED"),
            sanitizer=sanitizer,
        )

    def fingerprint_suffix(self) -> str:
        """The option string the original feeds into every image's own hash."""
        return (
            f"profile={self.profile}arch={self.arch}coverage={self.coverage}"
            f"sanitizer={self.sanitizer}mirror={MIRROR}"
        )

    def cargo_extra(self) -> str:
        """The ``extra`` string of a ``cargo-build`` pre-image under these options."""
        chars: list[str] = []
        if self.profile is Profile.RELEASE:
            chars += "release"
        elif self.profile is Profile.OPTIMIZED:
            chars += "optimized"
        if self.coverage:
            chars += "coverage"
        if self.sanitizer is not Sanitizer.NONE:
            chars += self.sanitizer.value
        return ",".join(sorted(chars))

    def spec(self, name: str, fingerprint: str) -> str:
        """The image spec (tag) of image ``name`` with ``fingerprint``."""
        return format_spec(self.image_registry, self.image_prefix + name, fingerprint)


#: Pulls and pushes at once per registry host (``--transfers``).
DEFAULT_TRANSFERS = 4
#: Commits ``explain --against SPEC`` searches (``--search``).
DEFAULT_SEARCH = 20


def default_jobs() -> int:
    """Docker builds at once: one per core, at least 2 (builds wait on I/O too)."""
    return max(2, os.cpu_count() or 2)
