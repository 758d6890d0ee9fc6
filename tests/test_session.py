"""The BuildKit session server (engine/session), driven over a socket pair by an
HTTP/2 client as the engine's BuildKit drives it: a secret by id, an unknown one, the
health check, a method we do not serve, and a secret larger than the flow-control
window."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import pytest

from mzbuild_async.engine.session import (
    CHECK_AGENT,
    CREDENTIALS,
    FORWARD_AGENT,
    GET_SECRET,
    HEALTH_CHECK,
    SessionServer,
)
from mzbuild_async.support.protowire import field_bytes, fields

pytestmark = pytest.mark.anyio


def _frame(message: bytes) -> bytes:
    return b"\0" + len(message).to_bytes(4, "big") + message


async def _call(
    stream: anyio.abc.ByteStream, conn: h2.connection.H2Connection, path: str, message: bytes
) -> tuple[dict[str, str], bytes]:
    """One unary gRPC call: the response's headers and trailers, and its body."""
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(
        stream_id,
        [(":method", "POST"), (":path", path), (":scheme", "http"), (":authority", "x"),
         ("content-type", "application/grpc"), ("te", "trailers")],
    )  # fmt: skip
    conn.send_data(stream_id, _frame(message), end_stream=True)
    await stream.send(conn.data_to_send())
    headers: dict[str, str] = {}
    body = bytearray()
    while True:
        for event in conn.receive_data(await stream.receive(65536)):
            if isinstance(event, h2.events.ResponseReceived | h2.events.TrailersReceived):
                headers.update({str(k): str(v) for k, v in event.headers or ()})
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                await stream.send(conn.data_to_send())
                return headers, bytes(body[5:])
        await stream.send(conn.data_to_send())


@asynccontextmanager
async def _serving(
    server: SessionServer,
) -> AsyncIterator[tuple[anyio.abc.ByteStream, h2.connection.H2Connection]]:
    """The server on one end of a socket pair; an HTTP/2 client on the other, as the
    engine's BuildKit is."""
    ours, theirs = socket.socketpair()
    served = await anyio.abc.UNIXSocketStream.from_socket(ours)
    client = await anyio.abc.UNIXSocketStream.from_socket(theirs)
    async with served, client, anyio.create_task_group() as tg:
        tg.start_soon(server.serve, served, b"")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
        conn.initiate_connection()
        await client.send(conn.data_to_send())
        yield client, conn
        tg.cancel_scope.cancel()


async def test_the_server_answers_as_buildkit_expects() -> None:
    big = bytes(range(256)) * 800  # 200 KB: more than the 64 KB initial window
    server = SessionServer({"npm": b"s3cret", "cert": big})
    async with _serving(server) as (client, conn):
        headers, body = await _call(client, conn, GET_SECRET, field_bytes(1, b"npm"))
        assert headers["grpc-status"] == "0"
        assert dict(fields(body)) == {1: b"s3cret"}
        headers, body = await _call(client, conn, GET_SECRET, field_bytes(1, b"cert"))
        assert (headers["grpc-status"], dict(fields(body))) == ("0", {1: big})
        headers, body = await _call(client, conn, GET_SECRET, field_bytes(1, b"pip"))
        assert (headers["grpc-status"], headers["grpc-message"]) == ("5", "secret pip not found")
        headers, body = await _call(client, conn, HEALTH_CHECK, b"")
        assert (headers["grpc-status"], dict(fields(body))) == ("0", {1: 1})
        headers, _ = await _call(client, conn, CREDENTIALS, field_bytes(1, b"r.example:5000"))
        assert headers["grpc-status"] == "12"  # (no logins given: not served)
        headers, _ = await _call(client, conn, CHECK_AGENT, b"")
        assert (headers["grpc-status"], headers["grpc-message"]) == (
            "5",
            "no SSH agent default was given",
        )
    assert server.asked == ["npm", "cert", "pip"]


async def test_registry_credentials_go_to_their_host_only() -> None:
    """``Auth/Credentials``: the username and secret of the host asked about; for a
    host we have none for, an empty answer (BuildKit then goes anonymous)."""
    server = SessionServer({}, logins={"127.0.0.1:5000": ("ci", "hunter2")})
    assert CREDENTIALS in server.methods
    assert CREDENTIALS not in SessionServer({}).methods
    async with _serving(server) as (client, conn):
        headers, body = await _call(client, conn, CREDENTIALS, field_bytes(1, b"127.0.0.1:5000"))
        assert (headers["grpc-status"], dict(fields(body))) == ("0", {1: b"ci", 2: b"hunter2"})
        headers, body = await _call(client, conn, CREDENTIALS, field_bytes(1, b"other:5000"))
        assert (headers["grpc-status"], body) == ("0", b"")
    assert server.asked == ["127.0.0.1:5000", "other:5000"]


async def test_an_agent_is_forwarded_both_ways(tmp_path: Path) -> None:
    """``ForwardAgent`` (a stream both ways): what BuildKit sends reaches the agent's
    socket, what the agent answers comes back as BytesMessages, and the call ends with
    a status once BuildKit is done and the agent closed. Here the agent echoes."""
    path = tmp_path / "agent.sock"
    listener = await anyio.create_unix_listener(path)

    async def echo(connection: anyio.abc.SocketStream) -> None:
        async with connection:
            async for chunk in connection:
                await connection.send(b"agent:" + chunk)

    server = SessionServer({}, {"default": str(path)})
    ours, theirs = socket.socketpair()
    served = await anyio.abc.UNIXSocketStream.from_socket(ours)
    client = await anyio.abc.UNIXSocketStream.from_socket(theirs)
    async with served, client, listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        tg.start_soon(server.serve, served, b"")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
        conn.initiate_connection()
        headers, _ = await _call(client, conn, CHECK_AGENT, b"")
        assert headers["grpc-status"] == "0"
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            stream_id,
            [(":method", "POST"), (":path", FORWARD_AGENT), (":scheme", "http"),
             (":authority", "x"), ("content-type", "application/grpc")],
        )  # fmt: skip
        conn.send_data(stream_id, _frame(field_bytes(1, b"hello")))
        await client.send(conn.data_to_send())
        answered, trailers, ended = bytearray(), dict[str, str](), False
        while b"agent:hello" not in answered or not trailers:
            for event in conn.receive_data(await client.receive(65536)):
                if isinstance(event, h2.events.DataReceived):
                    answered += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.TrailersReceived):
                    trailers = {str(k): str(v) for k, v in event.headers or ()}
            if b"agent:hello" in answered and not ended:
                conn.end_stream(stream_id)  # (BuildKit is done: the agent sees EOF, closes)
                ended = True
            await client.send(conn.data_to_send())
        assert dict(fields(bytes(answered[5:]))) == {1: b"agent:hello"}
        assert trailers["grpc-status"] == "0"
        tg.cancel_scope.cancel()


def test_registry_logins_alone_never_need_a_session_an_engine_cannot_open() -> None:
    """A session is a connection of our own to the engine: over ssh:// there is none,
    so a build whose only use for one is registry logins goes without (anonymous),
    instead of failing; unix and tcp engines open one."""
    from mzbuild_async.engine.docker import DockerEngine
    from mzbuild_async.engine.endpoints import Endpoint

    assert DockerEngine()._sessions_reach()
    for url, reaches in (
        ("unix:///run/docker.sock", True),
        ("tcp://127.0.0.1:2376", True),
        ("ssh://builder@host", False),
    ):
        assert DockerEngine(endpoint=Endpoint("e", url))._sessions_reach() is reaches
