"""Asking a registry whether a manifest exists, over the OCI distribution API.

Every answer is ``present`` (200), ``absent`` (404) or ``unknown`` (anything
else, after retries): a registry we could not ask is never "present".
Requests pass through the host's limiter (concurrency, token bucket,
``429`` pauses), transient failures are retried with the one retry policy,
and the bearer-token dance is done once per host and scope: concurrent
lookups share token fetches, and :meth:`RegistryClient.prepare` fetches
one token for many repositories at once.

This is the protocol: authentication, retries, the requests of the
distribution API and what their answers mean, with one translation of
failures (:class:`RegistryUnavailable`, or an ``unknown`` probe). Connections,
TLS, each host's scheme and its limiter are the transport's
(:mod:`.transport`).
"""

from __future__ import annotations

import contextlib
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
from ..support.deadline import within
from ..support.ratelimit import Clock, Limiters
from ..support.retry import DEFAULT_RETRY, RetryPolicy, Sleep, Transient, call_with_retries
from ..support.singleflight import SingleFlight
from .answers import ACCEPT, probe_of
from .auth import Challenge, CredentialStore, parse_challenge
from .names import Reference
from .schemes import SCHEMES, AuthContext, Authenticator, AuthUnusable
from .tls import TlsSettings, default_context
from .transport import (
    DEFAULT_TIMEOUT,
    HostUnusable,
    Transport,
    Unanswered,
)

#: No single lookup takes longer than this, retries included.
DEFAULT_DEADLINE = 90.0


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
        self._connections: Transport | None = None
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

    # -- the transport ------------------------------------------------------

    @property
    def _transport(self) -> Transport:
        """The connections, made at the first request from the settings then."""
        if self._connections is None:
            self._connections = Transport(
                self.limiters,
                self.insecure,
                self.tls,
                self.timeout,
                self.transport,
                self.requests,
                self.throttled,
                self.remembered_schemes,
                self._learn_challenge,
            )
        return self._connections

    def scheme(self, host: str) -> str:
        """``https``, unless a loopback or insecure host turned out to speak plain HTTP."""
        return self._transport.scheme(host)

    @property
    def schemes(self) -> Mapping[str, str]:
        """The scheme of every loopback or insecure host a request of this run used
        (to remember next time)."""
        return self._transport.schemes

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

    async def aclose(self) -> None:
        """Close every connection."""
        if self._connections is not None:
            await self._connections.aclose()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def _retrying(
        self,
        host: str,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        return await call_with_retries(
            self.retry,
            lambda: self._transport.send(host, method, url, headers, content),
            self.sleep,
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
            raise Unanswered(failed)
        if host not in self._challenges:
            await self._transport.learn_scheme(host)  # (for a host that may speak HTTP: the ping)
        if host not in self._challenges:
            try:
                self._challenges[host] = await self._challenge_flights.do(host, ping)
            except Transient as exc:
                # Retried already: the other lookups of this run need not wait again.
                self._unreachable[host] = f"{exc} (gave up after retries)"
                raise Unanswered(self._unreachable[host]) from exc
            except HostUnusable as exc:
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
                raise Unanswered(f"{host}: unsupported authentication scheme {challenge.scheme!r}")
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
            raise Unanswered(str(exc)) from None

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
                except (Transient, Unanswered, AuthUnusable, ExceptionGroup):
                    if not self._distrust(host):  # a remembered realm may have moved
                        return

        with within(self.deadline):
            async with anyio.create_task_group() as tg:
                for host, repos in by_host.items():
                    tg.start_soon(host_tokens, host, repos)

    async def reach(self, host: str) -> str:
        """Why ``host`` cannot be asked ("": it answered, or its challenge is remembered
        from an earlier run). Joins a warm-up's ``GET /v2/`` in flight: no extra request."""
        try:
            with within(self.deadline):
                await self._challenge(host)
        except (Unanswered, Transient) as exc:
            return str(exc)
        return ""

    async def warm_up(self, hosts: Iterable[str]) -> None:
        """Be ready to ask ``hosts`` now (e.g. while fingerprints compute): the scheme,
        the connection (with its TLS handshake) and the auth challenge.

        A remembered challenge saves the ``GET /v2/`` on the lookups' path; here it
        is sent anyway, off that path, to open the connection and confirm the
        challenge. Failures are left for the lookups to report.
        """

        async def one(host: str) -> None:
            with contextlib.suppress(Transient, Unanswered):
                await anyio.to_thread.run_sync(default_context)  # (loads CAs, GIL released)
                await self._transport.learn_scheme(host)
                self._transport.client(host)  # TLS set-up and the pool, ahead of the first request
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
            except (Unanswered, Transient):
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
                raise Unanswered(
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
        except Unanswered as exc:
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
            auth = await self._auth_header(host, ref.repository, actions=actions)
            return await self._transport.send_once(
                host, method, url, {**headers, **auth}, content, stream=stream
            )
        except (Transient, Unanswered) as exc:
            raise RegistryUnavailable(str(exc)) from None
        except (httpx.HTTPError, ssl.SSLError) as exc:
            raise RegistryUnavailable(f"{host}: {method} failed: {reason(exc)}") from None

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
        except Unanswered as exc:
            return Probe(Status.UNKNOWN, str(exc), exc.get_may_help)
        return probe_of(response, method, host, ref)
