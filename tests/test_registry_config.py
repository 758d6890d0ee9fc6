"""Registry settings from mzbuild-async.toml and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async.errors import UsageError
from mzbuild_async.registry.config import load_registry_config, parse_limit_flag, with_flags
from mzbuild_async.support.ratelimit import DOCKER_HUB_LIMITS, Limits


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
        pytest.param('[registry."h"]\nrate = -1\n', "h: rate must be a positive number", id="neg"),
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


@pytest.mark.parametrize("flag", ["noequals", "h=", "h=a,b", "h=1,2,3,4", "h=0"])
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
