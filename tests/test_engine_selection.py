"""The local engine is the one the Docker CLI would talk to: DOCKER_HOST, else
DOCKER_CONTEXT, else config.json's currentContext (``docker context use``), else the
socket; contexts under $DOCKER_CONFIG. Unit cases with contexts the real ``docker``
CLI wrote, then a real second engine chosen both ways."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mzbuild_async.engine.endpoints import DEFAULT_SOCKET, local_endpoint
from mzbuild_async.errors import UsageError
from tests.support.engine import _fail_or_skip


def _docker(config: Path, *args: str) -> None:
    if shutil.which("docker") is None:
        _fail_or_skip("the docker CLI is not installed; run scripts/setup-system")
    subprocess.run(["docker", "--config", str(config), *args], check=True, capture_output=True)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A Docker config directory with contexts ``one`` (tcp) and ``two`` (a socket),
    made by the docker CLI itself."""
    directory = tmp_path / "docker-config"
    _docker(directory, "context", "create", "one", "--docker", "host=tcp://127.0.0.1:2399")
    _docker(directory, "context", "create", "two", "--docker", "host=unix:///run/two.sock")
    return directory


def test_the_docker_cli_order(config: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = {"DOCKER_CONFIG": str(config)}
    assert local_endpoint(base, home).url == DEFAULT_SOCKET
    _docker(config, "context", "use", "two")
    assert local_endpoint(base, home).url == "unix:///run/two.sock"
    assert local_endpoint({**base, "DOCKER_CONTEXT": "one"}, home).url == "http://127.0.0.1:2399"
    both = {**base, "DOCKER_CONTEXT": "one", "DOCKER_HOST": "unix:///run/host.sock"}
    assert local_endpoint(both, home).url == "unix:///run/host.sock"
    assert local_endpoint({**base, "DOCKER_CONTEXT": "default"}, home).url == DEFAULT_SOCKET
    # Without DOCKER_CONFIG the contexts are under ~/.docker: none there.
    assert local_endpoint({}, home).url == DEFAULT_SOCKET


def test_a_context_that_does_not_exist_is_one_line(config: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as caught:
        local_endpoint({"DOCKER_CONFIG": str(config), "DOCKER_CONTEXT": "remote"}, tmp_path)
    assert str(caught.value) == (
        f"DOCKER_CONTEXT: no Docker context 'remote' in {config / 'contexts'};"
        " `docker context ls` lists them (DOCKER_CONFIG says where they are)"
    )
    (config / "config.json").write_text('{"currentContext": "gone"}')
    with pytest.raises(UsageError, match=r"config.json \(currentContext\): no Docker context"):
        local_endpoint({"DOCKER_CONFIG": str(config)}, tmp_path)


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.xdist_group("engines")  # (the extra engines are shared: one worker, in turn)
def test_a_real_second_engine_through_context_use_and_docker_context(
    tmp_path: Path, registries: dict[str, object]
) -> None:
    from tests.support.demo import make_demo
    from tests.support.pool import docker_on, engines

    socket = engines("e2")["E2"]
    config = tmp_path / "docker-config"
    _docker(config, "context", "create", "second", "--docker", f"host={socket}")
    repo = make_demo(tmp_path / "demo")
    registry = registries["none"].host  # type: ignore[attr-defined]
    root = str(Path(__file__).resolve().parents[1])
    clean = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}

    def build(prefix: str, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "mzbuild_async",
                "build",
                "demo-base",
                "--repo",
                str(repo),
                "--image-registry",
                f"{registry}/{prefix}",
                "--cache-dir",
                str(tmp_path / prefix),
                "--dev",
                "--json",
                *extra,
            ],
            env={**clean, "PYTHONPATH": root, "DOCKER_CONFIG": str(config), **env},
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )

    def spec(prefix: str) -> str:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "mzbuild_async",
                "spec",
                "demo-base",
                "--repo",
                str(repo),
                "--image-registry",
                f"{registry}/{prefix}",
                "--dev",
            ],
            env={**clean, "PYTHONPATH": root},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()

    # DOCKER_CONTEXT names it.
    result = build("viaenv", DOCKER_CONTEXT="second")
    assert result.returncode == 0, result.stderr
    built = spec("viaenv")
    assert docker_on(socket, "image", "inspect", "--format", "{{.Id}}", built).strip()
    assert not docker_on(
        "unix:///var/run/docker.sock", "image", "inspect", "--format", "{{.Id}}", built
    ).strip()
    # docker context use names it (config.json's currentContext).
    _docker(config, "context", "use", "second")
    result = build("viause")
    assert result.returncode == 0, result.stderr
    built = spec("viause")
    assert docker_on(socket, "image", "inspect", "--format", "{{.Id}}", built).strip()
    assert not docker_on(
        "unix:///var/run/docker.sock", "image", "inspect", "--format", "{{.Id}}", built
    ).strip()
    # A context that does not exist: one line, no traceback.
    result = build("none", "-q", DOCKER_CONTEXT="nowhere")
    assert result.returncode == 2
    assert "DOCKER_CONTEXT: no Docker context 'nowhere'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    # A context whose engine is gone (a closed port): one line naming it, and no
    # aiohttp noise after it (an unclosed session or connector).
    _docker(config, "context", "create", "dead", "--docker", "host=tcp://127.0.0.1:9")
    result = build("dead", "-q", DOCKER_CONTEXT="dead")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "the Docker engine could not be reached" in result.stderr
    assert "127.0.0.1:9" in result.stderr
    assert "Unclosed" not in result.stderr
    assert "Traceback" not in result.stderr
