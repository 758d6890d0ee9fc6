"""The registry transport: connections, TLS and the scheme of each host.

One :class:`Transport` per run holds an httpx client per registry base URL
(HTTP/2 over TLS where ``h2`` is installed, as many kept-alive connections as
the host's limiter lets requests fly), learns once per host whether a loopback
or insecure registry speaks plain HTTP, diagnoses a TLS connection torn down
under HTTP/2, and sends each request through the host's limiter: the answer
read up to :data:`MAX_BODY`, what it says of the host's limits observed (429
pauses, ``RateLimit`` headers). Authentication, retries and what the answers
mean are the protocol client's (:mod:`.client`).
"""

from __future__ import annotations

import contextlib
import ssl
from collections import Counter
from collections.abc import AsyncIterable, Callable, Mapping
from dataclasses import dataclass, field

import anyio
import httpx

from ..errors import reason
from ..support.deadline import BeyondDeadline, time_left
from ..support.ratelimit import Limiters, parse_body_hint, parse_retry_after
from ..support.retry import Transient
from ..support.shards import Shards
from ..support.singleflight import SingleFlight
from .names import is_loopback
from .tls import (
    TlsSettings,
    TlsSetupError,
    default_context,
    describe_failure,
    speaks_plain_http,
)

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_HEADER_BYTES = 64 * 1024
#: Largest answer body read into memory (manifests, config blobs, tag lists, tokens:
#: the distribution spec suggests 4 MiB for a manifest); larger ones are refused from
#: their Content-Length, or once that many bytes have come. (Layers are streamed.)
MAX_BODY = 4 * 1024 * 1024
#: How long the HTTP/1.1 look at a torn-down TLS connection may take.
DIAGNOSIS_SECONDS = 5.0
#: Transport errors after a connection was made: a TLS alert may be behind them.
_TORN_DOWN = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class Unanswered(Exception):
    """A request that got no usable answer, and retrying will not change that."""

    def __init__(self, detail: str, *, get_may_help: bool = False) -> None:
        super().__init__(detail)
        self.get_may_help = get_may_help


class HostUnusable(Unanswered):
    """No request to this host can succeed this run (e.g. its certificate is not trusted)."""


def _ignore(host: str, response: httpx.Response) -> None:
    """Drop a probe's answer."""


