"""A BuildKit session with the engine: how a build gets its secrets.

What BuildKit asks of the client during a build (a secret's value, the health
check) goes over a session the client opens first: ``POST /session`` on the
engine API, upgraded to HTTP/2 without TLS (``h2c``), naming the gRPC methods
the client serves. On that connection the engine is the HTTP/2 client and we
are the server: it calls ``/moby.buildkit.secrets.v1.Secrets/GetSecret`` with a
secret's id and we answer its value, ``/moby.filesync.v1.Auth/Credentials`` with
a registry's host and we answer the username and secret we have for it (how
BuildKit reads a cache image from a registry that wants a login). The build
then names the session
(``session=<id>``). gRPC over HTTP/2 is small enough to serve with ``h2``
itself: a request's messages arrive as length-prefixed protobuf in DATA
frames, the answer goes back the same way, then trailers with the status.

Nothing of a secret is logged: the values are registered for redaction by
whoever read them, and this module never puts one in a message.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import anyio.abc

if TYPE_CHECKING:
    from h2.connection import H2Connection

    from .endpoints import Endpoint

from ..errors import EngineError, reason
from ..support.protowire import field_bytes, field_varint, fields, text

GET_SECRET = "/moby.buildkit.secrets.v1.Secrets/GetSecret"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
CHECK_AGENT = "/moby.sshforward.v1.SSH/CheckAgent"
FORWARD_AGENT = "/moby.sshforward.v1.SSH/ForwardAgent"
CREDENTIALS = "/moby.filesync.v1.Auth/Credentials"
#: The call metadata that names the SSH agent a ``ForwardAgent`` wants.
SSH_ID_KEY = "buildkit.ssh.id"
#: The id of ``RUN --mount=type=ssh`` without one (``--ssh default``).
DEFAULT_SSH = "default"
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
    #: A forwarded SSH agent's connection (``ForwardAgent`` calls only).
    agent: anyio.abc.SocketStream | None = None


@dataclass
class _Outgoing:
    """What is left to send on one stream (the window may not take it at once); the
    trailers once the answer is complete (None: more may come)."""

    data: bytearray
    trailers: list[tuple[str, str]] | None


def _str(value: str | bytes) -> str:
    """A header name or value (h2 gives str with a header encoding set)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _frame(message: bytes) -> bytes:
    """A gRPC message: uncompressed, its length, itself."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def _take_messages(body: bytearray) -> list[bytes]:
    """The complete gRPC messages at the start of ``body`` (removed from it)."""
    found: list[bytes] = []
    while len(body) >= 5:
        size = int.from_bytes(body[1:5], "big")
        if len(body) < 5 + size:
            break
        found.append(bytes(body[5 : 5 + size]))
        del body[: 5 + size]
    return found


@dataclass
class _Connection:
    """One served HTTP/2 connection: its state machine, its socket, what is queued;
    every use of the state machine holds ``lock`` (agent pumps run beside the reader)."""

    conn: H2Connection
    stream: anyio.abc.ByteStream
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    calls: dict[int, _Call] = field(default_factory=dict)
    outgoing: dict[int, _Outgoing] = field(default_factory=dict)

    def send_pending(self) -> None:
        """Send what the flow-control windows take; trailers once a stream's data is out."""
        conn = self.conn
        for stream_id in list(self.outgoing):
            pending = self.outgoing[stream_id]
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
            if not pending.data and pending.trailers is not None:
                conn.send_headers(stream_id, pending.trailers, end_stream=True)
                del self.outgoing[stream_id]

    async def flush(self) -> None:
        """Send what the state machine has queued."""
        out = self.conn.data_to_send()
        if out:
            await self.stream.send(out)


