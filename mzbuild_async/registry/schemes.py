"""One authenticator per scheme a registry may challenge with, in the style of ``httpx.Auth``.

Each turns the host's challenge into the ``Authorization`` header of a
request (``header``), may get ready for many repositories at once
(``prepare``), and says whether a remembered challenge of its scheme is
well formed (``valid``: the challenge store keeps only those). :data:`SCHEMES`
is the one list: a new scheme is one class here and one entry there; the
client and the store need no change.

- ``basic``: the host's credentials, every request.
- ``bearer``: a token from the challenge's realm per repository and action
  (``pull``, ``pull,push``), cached until it expires, fetched once however
  many requests want it, up to :data:`SCOPES_PER_TOKEN` repositories a request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import anyio
import httpx

from ..support.documents import parse_json
from ..support.singleflight import SingleFlight
from .auth import Challenge, CredentialStore

#: Tokens without ``expires_in`` live this long (the distribution spec's default).
DEFAULT_TOKEN_SECONDS = 60.0
#: Repositories asked for in one token request (keeps the URL short).
SCOPES_PER_TOKEN = 50

#: Sends one request to a host, retried as every registry request is.
Send = Callable[[str, str, str, Mapping[str, str]], Awaitable[httpx.Response]]


class AuthUnusable(Exception):
    """The host's authentication cannot be satisfied (the message says why): its
    lookups are unknown."""


@dataclass(frozen=True)
class AuthContext:
    """What an authenticator may use: credentials, the client's requests, its clock."""

    credentials: CredentialStore
    send: Send
    clock: Callable[[], float]


class Authenticator(Protocol):
    """Authentication for one scheme, for every host that challenges with it."""

    name: ClassVar[str]

    @staticmethod
    def valid(params: Mapping[str, str]) -> bool:
        """Whether a challenge of this scheme with ``params`` can be used."""
        ...

    async def header(
        self,
        host: str,
        challenge: Challenge,
        repo: str,
        actions: str,
        *,
        fresh: bool,
        also: str = "",
    ) -> dict[str, str]:
        """The headers that authenticate a request for ``repo`` (``fresh``: the last
        ones were refused; do not reuse them; ``also``: a repository the same request
        must be allowed to pull, as a cross-repository mount needs)."""
        ...

    async def prepare(self, host: str, challenge: Challenge, repos: Iterable[str]) -> None:
        """Get ready to ``pull`` ``repos`` (optional work ahead of the lookups)."""
        ...


@dataclass
class BasicAuth:
    """``Basic``: the host's username and password on every request."""

    context: AuthContext
    name: ClassVar[str] = "basic"

    @staticmethod
    def valid(params: Mapping[str, str]) -> bool:
        """Any realm will do."""
        return True

    async def header(
        self,
        host: str,
        challenge: Challenge,
        repo: str,
        actions: str,
        *,
        fresh: bool,
        also: str = "",
    ) -> dict[str, str]:
        """The credentials, or :class:`AuthUnusable` when there are none."""
        credentials = await self.context.credentials.get(host)
        if credentials is None:
            raise AuthUnusable(
                f"{host}: the registry wants a username and password; log in with"
                " `docker login` or set MZBUILD_ASYNC_REGISTRY_USERNAME/PASSWORD"
            )
        return {"Authorization": credentials.basic()}

    async def prepare(self, host: str, challenge: Challenge, repos: Iterable[str]) -> None:
        """Nothing to get ready."""


@dataclass
class _Token:
    value: str
    expires: float


