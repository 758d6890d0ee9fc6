"""mzbuild-async.toml means the same to every command that talks to registries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mzbuild_async.cli.flags import flags
from mzbuild_async.cli.parser import build_parser
from mzbuild_async.model.options import BuildOptions
from mzbuild_async.workflow.config import load_config
from mzbuild_async.workflow.resolve import registry_settings
from tests.support.demo import Cli
from tests.support.registry import Registry

SETTINGS = """\
[lookup]
tiers = ["memory", "registry"]
retries = 2
deadline = 7.5

[registry."registry.test:5000"]
concurrency = 3
rate = 9.0
burst = 4
"""


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["check", "--all"], id="check"),
        pytest.param(["plan", "--all"], id="plan"),
        pytest.param(["acquire", "--all"], id="acquire"),
        pytest.param(["ensure", "--all"], id="ensure"),
        pytest.param(["build", "--all"], id="build"),
        pytest.param(["run", "a"], id="run"),
        pytest.param(["publish-manifest", "v1", "--all"], id="publish-manifest"),
    ],
)
def test_every_registry_command_takes_the_file(tmp_path: Path, argv: list[str]) -> None:
    """[lookup] tiers, retries, deadline and per-host limits reach each command's settings."""
    (tmp_path / "mzbuild-async.toml").write_text(SETTINGS)
    args = build_parser().parse_args(argv)
    settings = registry_settings(flags(args), load_config(tmp_path), {}, BuildOptions())
    assert settings.tiers == ("memory", "registry")
    assert settings.retry.attempts == 2
    assert settings.deadline == 7.5
    limiter = settings.client(tmp_path / "cache").limiters("registry.test:5000")
    assert (limiter.limits.concurrency, limiter.limits.rate, limiter.limits.burst) == (3, 9.0, 4)


def test_flags_win_over_the_file(tmp_path: Path) -> None:
    """check's --tiers, --retries and --deadline override the file."""
    (tmp_path / "mzbuild-async.toml").write_text(SETTINGS)
    args = build_parser().parse_args(
        ["check", "--all", "--tiers", "disk", "--retries", "4", "--deadline", "3"]
    )
    settings = registry_settings(flags(args), load_config(tmp_path), {}, BuildOptions())
    assert (settings.tiers, settings.retry.attempts, settings.deadline) == (("disk",), 4, 3.0)


@pytest.mark.slow
@pytest.mark.parametrize("workflow", ["acquire", "ensure", "build"])
@pytest.mark.real
def test_plan_consults_only_the_configured_tiers(
    tmp_path: Path, registries: dict[str, Registry], demo_cli: Cli, workflow: str
) -> None:
    """A published image is found through the registry, unless the file's tiers leave it out."""
    cli = demo_cli
    registry = registries["none"]
    spec = cli.run("spec", "demo-base").stdout.strip()
    repo_path, tag = spec.partition("/")[2].rsplit(":", 1)
    registry.push(repo_path, tag)

    def published() -> str:
        result = cli.run("plan", "demo-base", "--workflow", workflow, "--json")
        assert result.returncode == 0, result.stderr
        return str(json.loads(result.stdout)["images"]["demo-base"]["published"])

    assert published() == "present"
    (cli.repo / "mzbuild-async.toml").write_text('[lookup]\ntiers = ["memory"]\n')
    shutil.rmtree(cli.cache_dir, ignore_errors=True)
    assert published() == "unknown"
