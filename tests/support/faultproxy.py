"""A fault-injecting HTTP/1.1 reverse proxy for registry tests and benchmarks.

Put it in front of a registry and turn faults on and off while a test runs:
added latency, ``429`` with ``Retry-After`` (delay seconds, an HTTP date, a
GHCR-style body hint, or nothing), bursts of 5xx, connection resets,
stalled responses, and a rate limit of R requests per second that it does
not announce. It can also route the registry's token endpoint through
itself (``proxy_token``), so token requests get the same faults.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio
import anyio.abc
import anyio.from_thread
import httpx

HOP_HEADERS = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-encoding",
    "content-length",
}
TOKEN_PREFIX = "/__token__"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass
class Faults:
    """What the proxy does to the next requests; change fields while it runs."""

    latency: float = 0.0
    #: The next N requests get 429.
    throttle: int = 0
    #: "seconds", "date", "body" (GHCR hint) or "none": how a 429 says when to retry.
    retry_after_form: str = "seconds"
    retry_after: float = 1.0
    #: The next N requests get 503.
    errors: int = 0
    #: The next N requests have their connection closed without an answer.
    resets: int = 0
    #: The next N requests never get an answer.
    stalls: int = 0
    #: Sustained requests per second allowed; beyond it, 429 without any hint.
    rate: float | None = None
    #: The next N requests get 200 with an HTML page instead of the real answer.
    garbage: int = 0
    #: The next N answers carry a 100 KB header.
    huge_headers: int = 0
    #: Answer every HEAD with 405 (a registry that refuses HEAD).
    refuse_head: bool = False
    #: Answer every HEAD and GET of a manifest with 503 (the registry cannot tell).
    unavailable_manifests: bool = False
    #: Answer every HEAD of a manifest with 200 and a made-up digest (a lying
    #: cache in front of the registry; GETs still tell the truth).
    head_present: bool = False
    #: Refuse every manifest PUT but failure markers' (``*.failed``) with 403 and a
    #: body that quotes the request's Authorization header and its ``user:password``
    #: (a registry that echoes credentials into its errors).
    echo_credentials: bool = False
    #: Hold each manifest request until this many are in flight at once (or
    #: ``gate_seconds`` pass): shows, without timing, how many a client sends at once.
    gate: int = 0
    gate_seconds: float = 5.0
    #: Hold manifest PUTs until this many are waiting (or ``gate_seconds`` pass), then
    #: let them through one at a time in arrival order, reads of the same paths held
    #: until all of them are through: two writers that both found a tag free both
    #: write it before either reads it back, deterministically.
    put_barrier: int = 0
    #: Answer the OCI 1.1 referrers API (``GET /v2/<name>/referrers/<digest>``) from the
    #: artifacts pushed through the proxy, and say ``OCI-Subject`` when one is pushed
    #: (a registry with the API, in front of one without it).
    referrers_api: bool = False
    #: Answer every HEAD and GET of a manifest with 404 MANIFEST_UNKNOWN (a tag the
    #: listing names but the registry cannot find: eventual consistency, a broken store).
    missing_manifests: bool = False
    #: Answer every manifest PUT with 201 and no digest header, storing nothing (a
    #: broken cache or proxy in front of a registry).
    swallow_manifest_puts: bool = False
    #: Tags added to every tag list (names no registry would store: NUL, newline).
    extra_tags: tuple[str, ...] = ()
    #: Faults apply only to paths containing this (None: every path)...
    only: str | None = None
    #: ...and only to these methods (None: every method).
    methods: tuple[str, ...] | None = None


@dataclass
class FaultProxy:
    """The proxy; run :meth:`serve` in a task group."""

    upstream: str
    faults: Faults = field(default_factory=Faults)
    #: The token realm to route through ``/__token__`` (when proxying tokens).
    token_realm: str | None = None
    counts: Counter[str] = field(default_factory=Counter)
    port: int = 0

    def __post_init__(self) -> None:
        self._bucket = 0.0
        self._updated = time.monotonic()
        self._lock = anyio.Lock()
        #: Manifest requests in flight now, and the most there ever were.
        self.in_flight = 0
        self.most_in_flight = 0
        self._gate_open = anyio.Event()
        self._puts_waiting = 0
        self._puts_open = anyio.Event()
        self._put_turn = anyio.Lock()
        self._puts_through = 0
        self._puts_done = anyio.Event()
        #: With ``referrers_api``: (repository, subject digest) -> descriptors.
        self.referrers: dict[tuple[str, str], list[dict[str, object]]] = {}

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` of the listening proxy."""
        return f"127.0.0.1:{self.port}"

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on a free loopback port until cancelled."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with httpx.AsyncClient(timeout=30) as client, listener:
            self._client = client
            task_status.started()
            await listener.serve(self._connection)

    def _take(self, name: str) -> bool:
        remaining = getattr(self.faults, name)
        if remaining > 0:
            setattr(self.faults, name, remaining - 1)
            return True
        return False

    async def _over_rate(self) -> bool:
        rate = self.faults.rate
        if rate is None:
            return False
        async with self._lock:
            now = time.monotonic()
            self._bucket = min(rate, self._bucket + (now - self._updated) * rate)
            self._updated = now
            if self._bucket >= 1.0:
                self._bucket -= 1.0
                return False
            return True

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        buffer = b""
        try:
            async with stream:
                while True:
                    while b"\r\n\r\n" not in buffer:
                        chunk = await stream.receive(65536)
                        buffer += chunk
                        if buffer[:1] == b"\x16":
                            # A TLS handshake: answer as Go's servers do, so that
                            # clients trying HTTPS first fall back to HTTP.
                            self.counts["tls-attempts"] += 1
                            await stream.send(b"HTTP/1.0 400 Bad Request\r\n\r\n")
                            return
                    head, _, buffer = buffer.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    method, target, _ = lines[0].split(" ", 2)
                    headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
                    chunked = any(
                        k.lower() == "transfer-encoding" and "chunked" in v.lower()
                        for k, v in headers
                    )
                    if chunked:  # (the Docker engine uploads blobs so)
                        body, buffer = await _read_chunked(stream, buffer)
                    else:
                        length = next(
                            (int(v) for k, v in headers if k.lower() == "content-length"), 0
                        )
                        while len(buffer) < length:
                            buffer += await stream.receive(65536)
                        body, buffer = buffer[:length], buffer[length:]
                    if not await self._answer(stream, method, target, headers, body):
                        return
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return

    async def _answer(
        self,
        stream: anyio.abc.ByteStream,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
        body: bytes,
    ) -> bool:
        self.counts["requests"] += 1
        if "/manifests/" not in target:
            return await self._forward(stream, method, target, headers, body)
        if self.faults.put_barrier and method == "PUT" and self._applies(method, target):
            self._puts_waiting += 1
            if self._puts_waiting >= self.faults.put_barrier:
                self._puts_open.set()
            with anyio.move_on_after(self.faults.gate_seconds):
                await self._puts_open.wait()
            try:
                async with self._put_turn:
                    return await self._forward(stream, method, target, headers, body)
            finally:
                self._puts_through += 1
                if self._puts_through >= self.faults.put_barrier:
                    self._puts_done.set()
        if self.faults.put_barrier and self._puts_open.is_set() and self._applies(method, target):
            with anyio.move_on_after(self.faults.gate_seconds):
                await self._puts_done.wait()
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.faults.gate:
                if self.in_flight >= self.faults.gate:
                    self._gate_open.set()
                with anyio.move_on_after(self.faults.gate_seconds):
                    await self._gate_open.wait()
            return await self._forward(stream, method, target, headers, body)
        finally:
            self.in_flight -= 1

    def _applies(self, method: str, target: str) -> bool:
        """Whether the faults apply to this request (``only``, ``methods``)."""
        faults = self.faults
        return (faults.only is None or faults.only in target) and (
            faults.methods is None or method in faults.methods
        )

    async def _forward(
        self,
        stream: anyio.abc.ByteStream,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
        body: bytes,
    ) -> bool:
        faults = self.faults
        applies = self._applies(method, target)
        if faults.latency:
            await anyio.sleep(faults.latency)
        if applies and self._take("resets"):
            self.counts["resets"] += 1
            return False
        if applies and self._take("stalls"):
            self.counts["stalls"] += 1
            await anyio.sleep_forever()
        if applies and await self._manifest_fault(stream, method, target, headers):
            return True
        if applies and faults.refuse_head and method == "HEAD" and "/manifests/" in target:
            self.counts["405"] += 1
            await self._reply(stream, method, 405, [], b"")
            return True
        if applies and self._take("garbage"):
            self.counts["garbage"] += 1
            page = b"<html><body>Service temporarily unavailable</body></html>"
            await self._reply(stream, method, 200, [("Content-Type", "text/html")], page)
            return True
        if applies and self._take("huge_headers"):
            self.counts["huge"] += 1
            await self._reply(stream, method, 200, [("X-Padding", "x" * 100_000)], b"{}")
            return True
        if applies and self._take("errors"):
            self.counts["errors"] += 1
            await self._reply(stream, method, 503, [], b'{"errors":[{"code":"UNAVAILABLE"}]}')
            return True
        if applies and (self._take("throttle") or await self._over_rate()):
            self.counts["429"] += 1
            extra: list[tuple[str, str]] = []
            text = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limited"}]}'
            form = faults.retry_after_form if faults.rate is None else "none"
            if form == "seconds":
                extra.append(("Retry-After", f"{faults.retry_after:g}"))
            elif form == "date":
                when = time.time() + faults.retry_after
                extra.append(("Retry-After", email.utils.formatdate(when, usegmt=True)))
            elif form == "body":
                ms = faults.retry_after * 1000
                text = f'{{"message":"rate limited, retry-after: {ms:.1f}ms"}}'.encode()
            await self._reply(stream, method, 429, extra, text)
            return True
        if faults.referrers_api and await self._list_referrers(stream, method, target):
            return True
        if target.startswith(TOKEN_PREFIX) and self.token_realm:
            url = self.token_realm + target[len(TOKEN_PREFIX) :]
        else:
            url = self.upstream + target
        forward = [(k, v.strip()) for k, v in headers if k.lower() not in ("host", *HOP_HEADERS)]
        response = await self._client.request(method, url, headers=forward, content=body)
        out = [
            # Upload locations name the registry: they must lead back through the proxy.
            (k, v.replace(self.upstream, f"http://{self.host}"))
            if k.lower() == "location"
            else (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in HOP_HEADERS
        ]
        if self.token_realm:
            out = [
                (k, v.replace(self.token_realm, f"http://{self.host}{TOKEN_PREFIX}"))
                if k.lower() == "www-authenticate"
                else (k, v)
                for k, v in out
            ]
        out += self._indexed(method, target, body, response)
        length = response.headers.get("content-length")
        content = response.content
        if applies and faults.extra_tags and "/tags/list" in target:
            content, length = self._with_extra_tags(response), None
        await self._reply(stream, method, response.status_code, out, content, length)
        return True

    def _with_extra_tags(self, response: httpx.Response) -> bytes:
        """A tag list with ``extra_tags`` added."""
        listed = response.json() if response.status_code == 200 else {"tags": []}
        listed["tags"] = [*(listed.get("tags") or []), *self.faults.extra_tags]
        return json.dumps(listed).encode()

    async def _list_referrers(self, stream: anyio.abc.ByteStream, method: str, target: str) -> bool:
        """Answer ``GET /v2/<name>/referrers/<digest>``; False for any other request."""
        if method != "GET" or "/referrers/" not in target:
            return False
        name, _, subject = target.removeprefix("/v2/").partition("/referrers/")
        listed = self.referrers.get((name, subject.split("?")[0]), [])
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": listed}
        await self._reply(
            stream, method, 200, [("Content-Type", OCI_INDEX)], json.dumps(index).encode()
        )
        return True

    def _indexed(
        self, method: str, target: str, body: bytes, response: httpx.Response
    ) -> list[tuple[str, str]]:
        """With ``referrers_api``: record an artifact pushed with a ``subject``; the
        header that says so."""
        if not self.faults.referrers_api or method != "PUT" or "/manifests/" not in target:
            return []
        try:
            manifest = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return []
        subject = manifest.get("subject") if isinstance(manifest, dict) else None
        if response.status_code != 201 or not isinstance(subject, dict):
            return []
        name = target.removeprefix("/v2/").partition("/manifests/")[0]
        descriptor = {
            "mediaType": manifest.get("mediaType", ""),
            "digest": response.headers.get("docker-content-digest", ""),
            "size": len(body),
            "artifactType": manifest.get("artifactType", ""),
            "annotations": manifest.get("annotations", {}),
        }
        listed = self.referrers.setdefault((name, subject["digest"]), [])
        if all(d["digest"] != descriptor["digest"] for d in listed):
            listed.append(descriptor)
        return [("OCI-Subject", subject["digest"])]

    async def _manifest_fault(
        self,
        stream: anyio.abc.ByteStream,
        method: str,
        target: str,
        headers: list[tuple[str, ...]],
    ) -> bool:
        """Answer a manifest request the faults make up; False: no such fault applies."""
        if "/manifests/" not in target:
            return False
        if self.faults.echo_credentials and method == "PUT" and not target.endswith(".failed"):
            auth = next((v.strip() for k, v in headers if k.lower() == "authorization"), "")
            plain = base64.b64decode(auth.partition(" ")[2] or "").decode(errors="replace")
            text = f"denied: {auth} ({plain}) may not push here"
            body = json.dumps({"errors": [{"code": "DENIED", "message": text}]}).encode()
            self.counts["echoed"] += 1
            await self._reply(stream, method, 403, [], body)
            return True
        if self.faults.swallow_manifest_puts and method == "PUT":
            self.counts["swallowed"] += 1
            await self._reply(stream, method, 201, [("Location", target)], b"")
            return True
        if method not in ("HEAD", "GET"):
            return False
        if self.faults.missing_manifests:
            self.counts["manifest-404"] += 1
            body = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
            await self._reply(stream, method, 404, [], body)
            return True
        if self.faults.unavailable_manifests:
            self.counts["manifest-503"] += 1
            await self._reply(stream, method, 503, [], b'{"errors":[{"code":"UNAVAILABLE"}]}')
            return True
        if self.faults.head_present and method == "HEAD":
            self.counts["lies"] += 1
            lie = [
                ("Content-Type", "application/vnd.docker.distribution.manifest.v2+json"),
                ("Docker-Content-Digest", "sha256:" + "0" * 64),
            ]
            await self._reply(stream, method, 200, lie, b"")
            return True
        return False

    async def _reply(
        self,
        stream: anyio.abc.ByteStream,
        method: str,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        length: str | None = None,
    ) -> None:
        lines = [f"HTTP/1.1 {status} X"]
        lines += [f"{k}: {v}" for k, v in headers]
        lines.append(f"Content-Length: {length if method == 'HEAD' and length else len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if method != "HEAD":
            payload += body
        await stream.send(payload)


async def _read_chunked(stream: anyio.abc.ByteStream, buffer: bytes) -> tuple[bytes, bytes]:
    """A chunked request body (and what follows it) from ``buffer`` and ``stream``."""
    body = b""
    while True:
        while b"\r\n" not in buffer:
            buffer += await stream.receive(65536)
        size_line, _, buffer = buffer.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(buffer) < size + 2:
            buffer += await stream.receive(65536)
        body, buffer = body + buffer[:size], buffer[size + 2 :]
        if size == 0:
            return body, buffer


@contextmanager
def proxy_thread(upstream: str, faults: Faults | None = None) -> Iterator[FaultProxy]:
    """A proxy served from a thread of its own (for tests that run the CLI as a process)."""
    proxy = FaultProxy(upstream, faults or Faults())
    with anyio.from_thread.start_blocking_portal() as portal:
        future, _ = portal.start_task(proxy.serve)
        try:
            yield proxy
        finally:
            future.cancel()


def main() -> None:
    """Run a proxy as its own process (benchmarks: it then has a core of its own).

    ``python -m tests.support.faultproxy UPSTREAM [--latency S] [--rate R]
    [--token-realm URL]`` prints ``PORT`` on its first line, then serves
    until killed.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("upstream")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--token-realm")
    args = parser.parse_args()
    proxy = FaultProxy(
        args.upstream, Faults(latency=args.latency, rate=args.rate), token_realm=args.token_realm
    )

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(proxy.serve)
            print(proxy.port, flush=True)
            sys.stdout.close()

    anyio.run(serve)


if __name__ == "__main__":
    main()
