"""A TCP delay line: a loopback port that forwards to another, each byte late.

Put it in front of a registry (plain HTTP or TLS: it never looks inside) to
give every connection a round-trip time, as a network would, and to count
what crosses it: connections (one TLS handshake each) and bytes. Each
direction delays what it forwards by ``delay`` seconds (one way), keeping
order and the stream's end.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import anyio
import anyio.abc
import anyio.from_thread


@dataclass
class DelayLine:
    """The line; run :meth:`serve` in a task group (or :func:`delay_line_thread`)."""

    upstream_port: int
    #: Seconds each direction holds what it forwards (the round trip is twice this).
    delay: float = 0.0
    port: int = 0
    #: Connections accepted so far, and the most open at once.
    connections: int = 0
    most_open: int = 0

    def __post_init__(self) -> None:
        self._open = 0

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the line's end."""
        return f"127.0.0.1:{self.port}"

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on a free loopback port until cancelled."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with listener:
            task_status.started()
            await listener.serve(self._connection)

    async def _connection(self, client: anyio.abc.SocketStream) -> None:
        self.connections += 1
        self._open += 1
        self.most_open = max(self.most_open, self._open)
        try:
            upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
            async with client, upstream, anyio.create_task_group() as tg:
                tg.start_soon(self._pipe, client, upstream)
                tg.start_soon(self._pipe, upstream, client)
        except OSError:
            return
        finally:
            self._open -= 1

    async def _pipe(self, source: anyio.abc.SocketStream, sink: anyio.abc.SocketStream) -> None:
        send, receive = anyio.create_memory_object_stream[tuple[float, bytes]](math.inf)

        async def read() -> None:
            async with send:
                try:
                    while True:
                        chunk = await source.receive()
                        await send.send((anyio.current_time() + self.delay, chunk))
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return

        async def write() -> None:
            async with receive:
                try:
                    async for at, chunk in receive:
                        await anyio.sleep(max(0.0, at - anyio.current_time()))
                        await sink.send(chunk)
                    await sink.send_eof()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(write)


@contextmanager
def delay_line_thread(upstream_port: int, delay: float = 0.0) -> Iterator[DelayLine]:
    """A delay line served from a thread of its own (for processes under test)."""
    line = DelayLine(upstream_port, delay)
    with anyio.from_thread.start_blocking_portal() as portal:
        future, _ = portal.start_task(line.serve)
        try:
            yield line
        finally:
            future.cancel()
