"""OpenTelemetry: a run's spans exported over OTLP/HTTP, when an endpoint is set.

With ``--otlp URL``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_ENDPOINT``, every build run (and ``check``) exports one span tree
when it ends: the run; fingerprinting; the lookups (each tier's answer per image, the
registry's as client spans with ``http.*``, ``server.address`` and ``server.port``, as
the semantic conventions have them); cargo; and per image its
pulls, builds and pushes, with ``mzbuild.image``, ``mzbuild.fingerprint`` and
``mzbuild.engine``. A CI step continues ``TRACEPARENT``, else the trace its
pipeline run derives (:mod:`..support.tracecontext`), so the steps of one
pipeline, on any number of agents, are one trace; ``pipeline`` exports that
trace's root span. No credential goes into a span (specs and hosts only).

Nothing here is imported, and nothing costs anything, without an endpoint.
An endpoint that cannot take the spans is one warning (``EXPORT_SECONDS`` at
most, whatever the endpoint does: the whole export is under one deadline, on
the event loop, so signals stop it at once); the run's exit status is its own.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from ..errors import reason
from ..support.tracecontext import TraceParent
from ..support.version import VERSION
from ..workflow.check import CheckResult
from ..workflow.intervals import Interval
from ..workflow.results import ImageResult, RunResult

#: The longest an export may take (a stalled endpoint delays the end of the run by this).
EXPORT_SECONDS = 3.0
#: How long connecting may take before an endpoint counts as unreachable.
CONNECT_SECONDS = 0.5
#: The standard's HTTP method for each registry lookup tier.
_METHODS = {"registry": "HEAD", "manifest": "GET"}
_HTTP_STATUS = {"present": 200, "absent": 404}


def endpoint(environ: Mapping[str, str], flag: str | None = None) -> str | None:
    """The OTLP/HTTP traces URL (None: export nothing). ``--otlp`` and
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` are base URLs (``/v1/traces`` is appended);
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as it is."""
    if flag:
        return _traces(flag)
    full = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if full:
        return full
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return _traces(base) if base else None


def _traces(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def export_seconds(environ: Mapping[str, str]) -> float:
    """The export's deadline: ``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` or
    ``OTEL_EXPORTER_OTLP_TIMEOUT`` (milliseconds, as the standard says), else
    ``EXPORT_SECONDS``; a value that is no positive number is the default."""
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        text = environ.get(name, "").strip()
        if text:
            try:
                milliseconds = float(text)
            except ValueError:
                return EXPORT_SECONDS
            return milliseconds / 1000 if 0 < milliseconds < float("inf") else EXPORT_SECONDS
    return EXPORT_SECONDS


def headers(environ: Mapping[str, str]) -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` (``key=value,...``, values URL-encoded)."""
    from urllib.parse import unquote

    found: dict[str, str] = {}
    for item in environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            found[key.strip()] = unquote(value.strip())
    return found


@dataclass
class Node:
    """One span to be: times in seconds since the run started."""

    name: str
    start: float
    end: float
    attributes: dict[str, Any] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    error: str = ""
    #: ``client`` for a request to another service (a registry's lookup), else internal.
    kind: str = "internal"


def run_tree(result: RunResult, command: str, registry_host: str) -> Node:
    """The span tree of a build run."""
    root = Node(
        f"mzbuild-async {command}",
        0.0,
        result.seconds,
        {
            "mzbuild.command": command,
            "mzbuild.images": len(result.images),
            "mzbuild.ok": result.ok,
            **({"mzbuild.step": result.step} if result.step else {}),
            **({"mzbuild.platform": result.platform} if result.platform else {}),
        },
    )
    lookup: Node | None = None
    images: dict[str, Node] = {}
    builds: dict[str, list[Node]] = {}
    for step in result.steps:
        if step.inner:
            continue
        if step.track in ("fingerprint", "lookup", "cargo"):
            node = _run_step(step)
            root.children.append(node)
            if step.track == "lookup":
                lookup = node
            continue
        if step.track.startswith("lookup: "):
            (lookup or root).children.append(_lookup(step, registry_host))
            continue
        image = result.images.get(step.track)
        holder = images.get(step.track)
        if holder is None:
            holder = images[step.track] = _image_node(step, image)
            root.children.append(holder)
        holder.start, holder.end = min(holder.start, step.start), max(holder.end, step.end)
        node = Node(
            f"{step.phase} {step.track}",
            step.start,
            step.end,
            {"mzbuild.image": step.track, "mzbuild.phase": step.phase},
        )
        if step.engine:
            node.attributes["mzbuild.engine"] = step.engine
            holder.attributes["mzbuild.engine"] = step.engine
        if image is not None:
            node.attributes["mzbuild.fingerprint"] = holder.attributes["mzbuild.fingerprint"]
        if step.status == "failed":
            node.error = step.detail or "failed"
        holder.children.append(node)
        if step.phase == "build":
            builds.setdefault(step.track, []).append(node)
    for step in (s for s in result.steps if s.inner):
        _build_step(step, builds.get(step.track, []) or [images.get(step.track) or root])
    return root


