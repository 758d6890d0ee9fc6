"""The ``--builder buildx`` backend: ``docker buildx build`` with a registry cache.

Used instead of the engine API when BuildKit's own registry cache is
wanted: ``--cache-from/--cache-to type=registry,ref=...,mode=max`` keeps
every intermediate layer, where the engine API's ``cachefrom`` can only
reuse layers of a pulled image. The context is the same streamed tar,
fed on stdin; ``--load`` puts the result in the local daemon.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field

import anyio
import anyio.abc

from ..errors import DockerBuildError, UsageError
from ..support.lines import pump_lines
from .protocol import TAIL_LINES, BuildRequest, LineSink
from .protocol import drop as _drop

#: The environment variables the secrets travel in to ``docker buildx`` (numbered).
SECRET_VARIABLE = "MZBUILD_ASYNC_SECRET_"


@dataclass(frozen=True)
class BuildxBuilder:
    """Builds with the ``docker buildx`` CLI plugin (a :class:`~.protocol.Builder`)."""

    docker: str = "docker"
    #: The environment ``docker buildx`` runs in (the run's: DOCKER_HOST, contexts).
    environ: Mapping[str, str] = field(default_factory=dict)

    def command(self, request: BuildRequest, cache_ref: str | None) -> list[str]:
        """The ``docker buildx build`` argument list (context tar on stdin)."""
        args = [self.docker, "buildx", "build", "--progress=plain", "--load"]
        args += ["--tag", request.tag, "--file", request.dockerfile]
        for tag in request.also_tag:
            args += ["--tag", tag]
        for key, value in sorted(request.buildargs.items()):
            args += ["--build-arg", f"{key}={value}"]
        for key, value in sorted(request.labels.items()):
            args += ["--label", f"{key}={value}"]
        if request.platform:
            args += ["--platform", request.platform]
        for ref in request.cache_from:
            args += ["--cache-from", f"type=registry,ref={ref}"]
        if cache_ref:
            args += ["--cache-from", f"type=registry,ref={cache_ref}"]
            args += ["--cache-to", f"type=registry,ref={cache_ref},mode=max"]
        for n, secret in enumerate(sorted(request.secrets)):  # (values: the environment)
            args += ["--secret", f"id={secret},env={SECRET_VARIABLE}{n}"]
        for agent, socket in sorted(request.ssh.items()):
            args += ["--ssh", f"{agent}={socket}"]
        return [*args, "-"]

    def environment(self, request: BuildRequest) -> dict[str, str]:
        """The process's environment: ours, and each secret in a variable of its own
        (never on the command line, which other users can read)."""
        found = dict(self.environ)
        for n, secret in enumerate(sorted(request.secrets)):
            found[f"{SECRET_VARIABLE}{n}"] = request.secrets[secret].decode("utf-8", "replace")
        return found

    async def check(self) -> None:
        """A clear error unless ``docker buildx`` is installed."""
        program = shutil.which(self.docker)
        if program is None:
            raise UsageError(f"--builder buildx: {self.docker} CLI not found; use --builder engine")
        result = await anyio.run_process([program, "buildx", "version"], check=False)
        if result.returncode != 0:
            raise UsageError(
                "--builder buildx: `docker buildx` is not installed; install the buildx"
                " plugin or use --builder engine"
            )

    async def build(
        self,
        request: BuildRequest,
        context: AsyncIterable[bytes],
        on_line: LineSink = _drop,
        *,
        cache_ref: str | None = None,
    ) -> None:
        """Build ``request.tag`` into the local daemon; DockerBuildError on failure."""
        command = self.command(request, cache_ref)
        tail: list[str] = []

        def sink(line: str) -> None:
            tail.append(line)
            del tail[:-TAIL_LINES]
            on_line(line)

        process = await anyio.open_process(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.environment(request),
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_feed, process.stdin, context)
                tg.start_soon(pump_lines, process.stdout, sink)
                status = await process.wait()
        except BaseException:
            with anyio.CancelScope(shield=True):
                process.kill()
                await process.wait()
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await process.aclose()
        if status != 0:
            error = next((line for line in reversed(tail) if "ERROR" in line), "")
            raise DockerBuildError(
                f"docker buildx build of {request.tag} failed"
                f"{': ' + error.strip() if error else f' (exit status {status})'}",
                tuple(tail),
            )


async def _feed(stdin: anyio.abc.ByteSendStream | None, context: AsyncIterable[bytes]) -> None:
    if stdin is None:
        return
    try:
        async for chunk in context:
            await stdin.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
        return  # the builder stopped reading; its exit status tells why
    finally:
        await stdin.aclose()
