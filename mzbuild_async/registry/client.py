"""Asking a registry whether a manifest exists, over the OCI distribution API.

Every answer is ``present`` (200), ``absent`` (404) or ``unknown`` (anything
else, after retries): a registry we could not ask is never "present".
Requests pass through the host's limiter (concurrency, token bucket,
``429`` pauses), transient failures are retried with the one retry policy,
and the bearer-token dance is done once per host and scope: concurrent
lookups share token fetches, and :meth:`RegistryClient.prepare` fetches
one token for many repositories at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field

import anyio
import httpx

from ..errors import reason
from ..model.status import Probe, Status
from ..support.deadline import BeyondDeadline, time_left, within
from ..support.documents import parse_json
from ..support.ratelimit import Clock, Limiters, parse_body_hint, parse_retry_after
from ..support.retry import DEFAULT_RETRY, RetryPolicy, Sleep, Transient, call_with_retries
from ..support.singleflight import SingleFlight
from .auth import Challenge, CredentialStore, parse_challenge
from .names import Reference, is_loopback
from .schemes import SCHEMES, AuthContext, Authenticator, AuthUnusable
from .tls import (
    TlsSettings,
    TlsSetupError,
    default_context,
    describe_failure,
    speaks_plain_http,
)

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES)
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
#: No single lookup takes longer than this, retries included.
DEFAULT_DEADLINE = 90.0
MAX_HEADER_BYTES = 64 * 1024
#: Largest answer body read into memory (manifests, config blobs, tag lists, tokens:
#: the distribution spec suggests 4 MiB for a manifest); larger ones are refused from
#: their Content-Length, or once that many bytes have come. (Layers are streamed.)
MAX_BODY = 4 * 1024 * 1024
#: How long the HTTP/1.1 look at a torn-down TLS connection may take.
DIAGNOSIS_SECONDS = 5.0
#: Transport errors after a connection was made: a TLS alert may be behind them.
_TORN_DOWN = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class _Unknown(Exception):
    def __init__(self, detail: str, *, get_may_help: bool = False) -> None:
        super().__init__(detail)
        self.get_may_help = get_may_help


class _HostUnusable(_Unknown):
    """No request to this host can succeed this run (e.g. its certificate is not trusted)."""


class RegistryUnavailable(Exception):
    """A registry request could not be made or answered (the message says why)."""


@dataclass
class RegistryClient:
    """One client for every registry of a run; close it with :meth:`aclose`."""

    credentials: CredentialStore = field(default_factory=CredentialStore)
    limiters: Limiters = field(default_factory=Limiters)
    #: Hosts whose certificate is not checked, and which may speak plain HTTP
    #: (loopback hosts may too, but their certificates are checked).
    insecure: frozenset[str] = frozenset()
    #: Per-host CA and client certificates (Docker's certs.d, mzbuild-async.toml).
    tls: TlsSettings = field(default_factory=lambda: TlsSettings.from_environ(os.environ))
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: httpx.Timeout = field(default_factory=lambda: DEFAULT_TIMEOUT)
    deadline: float = DEFAULT_DEADLINE
    #: An httpx transport to use instead of the network (tests).
    transport: httpx.AsyncBaseTransport | None = None
    clock: Clock = time.monotonic
    sleep: Sleep = anyio.sleep
    #: HTTP requests actually sent, by host.
    requests: Counter[str] = field(default_factory=Counter)
    #: 429 answers received, by host.
    throttled: Counter[str] = field(default_factory=Counter)
    #: Auth challenges seen in earlier runs (None: no auth), to skip the ``/v2/`` ping.
    remembered: Mapping[str, Challenge | None] = field(default_factory=dict)
    #: The scheme (``http``/``https``) loopback and insecure hosts spoke in earlier runs.
    remembered_schemes: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
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
        self._challenges: dict[str, Challenge | None] = dict(self.remembered)
        #: Hosts whose challenge is remembered, not yet confirmed by this run.
        self._unverified: set[str] = set(self.remembered)
        #: Hosts whose first contact failed after retries, with the reason.
        self._unreachable: dict[str, str] = {}
        context = AuthContext(self.credentials, self._send_retried, self._now)
        #: One authenticator per scheme, made when a host first challenges with it.
        self._authenticators: dict[str, Authenticator] = {}
        self._auth_context = context
        self._challenge_flights: SingleFlight[str, Challenge | None] = SingleFlight()

    # -- plumbing -----------------------------------------------------------

    def scheme(self, host: str) -> str:
        """``https``, unless a loopback or insecure host turned out to speak plain HTTP."""
        return self._schemes.get(host, "https")

    @property
    def schemes(self) -> Mapping[str, str]:
        """The scheme of every loopback or insecure host a request of this run used
        (to remember next time)."""
        return {h: v for h, v in self._schemes.items() if h not in self._scheme_unverified}

    async def _learn_scheme(self, host: str) -> None:
        """Know ``host``'s scheme before its first request (one probe per host and run,
        shared by every request that waits for it)."""
        if host in self._schemes or not self._may_speak_http(host):
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
                    response = await self._client(host, attempt).get("/v2/")
            except BeyondDeadline as exc:
                raise _Unknown(_too_long(host, exc.seconds, exc.left)) from None
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
            with contextlib.suppress(Transient, _Unknown):  # (the requests meet it again)
                self._observe(host, response)
                self._learn_challenge(host, response)
            break
        self._schemes[host] = scheme
        return scheme

    def _confirm_challenge(self, host: str, response: httpx.Response) -> None:
        """A ``GET /v2/`` answer for a host whose challenge was remembered: keep it if
        it is the same, else take the new one (the lookups will use it)."""
        header = response.headers.get("www-authenticate")
        seen = parse_challenge(header) if response.status_code == 401 else None
        if self._challenges.get(host) != seen:
            self._challenges[host] = seen
        self._unverified.discard(host)

    def _learn_challenge(self, host: str, response: httpx.Response) -> None:
        """Keep the challenge of a ``GET /v2/`` answer, when none is known yet."""
        if host in self._challenges or response.status_code not in (200, 401):
            return
        header = response.headers.get("www-authenticate")
        self._challenges[host] = parse_challenge(header) if response.status_code == 401 else None

    async def _relearn_scheme(self, host: str, wrong: str) -> None:
        """``wrong`` turned out not to be ``host``'s scheme: switch, once per run (a
        request that finds the new one wrong too reports its error)."""
        if self._schemes.get(host) == wrong and host not in self._relearned:
            self._relearned.add(host)
            self._schemes[host] = "http" if wrong == "https" else "https"
        self._scheme_unverified.discard(host)

    def _may_speak_http(self, host: str) -> bool:
        """Whether ``host`` may be spoken to in plain HTTP (as Docker allows these)."""
        return is_loopback(host) or host in self.insecure

    def _client(self, host: str, scheme: str | None = None) -> httpx.AsyncClient:
        base = f"{scheme or self.scheme(host)}://{host}"
        client = self._clients.get(base)
        if client is None:
            # (a plain-HTTP client may still be redirected to HTTPS: the default context)
            verify: ssl.SSLContext = default_context()
            if base.startswith("https:"):
                try:
                    verify = self.tls.verify(host, insecure=host in self.insecure)
                except TlsSetupError as exc:
                    raise _HostUnusable(str(exc)) from None
            http2 = False
            if base.startswith("https:"):  # (h2 is imported only when it can be used)
                try:
                    import h2  # noqa: F401

                    http2 = True
                except ImportError:
                    pass
            client = httpx.AsyncClient(
                base_url=base,
                verify=verify,
                http2=http2 and self.transport is None,
                timeout=self.timeout,
                transport=self.transport,
                follow_redirects=True,
                # As many connections as the limiter lets requests fly, all kept
                # alive: a larger pool only makes httpcore scan more per request.
                limits=httpx.Limits(
                    max_connections=self.limiters(host).limits.concurrency,
                    max_keepalive_connections=self.limiters(host).limits.concurrency,
                ),
            )
            self._clients[base] = client
        return client

    async def aclose(self) -> None:
        """Close every connection."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def _send(
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
                await self._learn_scheme(host)  # (before a slot: the probe takes one)
            async with limiter:
                self.requests[host] += 1
                response = await self._request(host, method, url, headers, content)
        except BeyondDeadline as exc:  # from the limiter: the host is paused that long
            raise _Unknown(_too_long(host, exc.seconds, exc.left)) from None
        self._observe(host, response)
        return response

    def _observe(self, host: str, response: httpx.Response) -> None:
        """What an answer tells of the host's limits (429 pauses, RateLimit headers);
        raises Transient or _Unknown for an answer that is no answer."""
        limiter = self.limiters(host)
        header_bytes = sum(len(k) + len(v) for k, v in response.headers.raw)
        if header_bytes > MAX_HEADER_BYTES:
            raise _Unknown(
                f"{host}: answered with {header_bytes} bytes of headers (over"
                f" {MAX_HEADER_BYTES // 1024} KiB); is something between us and the registry?"
            )
        remaining = response.headers.get("ratelimit-remaining")
        if remaining is not None:
            limiter.observe_remaining(
                _leading_int(remaining), _leading_int(response.headers.get("ratelimit-limit", ""))
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
                raise _Unknown(_too_long(host, wait, left))
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
    ) -> httpx.Response:
        """Send once; a loopback or insecure host answering TLS in plain HTTP is asked again.

        A TLS failure is never transient: a certificate problem does not go
        away by asking again, so it is one line saying what to do.
        """
        tried: set[str] = set()  # (each request tries a scheme once: it never loops)
        while True:
            scheme = self.scheme(host)
            tried.add(scheme)
            try:
                response = await self._capped(host, method, url, headers, content)
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
                if speaks_plain_http(tls) and self._may_speak_http(host):
                    await self._relearn_scheme(host, "https")
                    if self.scheme(host) not in tried:
                        continue
                raise _HostUnusable(describe_failure(host, tls, self.tls.certs_d)) from exc
            except httpx.InvalidURL as exc:
                raise _Unknown(f"{host}: invalid URL: {exc}") from exc
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
    ) -> httpx.Response:
        """One request whose answer's body is read only up to :data:`MAX_BODY` (an
        announced length over it is refused before any byte is read): a registry
        cannot make us hold more than that."""
        client = self._client(host)
        request = client.build_request(method, url, headers=headers, content=content)
        response = await client.send(request, stream=True)
        try:
            if method == "HEAD":
                await response.aread()
                return response
            announced = _leading_int(response.headers.get("content-length", ""))
            if announced is not None and announced > MAX_BODY:
                raise _Unknown(_too_big(host, method, url, f"announced {announced} bytes"))
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > MAX_BODY:
                    raise _Unknown(_too_big(host, method, url, "sent more"))
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

    async def _retrying(
        self,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        return await call_with_retries(
            self.retry, lambda: self._send(host, method, url, headers, content), self.sleep
        )

    # -- authentication -----------------------------------------------------

    async def _challenge(self, host: str) -> Challenge | None:
        """The host's auth challenge, learned once with ``GET /v2/``."""

        async def ping() -> Challenge | None:
            response = await self._retrying(host, "GET", "/v2/")
            if response.status_code == 401:
                return parse_challenge(response.headers.get("www-authenticate"))
            return None

        failed = self._unreachable.get(host)
        if failed is not None:
            raise _Unknown(failed)
        if host not in self._challenges:
            await self._learn_scheme(host)  # (for a host that may speak HTTP: the ping)
        if host not in self._challenges:
            try:
                self._challenges[host] = await self._challenge_flights.do(host, ping)
            except Transient as exc:
                # Retried already: the other lookups of this run need not wait again.
                self._unreachable[host] = f"{exc} (gave up after retries)"
                raise _Unknown(self._unreachable[host]) from exc
            except _HostUnusable as exc:
                self._unreachable[host] = str(exc)
                raise
        return self._challenges[host]

    def _now(self) -> float:
        """The clock (read each time: a test may set another)."""
        return self.clock()

    async def _send_retried(
        self, host: str, method: str, url: str, headers: Mapping[str, str]
    ) -> httpx.Response:
        """A request as an authenticator sends it (a token endpoint's), retried."""
        return await self._retrying(host, method, url, headers)

    def _authenticator(self, host: str, challenge: Challenge) -> Authenticator:
        """The authenticator of ``challenge``'s scheme (one per scheme per client)."""
        scheme = challenge.scheme.lower()
        if scheme not in self._authenticators:
            make = SCHEMES.get(scheme)
            if make is None:
                raise _Unknown(f"{host}: unsupported authentication scheme {challenge.scheme!r}")
            self._authenticators[scheme] = make(self._auth_context)
        return self._authenticators[scheme]

    async def _auth_header(
        self, host: str, repo: str, *, fresh: bool = False, actions: str = "pull", also: str = ""
    ) -> dict[str, str]:
        challenge = self._challenges.get(host)
        if challenge is None:
            return {}
        authenticator = self._authenticator(host, challenge)
        try:
            return await authenticator.header(
                host, challenge, repo, actions, fresh=fresh, also=also
            )
        except AuthUnusable as exc:
            raise _Unknown(str(exc)) from None

    async def prepare(self, refs: Iterable[Reference]) -> None:
        """Learn each host's challenge and fetch tokens for many repositories at once.

        Optional: lookups work without it, one token per repository.
        Failures here are ignored; the lookups will report them.
        """
        by_host: dict[str, set[str]] = {}
        for ref in refs:
            by_host.setdefault(ref.api_host, set()).add(ref.repository)

        async def host_tokens(host: str, repos: set[str]) -> None:
            for _ in range(2):
                try:
                    challenge = await self._challenge(host)
                    if challenge is None:
                        return
                    authenticator = self._authenticator(host, challenge)
                    await authenticator.prepare(host, challenge, repos)
                    return
                except (Transient, _Unknown, AuthUnusable, ExceptionGroup):
                    if not self._distrust(host):  # a remembered realm may have moved
                        return

        with within(self.deadline):
            async with anyio.create_task_group() as tg:
                for host, repos in by_host.items():
                    tg.start_soon(host_tokens, host, repos)

    async def warm_up(self, hosts: Iterable[str]) -> None:
        """Be ready to ask ``hosts`` now (e.g. while fingerprints compute): the scheme,
        the connection (with its TLS handshake) and the auth challenge.

        A remembered challenge saves the ``GET /v2/`` on the lookups' path; here it
        is sent anyway, off that path, to open the connection and confirm the
        challenge. Failures are left for the lookups to report.
        """

        async def one(host: str) -> None:
            with contextlib.suppress(Transient, _Unknown):
                await anyio.to_thread.run_sync(default_context)  # (loads CAs, GIL released)
                await self._learn_scheme(host)
                self._client(host)  # TLS set-up and the pool, ahead of the first request
                if host in self._challenges and self.requests[host] == 0:
                    response = await self._retrying(host, "GET", "/v2/")
                    if response.status_code in (200, 401):
                        self._confirm_challenge(host, response)
                await self._challenge(host)

        with within(self.deadline):
            async with anyio.create_task_group() as tg:
                for host in set(hosts):
                    tg.start_soon(one, host)

    @property
    def challenges(self) -> Mapping[str, Challenge | None]:
        """The auth challenge of every host this run confirmed (to remember next time)."""
        return {h: c for h, c in self._challenges.items() if h not in self._unverified}

    def _distrust(self, host: str) -> bool:
        """Drop a remembered challenge that failed; True if there was one to drop."""
        if host not in self._unverified:
            return False
        self._unverified.discard(host)
        self._challenges.pop(host, None)
        return True

    # -- lookups ------------------------------------------------------------

    async def _manifest(self, ref: Reference, method: str) -> tuple[httpx.Response, str]:
        url = f"/v2/{ref.repository}/manifests/{ref.reference}"
        response = await self._authorized(
            ref.api_host, ref.repository, method, url, {"Accept": ACCEPT}
        )
        return response, ref.api_host

    async def _authorized(
        self,
        host: str,
        repository: str,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None = None,
        actions: str = "pull",
        also: str = "",
    ) -> httpx.Response:
        """A request with the host's authentication, renewed once on a 401."""
        await self._challenge(host)
        fresh = False
        while True:
            try:
                auth = await self._auth_header(
                    host, repository, fresh=fresh, actions=actions, also=also
                )
            except (_Unknown, Transient):
                if self._distrust(host):  # a remembered realm may have moved: ask again
                    await self._challenge(host)
                    continue
                raise
            response = await self._retrying(host, method, url, {**headers, **auth}, content)
            if response.status_code != 401:
                self._unverified.discard(host)
                return response
            challenge = parse_challenge(response.headers.get("www-authenticate"))
            if fresh or challenge is None:
                raise _Unknown(
                    f"{host}: unauthorized for {repository} (401) with fresh credentials"
                )
            # The scheme may have been unknown (no 401 on /v2/) or the token expired.
            self._challenges[host] = challenge
            self._unverified.discard(host)
            fresh = True

    async def request(
        self,
        ref: Reference,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        push: bool = False,
        mount_from: str = "",
        delete: bool = False,
    ) -> httpx.Response:
        """Any request under ``/v2/<repository>/`` with authentication and retries.

        ``path`` follows the repository name (``manifests/<ref>``,
        ``blobs/<digest>``); ``push`` asks for a ``pull,push`` token, ``delete`` for
        ``pull,delete``, and ``mount_from`` for the pull of that repository too (a
        blob mount). Raises
        :class:`RegistryUnavailable` when the registry could not be asked.
        """
        url = f"/v2/{ref.repository}/{path}"
        try:
            with within(self.deadline) as scope:
                return await self._authorized(
                    ref.api_host,
                    ref.repository,
                    method,
                    url,
                    headers or {},
                    content,
                    "pull,delete" if delete else "pull,push" if push else "pull",
                    mount_from,
                )
            assert scope.cancelled_caught
            raise RegistryUnavailable(f"{ref.api_host}: no answer within {self.deadline:g} s")
        except Transient as exc:
            raise RegistryUnavailable(f"{exc} (gave up after retries)") from None
        except _Unknown as exc:
            raise RegistryUnavailable(str(exc)) from None

    @contextlib.asynccontextmanager
    async def blob_stream(self, ref: Reference, digest: str) -> AsyncIterator[httpx.Response]:
        """The blob ``digest`` of ``ref``'s repository, its body still to be read
        (redirects followed). One attempt; :class:`RegistryUnavailable` when the
        registry could not be asked. (The host's slot is held until the answer's
        headers come: a body streamed into another request of the same host cannot
        starve it.)"""
        url = f"/v2/{ref.repository}/blobs/{digest}"
        response = await self._send_once(ref, "GET", url, {}, None, "pull", stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def put_stream(
        self, ref: Reference, location: str, content: AsyncIterable[bytes], size: int
    ) -> httpx.Response:
        """``content`` (``size`` bytes) sent with ``PUT`` to an upload ``location`` of
        ``ref``'s repository. One attempt (a stream cannot be sent twice)."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        return await self._send_once(ref, "PUT", location, headers, content, "pull,push")

    async def _send_once(
        self,
        ref: Reference,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: AsyncIterable[bytes] | None,
        actions: str,
        *,
        stream: bool = False,
    ) -> httpx.Response:
        """One authenticated request in one of the host's slots, never retried."""
        host = ref.api_host
        try:
            await self._challenge(host)
            await self._learn_scheme(host)
            auth = await self._auth_header(host, ref.repository, actions=actions)
            async with self.limiters(host):
                self.requests[host] += 1
                client = self._client(host)
                request = client.build_request(
                    method, url, headers={**headers, **auth}, content=content
                )
                response = await client.send(request, stream=stream)
        except (Transient, _Unknown) as exc:
            raise RegistryUnavailable(str(exc)) from None
        except BeyondDeadline as exc:
            raise RegistryUnavailable(_too_long(host, exc.seconds, exc.left)) from None
        except (httpx.HTTPError, ssl.SSLError) as exc:
            raise RegistryUnavailable(f"{host}: {method} failed: {reason(exc)}") from None
        with contextlib.suppress(Transient, _Unknown):  # (the status is the caller's)
            self._observe(host, response)
        return response

    async def lookup(self, ref: Reference, *, method: str = "HEAD") -> Probe:
        """Whether ``ref``'s manifest exists, asked with ``HEAD`` (or ``GET``)."""
        try:
            with within(self.deadline) as scope:
                response, host = await self._manifest(ref, method)
            if scope.cancelled_caught:
                return Probe(
                    Status.UNKNOWN, f"{ref.api_host}: no answer within {self.deadline:g} s"
                )
        except Transient as exc:
            return Probe(Status.UNKNOWN, f"{exc} (gave up after retries)")
        except _Unknown as exc:
            return Probe(Status.UNKNOWN, str(exc), exc.get_may_help)
        status = response.status_code
        if status == 404:
            return Probe(Status.ABSENT)
        if status == 200:
            if not _is_manifest(response, method):
                kind = response.headers.get("content-type", "no content type")
                return Probe(Status.UNKNOWN, f"{host}: answered 200 with {kind}, not a manifest")
            digest, size = _descriptor(response, method)
            return Probe(Status.PRESENT, digest, digest=digest, size=size)
        if status in (405, 501, 400) and method == "HEAD":
            return Probe(Status.UNKNOWN, f"{host}: HEAD answered {status}", get_may_help=True)
        if status == 403:
            return Probe(Status.UNKNOWN, f"{host}: access to {ref.repository} denied (403)")
        return Probe(Status.UNKNOWN, f"{host}: unexpected answer {status}")


def _descriptor(response: httpx.Response, method: str) -> tuple[str, int]:
    """The digest and size of the manifest a 200 answered about ("", 0: not said)."""
    if method == "GET":
        body = response.content
        return f"sha256:{hashlib.sha256(body).hexdigest()}", len(body)
    digest = response.headers.get("docker-content-digest", "")
    size = _leading_int(response.headers.get("content-length", "")) or 0
    return (digest if digest.startswith("sha256:") else ""), size


def _wants_tls(response: httpx.Response) -> bool:
    """Whether a plain-HTTP request reached a server that speaks only TLS: Go's servers
    answer a bare ``HTTP/1.0 400 Bad Request`` without a single header (its body, "Client
    sent an HTTP request to an HTTPS server.", is not read for a HEAD)."""
    if response.status_code != 400:
        return False
    return not response.headers or b"HTTPS server" in response.content[:200]


def _is_manifest(response: httpx.Response, method: str) -> bool:
    """Whether a 200 really carries a manifest (not a portal's or proxy's HTML page)."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if method == "HEAD":
        # Registries send the manifest's media type, or at least its digest.
        return (
            kind in MANIFEST_TYPES
            or kind.endswith("+json")
            or ("docker-content-digest" in response.headers and not kind.startswith("text/"))
        )
    try:
        data = parse_json(response.content)
    except ValueError:
        return False
    return isinstance(data, dict) and ("schemaVersion" in data or "mediaType" in data)


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


def _too_big(host: str, method: str, url: str, how: str) -> str:
    return (
        f"{host}: the answer to {method} {url.partition('?')[0]} is over {MAX_BODY} bytes"
        f" ({how}); no registry document is that big, nothing of it was kept"
    )


def _too_long(host: str, asked: float, left: float) -> str:
    return (
        f"{host}: rate limited (429); the registry asked us to wait {asked:g} s"
        f" (Retry-After), more than the {max(0.0, left):.0f} s left of the deadline"
    )


def _leading_int(text: str) -> int | None:
    digits = ""
    for ch in text.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None