@dataclass
class BearerAuth:
    """``Bearer``: tokens from the realm, per repository and action, cached."""

    context: AuthContext
    name: ClassVar[str] = "bearer"
    _tokens: dict[tuple[str, str, str], _Token] = field(default_factory=dict)
    _flights: SingleFlight[tuple[str, str, frozenset[str]], None] = field(
        default_factory=SingleFlight
    )

    @staticmethod
    def valid(params: Mapping[str, str]) -> bool:
        """The realm must be an HTTP(S) URL (it is where tokens come from)."""
        return params.get("realm", "").startswith(("https://", "http://"))

    async def header(
        self,
        host: str,
        challenge: Challenge,
        repo: str,
        actions: str,
        *,
        fresh: bool,
        also: str = "",
    ) -> dict[str, str]:
        """A token for ``repo`` and ``actions`` (and ``also``'s pull, in the same
        token): cached, else fetched."""
        scopes = [f"repository:{repo}:{actions}"] + ([f"repository:{also}:pull"] if also else [])
        key = _scope_key(challenge, scopes)
        if fresh:
            self._tokens.pop(key, None)
        token = self._cached_key(key)
        if token is None:
            await self._fetch_scopes(host, challenge, scopes)
            token = self._cached_key(key)
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def prepare(self, host: str, challenge: Challenge, repos: Iterable[str]) -> None:
        """Fetch ``pull`` tokens for every repository without one, in batches."""
        todo = sorted(r for r in repos if self._cached(challenge, r, "pull") is None)
        async with anyio.create_task_group() as tg:
            for i in range(0, len(todo), SCOPES_PER_TOKEN):
                tg.start_soon(self.fetch, host, challenge, todo[i : i + SCOPES_PER_TOKEN])

    def _cached(self, challenge: Challenge, repo: str, actions: str) -> str | None:
        return self._cached_key(_scope_key(challenge, [f"repository:{repo}:{actions}"]))

    def _cached_key(self, key: tuple[str, str, str]) -> str | None:
        token = self._tokens.get(key)
        if token is None or token.expires <= self.context.clock():
            return None
        return token.value

    async def fetch(
        self, host: str, challenge: Challenge, repos: Iterable[str], actions: str = "pull"
    ) -> None:
        """One token for ``repos`` (once, however many callers ask at the same time)."""
        await self._fetch_scopes(host, challenge, [f"repository:{r}:{actions}" for r in repos])

    async def _fetch_scopes(self, host: str, challenge: Challenge, wanted: list[str]) -> None:
        """One token for the ``wanted`` scopes, cached under each scope and under all of
        them together."""
        realm = challenge.realm
        if not realm or not realm.startswith(("http://", "https://")):
            raise AuthUnusable(f"{host}: bearer challenge without a usable realm ({realm!r})")
        service = challenge.params.get("service", "")
        scopes = sorted(set(wanted))

        async def fetch() -> None:
            realm_url = httpx.URL(realm)
            params: list[tuple[str, str | int | float | bool | None]] = (
                [("service", service)] if service else []
            )
            params += [("scope", s) for s in scopes]
            headers = {}
            credentials = await self.context.credentials.get(host)
            if credentials is not None:
                headers["Authorization"] = credentials.basic()
            url = str(realm_url.copy_merge_params(params))
            response = await self.context.send(realm_url.netloc.decode(), "GET", url, headers)
            if response.status_code in (401, 403):
                who = "anonymous" if credentials is None else f"user {credentials.username}"
                raise AuthUnusable(f"{host}: token endpoint refused {who} ({response.status_code})")
            if response.status_code != 200:
                raise AuthUnusable(f"{host}: token endpoint answered {response.status_code}")
            token, seconds = _token(host, response)
            expires = self.context.clock() + max(1.0, seconds - 5.0)
            for scope in scopes:
                self._tokens[(realm, service, scope)] = _Token(token, expires)
            self._tokens[_scope_key(challenge, scopes)] = _Token(token, expires)

        await self._flights.do((realm, service, frozenset(scopes)), fetch)


def _scope_key(challenge: Challenge, scopes: Iterable[str]) -> tuple[str, str, str]:
    """The cache key of a token granting ``scopes`` together."""
    return (challenge.realm or "", challenge.params.get("service", ""), " ".join(sorted(scopes)))


def _token(host: str, response: httpx.Response) -> tuple[str, float]:
    """The token of a token endpoint's answer, and its lifetime in seconds."""
    try:
        data = parse_json(response.content)
        token = data.get("token") or data.get("access_token")
        seconds = float(data.get("expires_in") or DEFAULT_TOKEN_SECONDS)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError):
        token, seconds = None, 0.0
    if not isinstance(token, str) or not token:
        kind = response.headers.get("content-type", "no content type")
        raise AuthUnusable(f"{host}: token endpoint answered {kind}, not a token")
    return token, seconds


class Scheme(Protocol):
    """An authenticator class: checks remembered challenges, makes authenticators."""

    def valid(self, params: Mapping[str, str], /) -> bool:
        """Whether a challenge of this scheme with ``params`` can be used."""
        ...

    def __call__(self, context: AuthContext, /) -> Authenticator:
        """The scheme's authenticator for one client."""
        ...


#: Every scheme we authenticate with, by its name in ``WWW-Authenticate``.
SCHEMES: dict[str, Scheme] = {
    BasicAuth.name: BasicAuth,
    BearerAuth.name: BearerAuth,
}


def usable(challenge: Challenge) -> bool:
    """Whether ``challenge`` is of a scheme we know, well formed for it."""
    scheme = SCHEMES.get(challenge.scheme.lower())
    return scheme is not None and scheme.valid(challenge.params)
