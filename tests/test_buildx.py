"""The --builder buildx backend: its command line, and a fake `docker` CLI.

docker buildx is not installed on this machine (Debian's docker.io has no
buildx plugin), so the backend runs against small fake `docker` scripts:
what is tested is our side (flags, the context on stdin, failures).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mzbuild_async.engine.buildx import BuildxBuilder
from mzbuild_async.engine.protocol import BuildRequest
from mzbuild_async.errors import DockerBuildError, UsageError

REQUEST = BuildRequest(
    tag="reg.test/app:mzbuild-X",
    dockerfile=".mzbuild.Dockerfile",
    buildargs={"B": "2", "A": "1"},
    labels={"io.mzbuild.fingerprint": "X"},
    platform="linux/amd64",
    also_tag=("reg.test/app:latest",),
)


def fake_docker(tmp_path: Path, script: str) -> str:
    path = tmp_path / "docker"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return str(path)


def test_command_line_with_a_registry_cache() -> None:
    command = BuildxBuilder("docker").command(REQUEST, "cache.test/app:buildcache")
    assert command[:5] == ["docker", "buildx", "build", "--progress=plain", "--load"]
    assert command[-1] == "-"

    def values(flag: str) -> list[str]:
        return [command[i + 1] for i, arg in enumerate(command) if arg == flag]

    assert values("--tag") == ["reg.test/app:mzbuild-X", "reg.test/app:latest"]
    assert values("--file") == [".mzbuild.Dockerfile"]
    assert values("--build-arg") == ["A=1", "B=2"]
    assert values("--label") == ["io.mzbuild.fingerprint=X"]
    assert values("--platform") == ["linux/amd64"]
    assert values("--cache-from") == ["type=registry,ref=cache.test/app:buildcache"]
    assert values("--cache-to") == ["type=registry,ref=cache.test/app:buildcache,mode=max"]


def test_command_line_without_a_cache() -> None:
    command = BuildxBuilder("docker").command(REQUEST, None)
    assert "--cache-from" not in command
    assert "--cache-to" not in command


@pytest.mark.anyio
async def test_check_says_what_to_do_without_buildx(tmp_path: Path) -> None:
    missing = BuildxBuilder(fake_docker(tmp_path, "echo 'unknown command: buildx' >&2; exit 1\n"))
    with pytest.raises(UsageError, match="--builder engine"):
        await missing.check()
    present = BuildxBuilder(fake_docker(tmp_path, "echo 'github.com/docker/buildx v0.20'\n"))
    await present.check()
    with pytest.raises(UsageError, match="not found"):
        await BuildxBuilder(str(tmp_path / "absent")).check()


async def _context() -> AsyncIterator[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo(".mzbuild.Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    payload = buffer.getvalue()
    for i in range(0, len(payload), 1000):
        yield payload[i : i + 1000]


@pytest.mark.anyio
async def test_build_feeds_the_context_on_stdin(tmp_path: Path) -> None:
    received = tmp_path / "received.tar"
    docker = fake_docker(tmp_path, f'cat > {received}\necho "#1 DONE 0.1s"\n')
    lines: list[str] = []
    await BuildxBuilder(docker).build(REQUEST, _context(), lines.append)
    with tarfile.open(received) as tar:
        assert tar.getnames() == [".mzbuild.Dockerfile"]
    assert lines == ["#1 DONE 0.1s"]


@pytest.mark.anyio
async def test_a_failed_build_reports_the_error_line(tmp_path: Path) -> None:
    docker = fake_docker(
        tmp_path,
        "cat > /dev/null\necho '#5 [2/3] RUN false'\necho 'ERROR: failed to solve: boom' >&2\n"
        "exit 1\n",
    )
    with pytest.raises(DockerBuildError, match="ERROR: failed to solve: boom") as info:
        await BuildxBuilder(docker).build(REQUEST, _context())
    assert "#5 [2/3] RUN false" in info.value.last_lines