def _run_step(step: Interval) -> Node:
    """A step of the run itself (fingerprinting, the lookups, cargo)."""
    node = Node(step.name, step.start, step.end, {"mzbuild.phase": step.phase})
    if step.detail:
        node.attributes["mzbuild.detail"] = step.detail
    if step.status == "failed":
        node.error = step.detail or "failed"
    return node


def _image_node(step: Interval, image: ImageResult | None) -> Node:
    """The span holding one image's work."""
    holder = Node(f"image {step.track}", step.start, step.end, {"mzbuild.image": step.track})
    if image is not None:
        holder.attributes["mzbuild.fingerprint"] = image.spec.rsplit("mzbuild-", 1)[-1]
        holder.attributes["mzbuild.spec"] = image.spec
        holder.attributes["mzbuild.action"] = image.action
        holder.error = image.error
    return holder


def _build_step(step: Interval, parents: list[Node]) -> None:
    """A step inside an image's build (a BuildKit vertex), as a child of the build it
    ran in (the one whose span holds it, else the last)."""
    node = Node(
        step.name[:200],
        step.start,
        step.end,
        {
            "mzbuild.image": step.track,
            "mzbuild.phase": step.phase,
            "mzbuild.cached": step.status == "cached",
        },
    )
    if step.status == "failed":
        node.error = "failed"
    if step.engine:
        node.attributes["mzbuild.engine"] = step.engine
    holder = next((p for p in parents if p.start <= step.start and step.end <= p.end), parents[-1])
    holder.children.append(node)


def check_tree(result: CheckResult, registry_host: str) -> Node:
    """The span tree of ``check``: the command, then each tier's answer per image."""
    root = Node(
        "mzbuild-async check",
        0.0,
        result.seconds,
        {
            "mzbuild.command": "check",
            "mzbuild.images": len(result.specs),
            "mzbuild.definite": result.definite,
        },
    )
    for span in result.spans:
        step = Interval(f"lookup: {span.tier}", span.spec.rsplit("/", 1)[-1], "lookup",
                        span.start, span.end, span.status)  # fmt: skip
        root.children.append(_lookup(step, registry_host))
    return root


def _lookup(step: Interval, registry_host: str) -> Node:
    """One tier's answer about one image (the registry's as an HTTP request)."""
    tier = step.track.removeprefix("lookup: ")
    name = step.name.partition(":")[0]
    node = Node(
        f"lookup {tier} {name}",
        step.start,
        step.end,
        {"mzbuild.image": name, "mzbuild.tier": tier, "mzbuild.status": step.status},
    )
    if tier in _METHODS:  # an HTTP request: a client span, as the conventions have it
        from opentelemetry.semconv.attributes import http_attributes, server_attributes

        node.kind = "client"
        node.attributes[http_attributes.HTTP_REQUEST_METHOD] = _METHODS[tier]
        address, port = _host_and_port(registry_host)
        node.attributes[server_attributes.SERVER_ADDRESS] = address
        if port is not None:
            node.attributes[server_attributes.SERVER_PORT] = port
        if step.status in _HTTP_STATUS:
            node.attributes[http_attributes.HTTP_RESPONSE_STATUS_CODE] = _HTTP_STATUS[step.status]
    return node


