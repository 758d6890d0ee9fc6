"""The real Docker engine for tests: reachability and tiny FROM-scratch images."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = Path("/bin/busybox")


def _fail_or_skip(message: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


async def engine() -> Any:
    """An aiodocker client to a running engine (fails under CI=true when there is none)."""
    import aiodocker

    docker = aiodocker.Docker()
    try:
        await docker.version()
    except Exception as exc:
        await docker.close()
        _fail_or_skip(f"no Docker engine ({exc}); run scripts/setup-system")
    return docker


def scratch_context(marker: str, parent: str = "scratch") -> bytes:
    """A build context: busybox-static in a FROM scratch image (or FROM ``parent``),
    with a marker file."""
    if not BUSYBOX.exists():
        _fail_or_skip("busybox-static is not installed; run scripts/setup-system")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        dockerfile = f"FROM {parent}\nCOPY busybox /bin/busybox\nCOPY marker /marker\n".encode()
        for name, data, mode in (
            ("Dockerfile", dockerfile, 0o644),
            ("busybox", BUSYBOX.read_bytes(), 0o755),
            ("marker", marker.encode(), 0o644),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = mode
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def build_scratch_image(docker: Any, tag: str, *, parent: str = "scratch") -> None:
    """Build a tiny image tagged ``tag`` on the engine (on ``parent``, one it has).

    On a busy shared engine the classic builder can fail to find the parent it just
    resolved ("unable to find image sha256:..."; seen with two suites on one engine):
    such a build is tried once more."""
    import aiodocker

    for attempt in (1, 2):
        try:
            await docker.images.build(
                fileobj=io.BytesIO(scratch_context(tag, parent)),
                encoding="identity",
                tag=tag,
                rm=True,
            )
            return
        except aiodocker.exceptions.DockerError as exc:
            if attempt == 2 or "unable to find image" not in str(exc.message):
                raise


def remove_images(prefix: str) -> None:
    """Remove every image of the main engine whose reference starts with ``prefix``."""
    import subprocess

    listed = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    mine = [i for i in listed if i.startswith(prefix)]
    if mine:
        subprocess.run(
            ["docker", "rmi", "-f", "--no-prune", *mine], capture_output=True, check=False
        )
