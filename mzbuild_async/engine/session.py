"""A BuildKit session with the engine: how a build gets its secrets.

What BuildKit asks of the client during a build (a secret's value, the health
check) goes over a session the client opens first: ``POST /session`` on the
engine API, upgraded to HTTP/2 without TLS (``h2c``), naming the gRPC methods
the client serves. On that connection the engine is the HTTP/2 client and we
are the server: it calls ``/moby.buildkit.secrets.v1.Secrets/GetSecret`` with a
secret's id and we answer its value. The build then names the session
(``session=<id>``). gRPC over HTTP/2 is small enough to serve with ``h2``
itself: a request's messages arrive as length-prefixed protobuf in DATA
frames, the answer goes back the same way, then trailers with the status.

Nothing of a secret is logged: the values are registered for redaction by
whoever read them, and this module never puts one in a message.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
import anyio.abc

if TYPE_CHECKING:
    from h2.connection import H2Connection

from ..errors import EngineError, reason
from ..support.protowire import field_bytes, field_varint, fields, text

GET_SECRET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
#: gRPC status codes we answer with.
OK, NOT_FOUND, UNIMPLEMENTED = 0, 5, 12
#: Seconds the engine has to accept the session.
UPGRADE_SECONDS = 30.0
#: Largest response head we read before the upgrade.
MAX_HEAD = 64 * 1024

Connect = Callable[[], Awaitable[anyio.abc.ByteStream]]


@dataclass
class _Call:
    """One gRPC call on one HTTP/2 stream."""

    path: str
    body: bytearray = field(default_factory=bytearray)


@dataclass
class _Outgoing:
    """What is left to send on one stream (the window may not take it at once)."""

    data: bytearray
    trailers: list[tuple[str, str]]


def _str(value: str | bytes) -> str:
    """A header name or value (h2 gives str with a header encoding set)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _frame(message: bytes) -> bytes:
    """A gRPC message: uncompressed, its length, itself."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def _messages(body: bytes) -> list[bytes]:
    found: list[bytes] = []
    at = 0
    while at + 5 <= len(body):
        size = int.from_bytes(body[at + 1 : at + 5], "big")
        found.append(bytes(body[at + 5 : at + 5 + size]))
        at += 5 + size
    return found


class SessionServer:
    """The gRPC methods we serve to the engine's BuildKit during a build."""

    def __init__(self, secrets: Mapping[str, bytes]) -> None:
        self.secrets = dict(secrets)
        #: The secret ids asked for (for tests and the run's record; never values).
        self.asked: list[str] = []

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods to name in the upgrade request."""
        return (GET_SECRET, HEALTH_CHECK)

    def answer(self, path: str, request: bytes) -> tuple[int, bytes, str]:
        """``(grpc status, response message, message)`` of one unary call."""
        if path == HEALTH_CHECK:
            return OK, field_varint(1, 1), ""  # SERVING
        if path == GET_SECRET:
            try:
                wanted = next(text(v) for n, v in fields(request) if n == 1)
            except (StopIteration, ValueError):
                return NOT_FOUND, b"", "a secret request without an id"
            self.asked.append(wanted)
            if wanted not in self.secrets:
                return NOT_FOUND, b"", f"secret {wanted} not found"
            return OK, field_bytes(1, self.secrets[wanted]), ""
        return UNIMPLEMENTED, b"", f"{path} is not served by mzbuild-async"

    async def serve(self, stream: anyio.abc.ByteStream, first: bytes) -> None:
        """Serve HTTP/2 on ``stream`` (``first``: bytes read past the upgrade) until
        the engine closes it."""
        import h2.config
        import h2.connection
        import h2.events

        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        calls: dict[int, _Call] = {}
        outgoing: dict[int, _Outgoing] = {}
        data = first
        while True:
            for event in conn.receive_data(data) if data else ():
                if isinstance(event, h2.events.RequestReceived):
                    path = next((_str(v) for k, v in event.headers or () if _str(k) == ":path"), "")
                    calls[event.stream_id] = _Call(path)
                elif isinstance(event, h2.events.DataReceived):
                    call = calls.get(event.stream_id)
                    if call is not None:
                        call.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    call = calls.pop(event.stream_id, None)
                    if call is not None:
                        outgoing[event.stream_id] = self._respond(conn, event.stream_id, call)
                elif isinstance(event, h2.events.StreamReset):
                    calls.pop(event.stream_id, None)
                    outgoing.pop(event.stream_id, None)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    await self._flush(stream, conn)
                    return
            self._send_pending(conn, outgoing)
            await self._flush(stream, conn)
            try:
                data = await stream.receive(65536)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return

    def _respond(self, conn: H2Connection, stream_id: int, call: _Call) -> _Outgoing:
        status, message, detail = self.answer(call.path, b"".join(_messages(bytes(call.body))))
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        trailers = [("grpc-status", str(status))]
        if detail:
            trailers.append(("grpc-message", detail))
        return _Outgoing(bytearray(_frame(message)) if status == OK else bytearray(), trailers)

    @staticmethod
    def _send_pending(conn: H2Connection, outgoing: dict[int, _Outgoing]) -> None:
        """Send what the flow-control windows take; trailers once a stream's data is out."""
        for stream_id in list(outgoing):
            pending = outgoing[stream_id]
            while pending.data:
                size = min(
                    conn.local_flow_control_window(stream_id),
                    conn.max_outbound_frame_size,
                    len(pending.data),
                )
                if size <= 0:
                    break  # (a window update lets the rest go)
                conn.send_data(stream_id, bytes(pending.data[:size]))
                del pending.data[:size]
            if not pending.data:
                conn.send_headers(stream_id, pending.trailers, end_stream=True)
                del outgoing[stream_id]

    @staticmethod
    async def _flush(stream: anyio.abc.ByteStream, conn: H2Connection) -> None:
        out = conn.data_to_send()
        if out:
            await stream.send(out)