def _host_and_port(host: str) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` of a registry host (``[::1]:5000`` too)."""
    address, sep, port = host.rpartition(":")
    if sep and port.isdigit() and (not address.startswith("[") or address.endswith("]")):
        return address.strip("[]"), int(port)
    return host.strip("[]"), None


def _spans(
    root: Node, started_ns: int, parent: TraceParent | None, *, root_span_id: int | None = None
) -> Any:
    """The SDK's finished spans of ``root`` (``root_span_id``: the root's own id)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.trace import (
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        set_span_in_context,
    )

    class _Ids(RandomIdGenerator):
        """Random ids, but the root's span id when it is given (a pipeline's root)."""

        def __init__(self) -> None:
            self.first = root_span_id

        def generate_span_id(self) -> int:
            if self.first is not None:
                first, self.first = self.first, None
                return first
            return super().generate_span_id()

        def generate_trace_id(self) -> int:
            return parent.trace_id if parent is not None else super().generate_trace_id()

    provider = TracerProvider(
        resource=Resource.create(
            {
                "service.name": "mzbuild-async",
                "service.version": VERSION,
                "host.name": socket.gethostname(),
                "process.pid": os.getpid(),
            }
        ),
        id_generator=_Ids(),
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("mzbuild_async", VERSION)
    context = None
    if parent is not None and root_span_id is None:
        remote = SpanContext(
            parent.trace_id, parent.span_id, is_remote=True, trace_flags=TraceFlags(1)
        )
        context = set_span_in_context(NonRecordingSpan(remote))

    def emit(node: Node, context: Any) -> None:
        span = tracer.start_span(
            node.name,
            context=context,
            kind=SpanKind.CLIENT if node.kind == "client" else SpanKind.INTERNAL,
            start_time=started_ns + int(node.start * 1e9),
            attributes=node.attributes,
        )
        if node.error:
            span.set_status(Status(StatusCode.ERROR, node.error[:500]))
        inner = set_span_in_context(span)
        for child in node.children:
            emit(child, inner)
        span.end(end_time=started_ns + int(max(node.end, node.start) * 1e9))

    emit(root, context)
    spans = memory.get_finished_spans()
    provider.shutdown()
    return spans


def _encoded(
    root: Node, started_ns: int, parent: TraceParent | None, root_span_id: int | None
) -> tuple[int, bytes]:
    """How many spans, and the OTLP protobuf request carrying them."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = _spans(root, started_ns, parent, root_span_id=root_span_id)
    return len(spans), encode_spans(spans).SerializeToString()


#: Answers after which another try may succeed (OTLP/HTTP's retryable statuses).
_RETRYABLE = frozenset({429, 502, 503, 504})


async def export(
    root: Node,
    started_ns: int,
    url: str,
    *,
    parent: TraceParent | None = None,
    root_span_id: int | None = None,
    header_values: Mapping[str, str] | None = None,
    timeout: float = EXPORT_SECONDS,
    transport: httpx.AsyncBaseTransport | None = None,
) -> str:
    """Send the tree; "" when the endpoint took it, else why not (one line).

    ``timeout`` bounds the whole export (connecting, sending, every read of the
    answer, retries): an endpoint that answers and then trickles its body costs
    that long, no more. It runs on the event loop, so a signal cancels it at once.
    """
    try:
        import opentelemetry.exporter.otlp.proto.common.trace_encoder
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return (
            "OpenTelemetry is not installed (pip install opentelemetry-sdk"
            " opentelemetry-exporter-otlp-proto-http); no spans were sent"
        )
    # Encoding is finite CPU work: a worker thread keeps the loop free meanwhile.
    count, body = await anyio.to_thread.run_sync(_encoded, root, started_ns, parent, root_span_id)
    sent = {"Content-Type": "application/x-protobuf", **dict(header_values or {})}
    started = time.monotonic()
    detail = ""
    with anyio.move_on_after(timeout) as scope:
        limits = httpx.Timeout(timeout, connect=min(CONNECT_SECONDS, timeout))
        async with httpx.AsyncClient(timeout=limits, transport=transport) as client:
            for attempt in range(3):
                try:
                    response = await client.post(url, content=body, headers=sent)
                except httpx.ConnectError as exc:
                    return (
                        f"{url}: the OpenTelemetry endpoint cannot be reached"
                        f" ({reason(exc)}); the run's {count} spans were not"
                        " sent, the run itself is unaffected"
                    )
                except httpx.HTTPError as exc:
                    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                    break
                if 200 <= response.status_code < 300:
                    return ""
                detail = f"it answered {response.status_code}"
                if response.status_code not in _RETRYABLE:
                    break
                await anyio.sleep(0.2 * 2**attempt)
    if scope.cancelled_caught:
        detail = f"no complete answer within {timeout:g} s"
    took = time.monotonic() - started
    return (
        f"{url}: the OpenTelemetry endpoint did not take the run's {count} spans"
        f" ({detail or f'gave up after {took:.1f} s'}); the run itself is unaffected"
    )
