"""The BuildKit session server (engine/session), driven over a socket pair by an
HTTP/2 client as the engine's BuildKit drives it: a secret by id, an unknown one, the
health check, a method we do not serve, and a secret larger than the flow-control
window."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import h2.config
import h2.connection
import h2.events
import pytest

from mzbuild_async.engine.session import GET_SECRET, HEALTH_CHECK, SessionServer
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


async def test_the_server_answers_as_buildkit_expects() -> None:
    big = bytes(range(256)) * 800  # 200 KB: more than the 64 KB initial window
    server = SessionServer({"npm": b"s3cret", "cert": big})
    ours, theirs = socket.socketpair()
    served = await anyio.abc.UNIXSocketStream.from_socket(ours)
    client = await anyio.abc.UNIXSocketStream.from_socket(theirs)
    async with served, client, anyio.create_task_group() as tg:
        tg.start_soon(server.serve, served, b"")
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding="utf-8"))
        conn.initiate_connection()
        await client.send(conn.data_to_send())
        headers, body = await _call(client, conn, GET_SECRET, field_bytes(1, b"npm"))
        assert headers["grpc-status"] == "0"
        assert dict(fields(body)) == {1: b"s3cret"}
        headers, body = await _call(client, conn, GET_SECRET, field_bytes(1, b"cert"))
        assert (headers["grpc-status"], dict(fields(body))) == ("0", {1: big})
        headers, body = await _call(client, conn, GET_SECRET, field_bytes(1, b"pip"))
        assert (headers["grpc-status"], headers["grpc-message"]) == ("5", "secret pip not found")
        headers, body = await _call(client, conn, HEALTH_CHECK, b"")
        assert (headers["grpc-status"], dict(fields(body))) == ("0", {1: 1})
        headers, _ = await _call(client, conn, "/moby.sshforward.v1.SSH/CheckAgent", b"")
        assert headers["grpc-status"] == "12"
        tg.cancel_scope.cancel()
    assert server.asked == ["npm", "cert", "pip"]
