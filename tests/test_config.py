"""Build options, their environment defaults and the strings the hash uses."""

from __future__ import annotations

import pytest

from mzbuild_async.config import Arch, BuildOptions, Profile, Sanitizer
from mzbuild_async.errors import UsageError


@pytest.mark.parametrize(
    ("environ", "profile", "coverage", "sanitizer"),
    [
        pytest.param({}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="empty"),
        pytest.param({"CI_LTO": "1"}, Profile.RELEASE, False, Sanitizer.NONE, id="lto"),
        pytest.param({"CI_LTO": "false"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="lto-false"),
        pytest.param({"CI_LTO": "0"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="lto-0"),
        pytest.param(
            {"CI_COVERAGE_ENABLED": "yes"}, Profile.OPTIMIZED, True, Sanitizer.NONE, id="cov"
        ),
        pytest.param(
            {"CI_COVERAGE_ENABLED": "no"}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="nocov"
        ),
        pytest.param(
            {"CI_SANITIZER": "address"}, Profile.OPTIMIZED, False, Sanitizer.ADDRESS, id="asan"
        ),
        pytest.param(
            {"CI_SANITIZER": ""}, Profile.OPTIMIZED, False, Sanitizer.NONE, id="san-empty"
        ),
    ],
)
def test_environment_defaults(
    environ: dict[str, str], profile: Profile, coverage: bool, sanitizer: Sanitizer
) -> None:
    """The original's defaults: CI_LTO, CI_COVERAGE_ENABLED, CI_SANITIZER."""
    options = BuildOptions.from_environ(environ)
    assert (options.profile, options.coverage, options.sanitizer) == (profile, coverage, sanitizer)


@pytest.mark.parametrize(
    ("options", "extra"),
    [
        pytest.param(BuildOptions(Profile.OPTIMIZED), "d,e,i,i,m,o,p,t,z", id="optimized"),
        pytest.param(BuildOptions(Profile.RELEASE), "a,e,e,e,l,r,s", id="release"),
        pytest.param(BuildOptions(Profile.DEV), "", id="dev"),
        pytest.param(
            BuildOptions(Profile.DEV, coverage=True, sanitizer=Sanitizer.CFI),
            "a,c,c,e,e,f,g,i,o,r,v",
            id="coverage-cfi",
        ),
    ],
)
def test_cargo_extra(options: BuildOptions, extra: str) -> None:
    """The sorted single characters of profile, coverage and sanitizer, joined by commas."""
    assert options.cargo_extra() == extra


def test_fingerprint_suffix_and_spec() -> None:
    """The option string is the original's exact spelling; the spec joins registry and prefix."""
    options = BuildOptions(
        Profile.RELEASE,
        Arch.AARCH64,
        coverage=True,
        sanitizer=Sanitizer.THREAD,
        image_registry="localhost:5000/acme",
        image_prefix="ci-",
    )
    assert options.fingerprint_suffix() == (
        "profile=Profile.RELEASEarch=aarch64coverage=Truesanitizer=threadmirror=ghcr"
    )
    assert options.spec("base", "ABC") == "localhost:5000/acme/ci-base:mzbuild-ABC"


@pytest.mark.parametrize(("text", "arch"), [("amd64", Arch.X86_64), ("arm64", Arch.AARCH64)])
def test_arch_aliases(text: str, arch: Arch) -> None:
    """Docker's architecture names are accepted."""
    assert Arch.parse(text) is arch


@pytest.mark.parametrize("registry", ["", "ghcr.io/acme/", " ghcr.io"])
def test_invalid_registry(registry: str) -> None:
    """A registry that would make a broken spec is refused."""
    with pytest.raises(UsageError, match="invalid image registry"):
        BuildOptions(image_registry=registry)
