"""``run``'s container on a Docker engine: created, attached, waited for, removed.

The container is removed also when the run is cancelled, within
:data:`CLEANUP_SECONDS`: an engine that does not answer by then keeps it, and
a warning says how to remove it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import anyio

from ..errors import EngineError, reason
from ..support import logs
from .answers import is_connection_error

T = TypeVar("T")


class EngineApi(Protocol):
    """What running a container needs of an engine (:class:`.docker.DockerEngine` has it)."""

    @property
    def label(self) -> str:
        """The engine's name in messages."""
        ...

    async def client(self) -> Any:
        """The API client (aiodocker's)."""
        ...

    def bounded(self, doing: str, call: Callable[[], Awaitable[T]]) -> Awaitable[T]:
        """``call()``, or EngineError when the engine gives no answer in time."""
        ...

    def engine_error(self, exc: BaseException, doing: str) -> EngineError:
        """The EngineError a failure to reach the engine stands for."""
        ...


#: Seconds the clean-up of a ``run`` container may take when the run is over
#: (or cancelled); past it the container is left, with a warning.
CLEANUP_SECONDS = 5.0


async def run_container(
    engine: EngineApi, spec: str, args: Sequence[str], on_output: Callable[[bytes], None]
) -> int:
    """Run ``spec`` with ``args`` in a fresh container, removed afterwards; its exit code.

    The container is removed also when the run is cancelled, within
    :data:`CLEANUP_SECONDS`: an engine that does not answer by then keeps
    it, and a warning says how to remove it.
    """
    docker = await engine.client()
    config: dict[str, Any] = {"Image": spec, "AttachStdout": True, "AttachStderr": True}
    if args:
        config["Cmd"] = list(args)
    try:
        container = await engine.bounded(
            f"creating a container from {spec}",
            lambda: docker.containers.create(config=config),
        )
    except EngineError:
        raise
    except Exception as exc:
        if is_connection_error(exc):
            raise engine.engine_error(exc, f"running {spec}") from None
        raise EngineError(f"could not create a container from {spec}: {exc}") from None
    try:
        await engine.bounded(f"starting a container from {spec}", container.start)
        async for chunk in container.log(stdout=True, stderr=True, follow=True):
            on_output(chunk.encode() if isinstance(chunk, str) else chunk)
        result = await container.wait()
        return int(result.get("StatusCode", 1))
    finally:
        await _remove_container(engine, container.id)


async def _remove_container(engine: EngineApi, container_id: str) -> None:
    """Remove a container (shielded, bounded: also when the run is cancelled)."""
    short = container_id[:12]
    with anyio.CancelScope(shield=True):
        with anyio.move_on_after(CLEANUP_SECONDS) as scope:
            try:
                await (await engine.client()).containers.container(container_id).delete(force=True)
            except Exception as exc:  # the engine went away: say what is left
                logs.warning(
                    f"{engine.label}: could not remove container {short} ({reason(exc)});"
                    f" remove it with `docker rm -f {short}`"
                )
        if scope.cancelled_caught:
            logs.warning(
                f"{engine.label} did not answer in {CLEANUP_SECONDS:g} s; left container"
                f" {short} behind: remove it with `docker rm -f {short}`"
            )
