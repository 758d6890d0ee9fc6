"""Registry settings from mzbuild-async.toml and flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mzbuild_async.errors import UsageError
from mzbuild_async.model.options import BuildOptions
from mzbuild_async.registry.config import RegistryConfig, parse_limit_flag, with_flags
from mzbuild_async.support.ratelimit import DOCKER_HUB_LIMITS, Limits
from mzbuild_async.workflow.config import load_config


def load_registry_config(root: Path) -> RegistryConfig:
    """The registry settings of the file at ``root``, read by its one reader."""
    return load_config(root).registry


def test_file_and_flags(tmp_path: Path) -> None:
    """Per-host limits and insecure hosts from the file; flags override them."""
    (tmp_path / "mzbuild-async.toml").write_text(
        '[registry."r.internal:5000"]\nconcurrency = 4\nrate = 10\ninsecure = true\n'
        '[registry."docker.io"]\nmanifest-get = true\n'
    )
    config = load_registry_config(tmp_path)
    assert config.limits["r.internal:5000"] == Limits(concurrency=4, rate=10.0, burst=200)
    assert config.insecure == {"r.internal:5000"}
    assert config.manifest_on_docker_hub
    merged = with_flags(config, ["r.internal:5000=2,5,5"], ["other:1"], False)
    assert merged.limits["r.internal:5000"] == Limits(2, 5.0, 5)
    assert merged.insecure == {"r.internal:5000", "other:1"}


def test_missing_file_is_defaults(tmp_path: Path) -> None:
    """No file: no overrides; known hosts keep their defaults."""
    config = load_registry_config(tmp_path)
    assert config.limits == {}
    assert config.limiters().limits_for("registry-1.docker.io") == DOCKER_HUB_LIMITS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('[registry."h"]\nrate = -1\n', "h: rate must be a positive, finite", id="neg"),
        pytest.param(
            '[registry."h"]\nrate = nan\n', "h: rate must be a positive, finite", id="nan"
        ),
        pytest.param(
            '[registry."h"]\nconcurrency = inf\n', "h: concurrency must be a positive", id="inf"
        ),
        pytest.param('[registry."h"]\nburst = nan\n', "h: burst must be a positive", id="burst"),
        pytest.param('[registry."h"]\nconcurrency = 2.5\n', "a whole number", id="fraction"),
        pytest.param('[registry."h"]\ninsecure = "yes"\n', "insecure must be true or", id="yes"),
        pytest.param('[registry."h"]\nmanifest-get = 1\n', "manifest-get must be", id="get"),
        pytest.param("[registri]\n", "unknown setting 'registri'", id="top-level"),
        pytest.param(
            "colour = 1\n",
            "known: [defaults], [engine], [lookup], [mirrors], [promote], [publish], [registry],"
            " [secret]",
            id="top-key",
        ),
        pytest.param("[lookup]\ntrust-cache = 1\n", "trust-cache must be true or", id="trust"),
        pytest.param(
            "x = " + "[" * 50_000 + "]" * 50_000 + "\n",
            "nested more than 64 levels deep",
            id="deep",
        ),
        pytest.param('[registry."h"]\nspeed = 1\n', "h: unknown setting 'speed'", id="unknown"),
        pytest.param("[registry\n", "cannot read", id="toml"),
        pytest.param('registry = "x"\n', "[registry] must hold", id="shape"),
    ],
)
def test_bad_file(tmp_path: Path, text: str, message: str) -> None:
    """A bad settings file is a one-line error naming it."""
    (tmp_path / "mzbuild-async.toml").write_text(text)
    with pytest.raises(UsageError, match=r"mzbuild-async\.toml") as info:
        load_registry_config(tmp_path)
    assert message in str(info.value)


@pytest.mark.parametrize(
    "flag",
    ["noequals", "h=", "h=a,b", "h=1,2,3,4", "h=0", "h=nan", "h=inf", "h=4,nan", "h=4,5,inf"],
)
def test_bad_limit_flags(flag: str) -> None:
    """--registry-limit values that are not HOST=CONC[,RATE[,BURST]] are refused."""
    with pytest.raises(UsageError, match="--registry-limit"):
        parse_limit_flag(flag)


def test_lookup_table(tmp_path: Path) -> None:
    """[lookup] picks tiers (validated, put in order), retries and the deadline."""
    (tmp_path / "mzbuild-async.toml").write_text(
        '[lookup]\ntiers = ["registry", "memory"]\nretries = 2\ndeadline = 5\n'
    )
    config = load_registry_config(tmp_path)
    assert (config.tiers, config.retries, config.deadline) == (("memory", "registry"), 2, 5.0)
    (tmp_path / "mzbuild-async.toml").write_text('[lookup]\ntiers = ["cloud"]\n')
    with pytest.raises(UsageError, match="unknown tier 'cloud'"):
        load_registry_config(tmp_path)


def test_bytes_that_are_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "mzbuild-async.toml").write_bytes(b'[registry."h"]\nrate = 1 # \xff\n')
    with pytest.raises(UsageError, match=r"mzbuild-async\.toml: not UTF-8 \(byte 26"):
        load_registry_config(tmp_path)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda key, value: f'[registry."h"]\n{key} = {value}\n'.encode(),
            st.sampled_from(["concurrency", "rate", "burst", "insecure", "manifest-get", "ca"]),
            st.sampled_from(["nan", "inf", "-inf", "0", "-1", "1.5", '"x"', "true", "[]", "{}"]),
        ),
        st.builds(
            lambda key, value: f"[lookup]\n{key} = {value}\n".encode(),
            st.sampled_from(["tiers", "retries", "deadline", "trust-cache"]),
            st.sampled_from(["nan", "inf", "0", "-1", '"x"', "true", "[1]", '["disk"]']),
        ),
        st.builds(
            lambda key, value: f'[[engine]]\nurl = "unix:///x.sock"\n{key} = {value}\n'.encode(),
            st.sampled_from(["slots", "platform", "name", "tls-verify", "tls-dir"]),
            st.sampled_from(["nan", "inf", "0", "-1", '"x"', "true", "[]"]),
        ),
    )
)
def test_any_file_is_a_setting_or_one_line(tmp_path: Path, data: bytes) -> None:
    """Whatever mzbuild-async.toml holds, reading it gives settings or a UsageError that
    names the file, never another exception."""
    from mzbuild_async.workflow.resolve import Flags, engine_settings, registry_settings

    (tmp_path / "mzbuild-async.toml").write_bytes(data)
    args = Flags(registries=True, engine=())
    message = "mzbuild-async.toml"
    try:
        config = load_config(tmp_path)
        registry_settings(args, config, {}, BuildOptions())
        engine_settings(args, config, {})
    except UsageError as exc:
        message = str(exc)
    assert "mzbuild-async.toml" in message, message