async def upgrade(
    stream: anyio.abc.ByteStream, session_id: str, methods: tuple[str, ...], where: str
) -> bytes:
    """Ask the engine for the session (``POST /session``, upgraded to h2c); the bytes
    read past the answer's head. EngineError naming ``where`` when it refuses."""
    lines = [
        "POST /session HTTP/1.1",
        "Host: docker",
        "Upgrade: h2c",
        "Connection: Upgrade",
        f"X-Docker-Expose-Session-Uuid: {session_id}",
        "X-Docker-Expose-Session-Name: mzbuild-async",
        f"X-Docker-Expose-Session-Sharedkey: {session_id}",
        *(f"X-Docker-Expose-Session-Grpc-Method: {method}" for method in methods),
        "Content-Length: 0",
    ]
    await stream.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    head = b""
    with anyio.move_on_after(UPGRADE_SECONDS) as scope:
        while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
            head += await stream.receive(4096)
    if scope.cancelled_caught:
        raise EngineError(f"{where} did not open a build session in {UPGRADE_SECONDS:g} s")
    answer, _, rest = head.partition(b"\r\n\r\n")
    status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    if " 101 " not in f"{status} ":
        raise EngineError(
            f"{where} refused a build session ({status.strip() or 'no answer'}); secrets need"
            " an engine whose BuildKit takes sessions (Docker 18.09 or later)"
        )
    return rest


@asynccontextmanager
async def build_session(connect: Connect, server: SessionServer, where: str) -> AsyncIterator[str]:
    """A session served by ``server`` for the block; its id (for ``session=``)."""
    session_id = uuid.uuid4().hex
    try:
        stream = await connect()
    except OSError as exc:
        raise EngineError(f"{where}: cannot open a build session: {reason(exc)}") from None
    try:
        rest = await upgrade(stream, session_id, server.methods, where)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve, stream, rest)
            try:
                yield session_id
            finally:
                tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await stream.aclose()
