"""A real OTLP/HTTP trace receiver on loopback, decoding with the OpenTelemetry
protobuf definitions (independently of the SDK that sent them)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as it arrived."""

    trace_id: str
    span_id: str
    parent_id: str
    name: str
    attributes: dict[str, Any]
    start_ns: int
    end_ns: int
    error: bool
    service: str
    #: OTLP's span kind: 1 internal, 3 client.
    kind: int = 0


@dataclass
class Receiver:
    """Where spans land."""

    url: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)
    #: Each request as OTLP JSON (a collector's file exporter writes these lines).
    json_lines: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def traces(self) -> dict[str, list[ReceivedSpan]]:
        """The spans by trace id."""
        found: dict[str, list[ReceivedSpan]] = {}
        for span in self.spans:
            found.setdefault(span.trace_id, []).append(span)
        return found


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ``ExportTraceServiceRequest``."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    found: list[ReceivedSpan] = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    ReceivedSpan(
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.name,
                        {a.key: _value(a.value) for a in span.attributes},
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        span.status.code == 2,
                        str(resource.get("service.name", "")),
                        span.kind,
                    )
                )
    return found


def as_json(body: bytes) -> str:
    """One request in OTLP JSON, on one line (ids in hex, as OTLP JSON has them)."""
    import base64
    import json

    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    document = MessageToDict(request)
    for resource in document.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A receiver at ``http://127.0.0.1:PORT`` (base URL) until the block ends."""
    state: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            spans = decode(body) if self.path == "/v1/traces" else []
            line = as_json(body) if self.path == "/v1/traces" else ""
            with state[0].lock:
                if line:
                    state[0].json_lines.append(line)
                state[0].requests += 1
                state[0].headers.append(dict(self.headers))
                state[0].spans += spans
            self.send_response(200 if self.path == "/v1/traces" else 404)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _serving(Handler) as url:
        state.append(Receiver(url))
        yield state[0]


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` served on a free loopback port from a thread; its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Trickler:
    """An endpoint that answers 200 and then sends its body a byte at a time."""

    url: str
    #: Set when the first request has arrived.
    asked: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)


@contextmanager
def trickler(interval: float = 0.5) -> Iterator[Trickler]:
    """A trickling endpoint at ``http://127.0.0.1:PORT`` until the block ends: it
    reads the request, promises a megabyte and sends one byte every ``interval``."""
    state: list[Trickler] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            state[0].asked.set()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(1 << 20))
            self.end_headers()
            while not state[0].stop.wait(interval):
                try:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                except OSError:
                    return

        def log_message(self, format: str, *args: object) -> None:
            pass

    with _serving(Handler) as url:
        state.append(Trickler(url))
        try:
            yield state[0]
        finally:
            state[0].stop.set()  # (before the server's shutdown waits for its handlers)