@dataclass
class Transport:
    """Connections to every registry of a run; close it with :meth:`aclose`."""

    limiters: Limiters = field(default_factory=Limiters)
    #: Hosts whose certificate is not checked, and which may speak plain HTTP
    #: (loopback hosts may too, but their certificates are checked).
    insecure: frozenset[str] = frozenset()
    #: Per-host CA and client certificates (none: the system's trust store only).
    tls: TlsSettings = field(default_factory=TlsSettings)
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    #: An httpx transport to use instead of the network (tests).
    mock: httpx.AsyncBaseTransport | None = None
    #: HTTP requests actually sent, by host.
    requests: Counter[str] = field(default_factory=Counter)
    #: 429 answers received, by host.
    throttled: Counter[str] = field(default_factory=Counter)
    #: The scheme (``http``/``https``) loopback and insecure hosts spoke in earlier runs.
    remembered_schemes: Mapping[str, str] = field(default_factory=dict)
    #: Gets the answer of each scheme probe's ``GET /v2/`` (its auth challenge).
    on_probe: Callable[[str, httpx.Response], None] = _ignore

    def __post_init__(self) -> None:
        self._clients: dict[tuple[str, int], httpx.AsyncClient] = {}
        self._shards: dict[str, Shards] = {}
        #: Whether each base URL's client speaks HTTP/2.
        self._http2: dict[str, bool] = {}
        #: The scheme of each loopback or insecure host: learned once per run by one
        #: probe (or remembered from an earlier run), shared by every request.
        self._schemes: dict[str, str] = {
            h: v for h, v in self.remembered_schemes.items() if v in ("http", "https")
        }
        #: Hosts whose remembered scheme no request of this run has used yet.
        self._scheme_unverified: set[str] = set(self._schemes)
        #: Hosts whose scheme was learned again this run (it is never learned twice).
        self._relearned: set[str] = set()
        self._scheme_flights: SingleFlight[str, str] = SingleFlight()
        #: TLS causes found behind torn-down connections, by host.
        self._diagnoses: dict[str, ssl.SSLError | None] = {}

    def scheme(self, host: str) -> str:
        """``https``, unless a loopback or insecure host turned out to speak plain HTTP."""
        return self._schemes.get(host, "https")

    @property
    def schemes(self) -> Mapping[str, str]:
        """The scheme of every loopback or insecure host a request of this run used
        (to remember next time)."""
        return {h: v for h, v in self._schemes.items() if h not in self._scheme_unverified}

    async def learn_scheme(self, host: str) -> None:
        """Know ``host``'s scheme before its first request (one probe per host and run,
        shared by every request that waits for it)."""
        if host in self._schemes or not self.may_speak_http(host):
            return
        await self._scheme_flights.do(host, lambda: self._probe_scheme(host))

    async def _probe_scheme(self, host: str) -> str:
        """One ``GET /v2/`` over HTTPS: a plain-HTTP answer to the handshake means the
        host speaks HTTP, and the ``GET`` goes again in it. The answer's challenge is
        kept (it is the ping a first contact needs anyway). Whatever else happens:
        HTTPS, and the requests report what is wrong."""
        scheme = "https"
        limiter = self.limiters(host)
        for attempt in ("https", "http"):
            try:
                async with limiter:  # (a probe is a request like any other)
                    with self.shards(host).take() as shard:
                        response = await self.client(host, attempt, shard).get("/v2/")
            except BeyondDeadline as exc:
                raise Unanswered(too_long(host, exc.seconds, exc.left)) from None
            except (httpx.TransportError, ssl.SSLError) as exc:
                tls = _ssl_error(exc)
                if tls is None and isinstance(exc, _TORN_DOWN) and attempt == "https":
                    tls = await self._tls_diagnosis(host)
                if attempt == "https" and tls is not None and speaks_plain_http(tls):
                    scheme = "http"
                    continue
                self._scheme_unverified.add(host)  # (until a request in it is answered)
                break
            self.requests[host] += 1
            scheme = attempt
            with contextlib.suppress(Transient, Unanswered):  # (the requests meet it again)
                self.observe(host, response)
                self.on_probe(host, response)
            break
        self._schemes[host] = scheme
        return scheme

    async def _relearn_scheme(self, host: str, wrong: str) -> None:
        """``wrong`` turned out not to be ``host``'s scheme: switch, once per run (a
        request that finds the new one wrong too reports its error)."""
        if self._schemes.get(host) == wrong and host not in self._relearned:
            self._relearned.add(host)
            self._schemes[host] = "http" if wrong == "https" else "https"
        self._scheme_unverified.discard(host)

    def may_speak_http(self, host: str) -> bool:
        """Whether ``host`` may be spoken to in plain HTTP (as Docker allows these)."""
        return is_loopback(host) or host in self.insecure

    def _has_h2(self) -> bool:
        """Whether HTTP/2 can be spoken (h2 is imported only when it can be used)."""
        if self.mock is not None:
            return False
        try:
            import h2  # noqa: F401
        except ImportError:
            return False
        return True

    def shards(self, host: str) -> Shards:
        """The connection pools ``host``'s requests in flight are spread over."""
        shards = self._shards.get(host)
        if shards is None:
            shards = self._shards[host] = Shards(self.limiters(host).limits.concurrency)
        return shards

    def client(self, host: str, scheme: str | None = None, shard: int = 0) -> httpx.AsyncClient:
        """The client of ``host`` for one of its pools (:meth:`shards`; HTTP/2
        multiplexes one connection: one client)."""
        base = f"{scheme or self.scheme(host)}://{host}"
        http2 = self._http2.get(base)
        if http2 is None:  # (once per base, not per request)
            http2 = self._http2[base] = base.startswith("https:") and self._has_h2()
        key = (base, 0 if http2 else shard)
        client = self._clients.get(key)
        if client is None:
            # (a plain-HTTP client may still be redirected to HTTPS: the default context)
            verify: ssl.SSLContext = default_context()
            if base.startswith("https:"):
                try:
                    verify = self.tls.verify(host, insecure=host in self.insecure)
                except TlsSetupError as exc:
                    raise HostUnusable(str(exc)) from None
            # HTTP/1.1: each pool as many connections as its share of the requests in
            # flight, all kept alive (a larger pool only makes httpcore scan more).
            size = self.limiters(host).limits.concurrency if http2 else self.shards(host).pool_size
            client = httpx.AsyncClient(
                base_url=base,
                verify=verify,
                http2=http2,
                timeout=self.timeout,
                transport=self.mock,
                follow_redirects=True,
                limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
            )
            self._clients[key] = client
        return client

    async def aclose(self) -> None:
        """Close every connection."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def send(
        self,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One HTTP request through the host's limiter; transport failures are Transient."""
        limiter = self.limiters(host)
        try:
            if not url.startswith(("http://", "https://")):  # (a token realm names its own)
                await self.learn_scheme(host)  # (before a slot: the probe takes one)
            async with limiter:
                self.requests[host] += 1
                with self.shards(host).take() as shard:
                    response = await self._request(host, method, url, headers, content, shard)
        except BeyondDeadline as exc:  # from the limiter: the host is paused that long
            raise Unanswered(too_long(host, exc.seconds, exc.left)) from None
        self.observe(host, response)
        return response

    async def send_once(
        self,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: AsyncIterable[bytes] | None,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """One request in one of the host's slots, its body not capped (a layer's:
        ``stream`` leaves it to be read) and whatever its status; httpx's and TLS errors
        are the caller's to translate, a paused host's deadline is :class:`Unanswered`."""
        try:
            await self.learn_scheme(host)
            async with self.limiters(host):
                self.requests[host] += 1
                with self.shards(host).take() as shard:
                    client = self.client(host, shard=shard)
                    request = client.build_request(method, url, headers=headers, content=content)
                    response = await client.send(request, stream=stream)
        except BeyondDeadline as exc:
            raise Unanswered(too_long(host, exc.seconds, exc.left)) from None
        with contextlib.suppress(Transient, Unanswered):  # (the status is the caller's)
            self.observe(host, response)
        return response

    def observe(self, host: str, response: httpx.Response) -> None:
        """What an answer tells of the host's limits (429 pauses, RateLimit headers);
        raises Transient or Unanswered for an answer that is no answer."""
        limiter = self.limiters(host)
        header_bytes = sum(len(k) + len(v) for k, v in response.headers.raw)
        if header_bytes > MAX_HEADER_BYTES:
            raise Unanswered(
                f"{host}: answered with {header_bytes} bytes of headers (over"
                f" {MAX_HEADER_BYTES // 1024} KiB); is something between us and the registry?"
            )
        remaining = response.headers.get("ratelimit-remaining")
        if remaining is not None:
            limiter.observe_remaining(
                leading_int(remaining), leading_int(response.headers.get("ratelimit-limit", ""))
            )
        if response.status_code == 429:
            self.throttled[host] += 1
            wait = parse_retry_after(response.headers.get("retry-after"))
            if wait is None:
                wait = parse_body_hint(response.text)
            if wait is None:
                # An unannounced limit: slow the host down, and back off this request.
                limiter.throttled_without_hint()
                raise Transient(f"{host}: rate limited (429)")
            # The host is paused until the time asked for; the retry need not wait more.
            limiter.pause(wait)
            left = time_left()
            if left is not None and wait > left:
                raise Unanswered(too_long(host, wait, left))
            raise Transient(f"{host}: rate limited (429)", wait=0.0)
        limiter.succeeded()
        if response.status_code >= 500:
            raise Transient(f"{host}: server error {response.status_code}")

    async def _request(
        self,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        shard: int = 0,
    ) -> httpx.Response:
        """Send once (through pool ``shard``); a loopback or insecure host answering TLS
        in plain HTTP is asked again.

        A TLS failure is never transient: a certificate problem does not go
        away by asking again, so it is one line saying what to do.
        """
        tried: set[str] = set()  # (each request tries a scheme once: it never loops)
        while True:
            scheme = self.scheme(host)
            tried.add(scheme)
            try:
                response = await self._capped(host, method, url, headers, content, shard)
            except httpx.TimeoutException as exc:
                raise Transient(f"{host}: timed out ({type(exc).__name__})") from exc
            except (httpx.TransportError, httpx.DecodingError, ssl.SSLError) as exc:
                # (httpx lets some TLS alerts through unwrapped.)
                tls = _ssl_error(exc)
                if tls is None and isinstance(exc, _TORN_DOWN) and scheme == "https":
                    tls = await self._tls_diagnosis(host)
                if tls is None:
                    detail = reason(exc)
                    raise Transient(f"{host}: connection failed: {detail}") from exc
                if speaks_plain_http(tls) and self.may_speak_http(host):
                    await self._relearn_scheme(host, "https")
                    if self.scheme(host) not in tried:
                        continue
                raise HostUnusable(describe_failure(host, tls, self.tls.certs_d)) from exc
            except httpx.InvalidURL as exc:
                raise Unanswered(f"{host}: invalid URL: {exc}") from exc
            if scheme == "http" and _wants_tls(response):  # (a remembered scheme went stale)
                await self._relearn_scheme(host, "http")
                if self.scheme(host) not in tried:
                    continue
            self._scheme_unverified.discard(host)
            return response

    async def _capped(
        self,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        content: bytes | None,
        shard: int = 0,
    ) -> httpx.Response:
        """One request whose answer's body is read only up to :data:`MAX_BODY` (an
        announced length over it is refused before any byte is read): a registry
        cannot make us hold more than that."""
        client = self.client(host, shard=shard)
        request = client.build_request(method, url, headers=headers, content=content)
        response = await client.send(request, stream=True)
        try:
            if method == "HEAD":
                await response.aread()
                return response
            announced = leading_int(response.headers.get("content-length", ""))
            if announced is not None and announced > MAX_BODY:
                raise Unanswered(too_big(host, method, url, f"announced {announced} bytes"))
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > MAX_BODY:
                    raise Unanswered(too_big(host, method, url, "sent more"))
                chunks.append(chunk)
        finally:
            await response.aclose()
        # (decoded already: the answer no longer carries its content-encoding)
        kept = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "transfer-encoding")
        ]
        return httpx.Response(
            response.status_code,
            headers=kept,
            content=b"".join(chunks),
            request=request,
            extensions=response.extensions,
        )

    async def _tls_diagnosis(self, host: str) -> ssl.SSLError | None:
        """Why a TLS connection to ``host`` is torn down, asked once over HTTP/1.1.

        Over HTTP/2 a registry's TLS alert (a client certificate it wants,
        say) is lost under a broken pipe, which looks transient; one plain
        request on a fresh connection shows the alert. ``None``: no TLS cause.
        """
        if host in self._diagnoses:
            return self._diagnoses[host]
        found: ssl.SSLError | None = None
        name, port = _host_and_port(host)
        try:
            context = self.tls.verify(host, insecure=host in self.insecure)
            with anyio.fail_after(DIAGNOSIS_SECONDS):
                stream = await anyio.connect_tcp(name, port, ssl_context=context)
                try:
                    await stream.send(f"GET /v2/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
                    await stream.receive()
                finally:
                    # Closing a connection the server refused fails too; its error is noise.
                    with contextlib.suppress(Exception):
                        await stream.aclose()
        except ssl.SSLError as exc:
            found = exc
        except (OSError, TimeoutError, ValueError, TlsSetupError, anyio.BrokenResourceError,
                anyio.EndOfStream) as exc:  # fmt: skip
            found = _ssl_error(exc)
        self._diagnoses[host] = found
        return found


def _wants_tls(response: httpx.Response) -> bool:
    """Whether a plain-HTTP request reached a server that speaks only TLS: Go's servers
    answer a bare ``HTTP/1.0 400 Bad Request`` without a single header (its body, "Client
    sent an HTTP request to an HTTPS server.", is not read for a HEAD)."""
    if response.status_code != 400:
        return False
    return not response.headers or b"HTTPS server" in response.content[:200]


def _host_and_port(host: str) -> tuple[str, int]:
    """``HOST[:PORT]`` or ``[V6]:PORT`` as a name and a port (443 when none is given)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") else 443
    name, sep, port = host.rpartition(":")
    return (name, int(port)) if sep and port.isdigit() else (host, 443)


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def too_big(host: str, method: str, url: str, how: str) -> str:
    return (
        f"{host}: the answer to {method} {url.partition('?')[0]} is over {MAX_BODY} bytes"
        f" ({how}); no registry document is that big, nothing of it was kept"
    )


def too_long(host: str, asked: float, left: float) -> str:
    return (
        f"{host}: rate limited (429); the registry asked us to wait {asked:g} s"
        f" (Retry-After), more than the {max(0.0, left):.0f} s left of the deadline"
    )


def leading_int(text: str) -> int | None:
    digits = ""
    for ch in text.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None