class SessionServer:
    """The gRPC methods we serve to the engine's BuildKit during a build: secrets by id;
    with ``ssh`` (id -> an agent's socket), SSH agent forwarding; with ``logins``
    (registry host -> username and secret), registry credentials."""

    def __init__(
        self,
        secrets: Mapping[str, bytes],
        ssh: Mapping[str, str] | None = None,
        logins: Mapping[str, tuple[str, str]] | None = None,
    ) -> None:
        self.secrets = dict(secrets)
        self.ssh = dict(ssh or {})
        self.logins = dict(logins or {})
        #: The secret ids and registry hosts asked for (never values).
        self.asked: list[str] = []

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods to name in the upgrade request."""
        return (
            GET_SECRET,
            HEALTH_CHECK,
            *((CHECK_AGENT, FORWARD_AGENT) if self.ssh else ()),
            *((CREDENTIALS,) if self.logins else ()),
        )

    def answer(self, path: str, request: bytes) -> tuple[int, bytes, str]:
        """``(grpc status, response message, message)`` of one unary call."""
        if path == HEALTH_CHECK:
            return OK, field_varint(1, 1), ""  # SERVING
        if path == CREDENTIALS and self.logins:
            try:
                host = next(text(v) for n, v in fields(request) if n == 1)
            except (StopIteration, ValueError):
                host = ""
            self.asked.append(host)
            if host not in self.logins:
                return OK, b"", ""  # (none: BuildKit goes on without a login)
            username, secret = self.logins[host]
            return OK, field_bytes(1, username.encode()) + field_bytes(2, secret.encode()), ""
        if path in (GET_SECRET, CHECK_AGENT):
            try:
                wanted = next(text(v) for n, v in fields(request) if n == 1)
            except (StopIteration, ValueError):
                wanted = "" if path == GET_SECRET else DEFAULT_SSH
            if path == CHECK_AGENT:
                if (wanted or DEFAULT_SSH) in self.ssh:
                    return OK, b"", ""
                return NOT_FOUND, b"", f"no SSH agent {wanted or DEFAULT_SSH} was given"
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

        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        conn.initiate_connection()
        served = _Connection(conn, stream)
        data = first
        async with anyio.create_task_group() as tg:
            while True:
                async with served.lock:
                    for event in conn.receive_data(data) if data else ():
                        if not await self._event(served, event, tg):
                            await served.flush()
                            tg.cancel_scope.cancel()
                            return
                    served.send_pending()
                    await served.flush()
                try:
                    data = await stream.receive(65536)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    tg.cancel_scope.cancel()
                    return

    async def _event(self, served: _Connection, event: object, tg: anyio.abc.TaskGroup) -> bool:
        """Handle one HTTP/2 event (with the lock held); False when the connection ends."""
        import h2.events

        conn, calls = served.conn, served.calls
        if isinstance(event, h2.events.RequestReceived):
            headers = {_str(k): _str(v) for k, v in event.headers or ()}
            calls[event.stream_id] = _Call(headers.get(":path", ""))
            if headers.get(":path") == FORWARD_AGENT:
                await self._forward(served, event.stream_id, headers.get(SSH_ID_KEY), tg)
        elif isinstance(event, h2.events.DataReceived):
            receiving = calls.get(event.stream_id)
            if receiving is not None:
                receiving.body += event.data
                if receiving.agent is not None:
                    for message in _take_messages(receiving.body):
                        chunk = next((v for n, v in fields(message) if n == 1), b"")
                        with contextlib.suppress(anyio.BrokenResourceError, OSError):
                            await receiving.agent.send(chunk if isinstance(chunk, bytes) else b"")
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            ended = calls.get(event.stream_id)
            if ended is not None and ended.agent is not None:
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    await ended.agent.send_eof()  # (the agent answers what is left, then closes)
            elif ended is not None:
                del calls[event.stream_id]
                served.outgoing[event.stream_id] = self._respond(conn, event.stream_id, ended)
        elif isinstance(event, h2.events.StreamReset):
            reset = calls.pop(event.stream_id, None)
            served.outgoing.pop(event.stream_id, None)
            if reset is not None and reset.agent is not None:
                await reset.agent.aclose()
        elif isinstance(event, h2.events.ConnectionTerminated):
            return False
        return True

    async def _forward(
        self, served: _Connection, stream_id: int, wanted: str | None, tg: anyio.abc.TaskGroup
    ) -> None:
        """Start forwarding stream ``stream_id`` to the SSH agent ``wanted``."""
        socket = self.ssh.get(wanted or DEFAULT_SSH)
        served.conn.send_headers(
            stream_id, [(":status", "200"), ("content-type", "application/grpc")]
        )
        agent = None
        if socket is not None:
            with contextlib.suppress(OSError):
                agent = await anyio.connect_unix(socket)
        if agent is None:
            detail = f"no SSH agent {wanted or DEFAULT_SSH} could be reached"
            served.calls.pop(stream_id, None)
            served.outgoing[stream_id] = _Outgoing(
                bytearray(), [("grpc-status", str(NOT_FOUND)), ("grpc-message", detail)]
            )
            return
        served.calls[stream_id].agent = agent
        served.outgoing[stream_id] = _Outgoing(bytearray(), None)
        tg.start_soon(self._pump, served, stream_id, agent)

    @staticmethod
    async def _pump(served: _Connection, stream_id: int, agent: anyio.abc.SocketStream) -> None:
        """The agent's answers, back to BuildKit as ``BytesMessage``s, until it closes."""
        try:
            while True:
                try:
                    chunk = await agent.receive(65536)
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    break
                async with served.lock:
                    pending = served.outgoing.get(stream_id)
                    if pending is None:
                        break  # (reset by the engine)
                    pending.data += _frame(field_bytes(1, chunk))
                    served.send_pending()
                    await served.flush()
        finally:
            with anyio.CancelScope(shield=True):
                await agent.aclose()
                async with served.lock:
                    served.calls.pop(stream_id, None)
                    pending = served.outgoing.get(stream_id)
                    if pending is not None:
                        pending.trailers = [("grpc-status", str(OK))]
                        served.send_pending()
                        with contextlib.suppress(anyio.BrokenResourceError, OSError):
                            await served.flush()

    def _respond(self, conn: H2Connection, stream_id: int, call: _Call) -> _Outgoing:
        status, message, detail = self.answer(call.path, b"".join(_take_messages(call.body)))
        conn.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
        trailers = [("grpc-status", str(status))]
        if detail:
            trailers.append(("grpc-message", detail))
        return _Outgoing(bytearray(_frame(message)) if status == OK else bytearray(), trailers)


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


async def api_connection(url: str, target: Endpoint | None, label: str) -> anyio.abc.ByteStream:
    """A connection of our own to the engine's API at ``url`` (what a session is
    upgraded on): its unix socket, or TCP with ``target``'s TLS."""
    if url.startswith("unix://"):
        return await anyio.connect_unix(url.removeprefix("unix://"))
    if url.startswith(("tcp://", "http://", "https://")):
        parts = urlsplit(url.replace("tcp://", "http://", 1))
        host = parts.hostname or "127.0.0.1"
        context = target.ssl_context() if target is not None else None
        if context is None:
            return await anyio.connect_tcp(host, parts.port or 2375)
        return await anyio.connect_tcp(
            host, parts.port or 2376, ssl_context=context, tls_standard_compatible=False
        )
    raise EngineError(
        f"{label}: secrets and SSH forwarding need a unix:// or tcp:// engine, not"
        f" {url.split('://', 1)[0]}://"
    )
