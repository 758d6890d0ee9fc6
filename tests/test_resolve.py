"""workflow/resolve and workflow/shape: flags, the settings file and the environment
become what a command runs with, in one place; bad values are one line each."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mzbuild_async.errors import UsageError
from mzbuild_async.model.options import DEFAULT_TRANSFERS, Arch, Profile
from mzbuild_async.workflow.resolve import (
    Flags,
    Settings,
    build_options,
    cache_dir_of,
    resolve_settings,
    run_options,
)
from mzbuild_async.workflow.shape import PipelineFlags, pipeline_shape, step_otlp


def test_flags_take_what_they_name_and_keep_defaults_for_the_rest() -> None:
    flags = Flags.of({"command": "ensure", "jobs": 3, "images": ["a"], "tiers": None})
    assert (flags.command, flags.jobs, flags.tiers, flags.transfers) == (
        "ensure",
        3,
        None,
        DEFAULT_TRANSFERS,
    )
    assert Flags.of({}, registries=True).registries


def test_build_options_read_flags_then_the_environment() -> None:
    assert build_options(Flags(), {"CI_LTO": "1"}).profile is Profile.RELEASE
    assert build_options(Flags(profile=("dev",)), {"CI_LTO": "1"}).profile is Profile.DEV
    assert build_options(Flags(), {"DOCKER_DEFAULT_PLATFORM": "linux/arm64"}).arch is (Arch.AARCH64)
    assert build_options(Flags(image_prefix=""), {}).image_prefix == ""
    with pytest.raises(UsageError, match="ensure: give --profile once"):
        build_options(Flags(command="ensure", profile=("dev", "release")), {})
    with pytest.raises(UsageError, match="ensure: give --arch once"):
        build_options(Flags(command="ensure", arch=("x86_64", "aarch64")), {})
    several = build_options(Flags(command="gc", arch=("aarch64", "x86_64")), {})
    assert several.arch is Arch.AARCH64  # (gc reads every one itself)
    with pytest.raises(UsageError, match="DOCKER_DEFAULT_PLATFORM=windows/amd64"):
        build_options(Flags(), {"DOCKER_DEFAULT_PLATFORM": "windows/amd64"})


def test_the_cache_directory_flag_wins(tmp_path: Path) -> None:
    given = {"MZBUILD_ASYNC_CACHE_DIR": str(tmp_path / "env")}
    assert cache_dir_of(Flags(cache_dir=str(tmp_path / "flag")), given) == tmp_path / "flag"
    assert cache_dir_of(Flags(), given) == tmp_path / "env"


def _settings(tmp_path: Path, flags: Flags, environ: dict[str, str] | None = None) -> Settings:
    options = build_options(flags, {})
    return resolve_settings(flags, environ or {}, tmp_path, tmp_path / "cache", options)


def test_run_options_from_flags_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "mzbuild-async.toml").write_text(
        '[lookup]\ntrust-cache = true\n\n[[publish]]\nregistry = "mirror.test/kit"\n'
    )
    flags = Flags(
        command="ensure", registries=True, jobs=2, builder="engine", require_attested=True
    )
    settings = _settings(tmp_path, flags)
    options = run_options(flags, settings)
    assert (options.jobs, options.slots, options.builder) == (2, 2, "auto")
    assert options.trust_cache
    assert options.attest
    assert options.require_attested
    assert [m.registry for m in options.mirrors] == ["mirror.test/kit"]
    assert options.only is None
    step = run_options(
        Flags(command="ensure", registries=True, only=("a=FP", "b"), wait=5.0, step="s1"),
        _settings(tmp_path, Flags(registries=True), {"MZBUILD_ASYNC_RUN_ID": "run-7"}),
    )
    assert step.only == {"a": "FP", "b": ""}
    assert (step.wait, step.step, step.pipeline_run) == (5.0, "s1", "run-7")
    for bad, message in (
        (Flags(registries=True, jobs=0), "--jobs must be at least 1"),
        (Flags(registries=True, transfers=0), "--transfers must be at least 1"),
        (Flags(registries=True, only=("=FP",)), "--only '=FP': give IMAGE"),
    ):
        with pytest.raises(UsageError, match=message):
            run_options(bad, settings)


def test_a_signing_key_implies_attest_and_is_read_before_any_work(tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    flags = Flags(registries=True, sign_key=str(key))
    options = run_options(flags, _settings(tmp_path, flags))
    assert options.attest
    assert len(options.signers) == 1
    missing = Flags(registries=True, sign_key=str(tmp_path / "none.pem"))
    with pytest.raises(UsageError, match=r"none\.pem"):
        run_options(missing, _settings(tmp_path, missing))


def test_the_pipeline_shape_carries_step_flags_never_secrets() -> None:
    shape = pipeline_shape(
        PipelineFlags(format="github", attest=True, sign_key="/agents/key.pem", agents=3),
        {"MZBUILD_ASYNC_RUN_ID": "run-9"},
    )
    assert shape.format == "github"
    assert shape.agents == 3
    assert shape.step.extra == ("--attest", "--sign-key", "/agents/key.pem")
    assert shape.step.runs_on == ("ubuntu-latest",)
    assert shape.step.traceparent.startswith("00-")
    assert pipeline_shape(PipelineFlags(), {}).step.traceparent == ""
    assert step_otlp("https://otel.test:4318") == "https://otel.test:4318"
    for url, where in (
        ("https://user:pw@otel.test", "user:password@"),
        ("https://otel.test/?api_token=x", "?api_token="),
    ):
        with pytest.raises(UsageError, match="carries credentials") as caught:
            step_otlp(url)
        assert where in str(caught.value)
        assert ":pw@" not in str(caught.value)
