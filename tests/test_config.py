"""Build options, their environment defaults and the strings the hash uses."""

from __future__ import annotations

import dataclasses

import pytest

from mzbuild_async.errors import UsageError
from mzbuild_async.model.options import (
    DEFAULT_IMAGE_REGISTRY,
    Arch,
    BuildOptions,
    Profile,
    Sanitizer,
    env_is_truthy,
)


@pytest.mark.parametrize(
    ("environ", "profile", "coverage", "sanitizer"),
    [
        pytest.param({}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="empty"),
        pytest.param({"CI_LTO": "1"}, Profile.RELEASE, False, Sanitizer.NONE, id="lto"),
        pytest.param({"CI_LTO": "true"}, Profile.RELEASE, False, Sanitizer.NONE, id="lto-true"),
        pytest.param({"CI_LTO": "yes"}, Profile.RELEASE, False, Sanitizer.NONE, id="lto-yes"),
        pytest.param(
            {"CI_LTO": "anything"}, Profile.RELEASE, False, Sanitizer.NONE, id="lto-anything"
        ),
        pytest.param({"CI_LTO": "false"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="lto-false"),
        pytest.param({"CI_LTO": "0"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="lto-0"),
        pytest.param({"CI_LTO": "no"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="lto-no"),
        pytest.param({"CI_LTO": ""}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="lto-empty"),
        pytest.param(
            {"CI_COVERAGE_ENABLED": "yes"}, Profile.OPTIMIZED, True, Sanitizer.NONE, id="cov"
        ),
        pytest.param(
            {"CI_COVERAGE_ENABLED": "1"}, Profile.OPTIMIZED, True, Sanitizer.NONE, id="cov-1"
        ),
        pytest.param(
            {"CI_COVERAGE_ENABLED": "no"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="nocov"
        ),
        pytest.param(
            {"CI_COVERAGE_ENABLED": "false"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="cov-f"
        ),
        pytest.param(
            {"CI_COVERAGE_ENABLED": ""}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="cov-empty"
        ),
        pytest.param(
            {"CI_SANITIZER": "address"}, Profile.OPTIMIZED, False, Sanitizer.ADDRESS, id="asan"
        ),
        pytest.param(
            {"CI_SANITIZER": "thread"}, Profile.OPTIMIZED, False, Sanitizer.THREAD, id="tsan"
        ),
        pytest.param(
            {"CI_SANITIZER": "none"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="san-none"
        ),
        pytest.param(
            {"CI_SANITIZER": ""}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="san-empty"
        ),
        pytest.param(
            {"CI_LTO": "1", "CI_COVERAGE_ENABLED": "1", "CI_SANITIZER": "address"},
            Profile.RELEASE,
            True,
            Sanitizer.ADDRESS,
            id="all",
        ),
        pytest.param(
            {"MZ_DEV": "1", "CI_RELEASE": "1"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="other"
        ),
    ],
)
def test_environment_defaults(
    environ: dict[str, str], profile: Profile, coverage: bool, sanitizer: Sanitizer
) -> None:
    """The original's defaults: CI_LTO, CI_COVERAGE_ENABLED, CI_SANITIZER."""
    options = BuildOptions.from_environ(environ)
    assert (options.profile, options.coverage, options.sanitizer) == (profile, coverage, sanitizer)
    assert (options.image_registry, options.image_prefix) == (DEFAULT_IMAGE_REGISTRY, "")
    assert DEFAULT_IMAGE_REGISTRY == "ghcr.io/materializeinc/materialize"


@pytest.mark.parametrize(
    ("environ", "profile", "coverage"),
    [
        pytest.param({"CI_LTO": "False"}, Profile.RELEASE, False, id="lto-False"),
        pytest.param({"CI_LTO": "NO"}, Profile.RELEASE, False, id="lto-NO"),
        pytest.param({"CI_LTO": " 0"}, Profile.RELEASE, False, id="lto-space-0"),
        pytest.param({"CI_COVERAGE_ENABLED": "False"}, Profile.OPTIMIZED, True, id="cov-False"),
    ],
)
def test_truthiness_is_exact_like_the_original(
    environ: dict[str, str], profile: Profile, coverage: bool
) -> None:
    """Only exactly "", "0", "no" and "false" are falsy; other spellings are truthy."""
    options = BuildOptions.from_environ(environ)
    assert (options.profile, options.coverage) == (profile, coverage)


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        pytest.param(None, False, id="unset"),
        pytest.param("", False, id="empty"),
        pytest.param("0", False, id="zero"),
        pytest.param("no", False, id="no"),
        pytest.param("false", False, id="false"),
        pytest.param("1", True, id="one"),
        pytest.param("yes", True, id="yes"),
        pytest.param("true", True, id="true"),
        pytest.param("off", True, id="off-is-not-in-the-list"),
    ],
)
def test_env_is_truthy(value: str | None, truthy: bool) -> None:
    """Unset, "", "0", "no" and "false" are falsy; anything else is truthy."""
    environ = {} if value is None else {"X": value}
    assert env_is_truthy(environ, "X") is truthy


def test_env_is_truthy_default() -> None:
    """An unset variable takes the given default."""
    assert env_is_truthy({}, "X", "1") is True
    assert env_is_truthy({"X": "0"}, "X", "1") is False


def test_unknown_sanitizer_in_environment() -> None:
    """An unknown CI_SANITIZER is a UsageError naming the variable."""
    with pytest.raises(UsageError, match=r"^CI_SANITIZER: unknown sanitizer 'asan'"):
        BuildOptions.from_environ({"CI_SANITIZER": "asan"})


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        pytest.param(BuildOptions(Profile.OPTIMIZED), "d,e,i,i,m,o,p,t,z", id="optimized"),
        pytest.param(BuildOptions(Profile.RELEASE), "a,e,e,e,l,r,s", id="release"),
        pytest.param(BuildOptions(Profile.DEV), "", id="dev"),
        pytest.param(
            BuildOptions(Profile.RELEASE, coverage=True),
            "a,a,c,e,e,e,e,e,g,l,o,r,r,s,v",
            id="release-coverage",
        ),
        pytest.param(BuildOptions(Profile.DEV, coverage=True), "a,c,e,e,g,o,r,v", id="dev-cov"),
        pytest.param(
            BuildOptions(Profile.OPTIMIZED, sanitizer=Sanitizer.ADDRESS),
            "a,d,d,d,e,e,i,i,m,o,p,r,s,s,t,z",
            id="optimized-address",
        ),
        pytest.param(
            BuildOptions(Profile.DEV, sanitizer=Sanitizer.ADDRESS),
            "a,d,d,e,r,s,s",
            id="dev-address",
        ),
        pytest.param(
            BuildOptions(Profile.DEV, coverage=True, sanitizer=Sanitizer.CFI),
            "a,c,c,e,e,f,g,i,o,r,v",
            id="coverage-cfi",
        ),
        pytest.param(
            BuildOptions(Profile.DEV, sanitizer=Sanitizer.NONE),
            "",
            id="sanitizer-none-adds-nothing",
        ),
    ],
)
def test_cargo_extra(options: BuildOptions, extra: str) -> None:
    """The sorted single characters of profile, coverage and sanitizer, joined by commas."""
    assert options.cargo_extra() == extra


@pytest.mark.parametrize(
    ("options", "suffix"),
    [
        pytest.param(
            BuildOptions(arch=Arch.X86_64),
            "profile=Profile.OPTIMIZEDarch=x86_64coverage=Falsesanitizer=nonemirror=ghcr",
            id="defaults",
        ),
        pytest.param(
            BuildOptions(Profile.DEV, Arch.X86_64),
            "profile=Profile.DEVarch=x86_64coverage=Falsesanitizer=nonemirror=ghcr",
            id="dev",
        ),
        pytest.param(
            BuildOptions(Profile.RELEASE, Arch.AARCH64, coverage=True, sanitizer=Sanitizer.THREAD),
            "profile=Profile.RELEASEarch=aarch64coverage=Truesanitizer=threadmirror=ghcr",
            id="everything-set",
        ),
        pytest.param(
            BuildOptions(arch=Arch.AARCH64, sanitizer=Sanitizer.HWADDRESS),
            "profile=Profile.OPTIMIZEDarch=aarch64coverage=Falsesanitizer=hwaddressmirror=ghcr",
            id="hwaddress",
        ),
    ],
)
def test_fingerprint_suffix(options: BuildOptions, suffix: str) -> None:
    """The option string is the original's exact spelling, concatenated without separators."""
    assert options.fingerprint_suffix() == suffix


def test_fingerprint_suffix_ignores_the_registry() -> None:
    """Registry and prefix change the spec, never the fingerprint's option string."""
    a = BuildOptions(arch=Arch.X86_64)
    b = BuildOptions(arch=Arch.X86_64, image_registry="localhost:5000", image_prefix="x-")
    assert a.fingerprint_suffix() == b.fingerprint_suffix()


@pytest.mark.parametrize(
    ("registry", "prefix", "spec"),
    [
        pytest.param(
            DEFAULT_IMAGE_REGISTRY,
            "",
            "ghcr.io/materializeinc/materialize/base:mzbuild-ABC",
            id="default",
        ),
        pytest.param(
            "localhost:5000/acme", "ci-", "localhost:5000/acme/ci-base:mzbuild-ABC", id="prefix"
        ),
        pytest.param("docker.io", "", "docker.io/base:mzbuild-ABC", id="host-only"),
    ],
)
def test_spec(registry: str, prefix: str, spec: str) -> None:
    """The spec is registry/prefix+name:mzbuild-FINGERPRINT."""
    options = BuildOptions(arch=Arch.X86_64, image_registry=registry, image_prefix=prefix)
    assert options.spec("base", "ABC") == spec


@pytest.mark.parametrize(
    ("text", "arch"),
    [
        pytest.param("amd64", Arch.X86_64, id="amd64"),
        pytest.param("arm64", Arch.AARCH64, id="arm64"),
        pytest.param("x86_64", Arch.X86_64, id="x86_64"),
        pytest.param("aarch64", Arch.AARCH64, id="aarch64"),
        pytest.param("x86-64", Arch.X86_64, id="x86-64"),
        pytest.param("AMD64", Arch.X86_64, id="upper-case"),
    ],
)
def test_arch_aliases(text: str, arch: Arch) -> None:
    """Docker's architecture names are accepted besides the original's own."""
    assert Arch.parse(text) is arch


@pytest.mark.parametrize("text", ["i386", "", "arm"])
def test_unknown_arch(text: str) -> None:
    """An unknown architecture is a UsageError listing the choices."""
    with pytest.raises(UsageError, match="choose one of x86_64, aarch64"):
        Arch.parse(text)


def test_arch_and_profile_strings() -> None:
    """str() gives the spellings the hash uses: `x86_64`, `Profile.RELEASE`, `address`."""
    assert (str(Arch.X86_64), str(Arch.AARCH64)) == ("x86_64", "aarch64")
    assert [str(p) for p in Profile] == ["Profile.DEV", "Profile.RELEASE", "Profile.OPTIMIZED"]
    assert (str(Sanitizer.ADDRESS), str(Sanitizer.NONE)) == ("address", "none")


@pytest.mark.parametrize(
    ("text", "profile"),
    [("dev", Profile.DEV), ("release", Profile.RELEASE), ("Optimized", Profile.OPTIMIZED)],
)
def test_profile_parse(text: str, profile: Profile) -> None:
    """Profiles parse by name, case-insensitively."""
    assert Profile.parse(text) is profile


def test_unknown_profile_and_sanitizer() -> None:
    """Unknown names are UsageErrors listing the choices."""
    with pytest.raises(UsageError, match="unknown profile 'fast'; choose one of dev, release"):
        Profile.parse("fast")
    with pytest.raises(UsageError, match=r"^--sanitizer: unknown sanitizer 'ASAN'"):
        Sanitizer.parse("ASAN")


@pytest.mark.parametrize("registry", ["", "ghcr.io/acme/", " ghcr.io", "ghcr.io ", "ghcr.io/"])
def test_invalid_registry(registry: str) -> None:
    """A registry that would make a broken spec is refused."""
    with pytest.raises(UsageError, match="invalid image registry"):
        BuildOptions(arch=Arch.X86_64, image_registry=registry)


@pytest.mark.parametrize("prefix", ["a:b", "a@b", "a b", "\t"])
def test_invalid_prefix(prefix: str) -> None:
    """A prefix with a tag or digest separator or whitespace is refused."""
    with pytest.raises(UsageError, match="invalid image prefix"):
        BuildOptions(arch=Arch.X86_64, image_prefix=prefix)


def test_options_are_frozen() -> None:
    """Options are immutable values."""
    options = BuildOptions(arch=Arch.X86_64)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.profile = Profile.DEV  # type: ignore[misc]
