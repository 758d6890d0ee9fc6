"""Registry credentials and authentication challenges.

Credentials come, first match wins, from ``MZBUILD_ASYNC_REGISTRY_USERNAME``
/ ``..._PASSWORD`` (for the hosts in ``MZBUILD_ASYNC_REGISTRY_HOSTS``, or
every host when unset), then ``DOCKER_AUTH_CONFIG`` (a ``config.json`` in a
variable, as GitLab CI sets it), then Docker's ``config.json``
(``$DOCKER_CONFIG`` or ``~/.docker``): ``credHelpers``, ``auths``,
``credsStore``; helpers are the ``docker-credential-*`` programs.

A :class:`Credentials` never shows its secret in ``repr`` or ``str``.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import anyio

from ..support import logs
from ..support.documents import parse_json

DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io")
HELPER_TIMEOUT = 10.0


@dataclass(frozen=True)
class Credentials:
    """A username with a password or token; the secret is never printed."""

    username: str
    secret: str = field(repr=False)
    #: Where they came from, for messages (never the secret itself).
    source: str = ""

    def basic(self) -> str:
        """The value of a Basic ``Authorization`` header."""
        raw = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __str__(self) -> str:
        return f"{self.username} (from {self.source or 'configuration'})"


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: Mapping[str, str]

    @property
    def realm(self) -> str | None:
        """The token endpoint (Bearer) or realm name (Basic)."""
        return self.params.get("realm")


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


def parse_challenge(header: str | None) -> Challenge | None:
    """Parse ``Bearer realm="...",service="...",scope="..."`` (or ``Basic ...``)."""
    if not header:
        return None
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM.match(rest, pos)
        if match is None or match.end() == pos:
            break
        value = match.group(2) if match.group(2) is not None else match.group(3)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = match.end()
    return Challenge(scheme.lower(), params)


def _config_keys(host: str) -> tuple[str, ...]:
    if host in ("registry-1.docker.io", "docker.io", "index.docker.io"):
        return DOCKER_HUB_KEYS
    return (host, f"https://{host}", f"http://{host}", f"https://{host}/v2/")


def _decode_auth(entry: Mapping[str, object], source: str) -> Credentials | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials("<token>", token, source)
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            user, _, secret = base64.b64decode(auth).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            logs.warning(f"{source}: an 'auth' entry is not base64 of user:password; ignored")
            return None
        return Credentials(user, secret, source)
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(password, str):
        return Credentials(name, password, source)
    return None


@dataclass
class CredentialStore:
    """Finds the credentials of a registry host; each host is resolved once."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    _cache: dict[str, Credentials | None] = field(default_factory=dict)
    _lock: anyio.Lock = field(default_factory=anyio.Lock)

    def _docker_config(self) -> tuple[dict[str, object], str]:
        inline = self.environ.get("DOCKER_AUTH_CONFIG")
        if inline:
            try:
                data = parse_json(inline)
            except ValueError:
                logs.warning("DOCKER_AUTH_CONFIG is not JSON; ignored")
                return {}, "DOCKER_AUTH_CONFIG"
            return (data if isinstance(data, dict) else {}), "DOCKER_AUTH_CONFIG"
        directory = self.environ.get("DOCKER_CONFIG") or os.path.join(
            self.environ.get("HOME", os.path.expanduser("~")), ".docker"
        )
        path = Path(directory) / "config.json"
        try:
            data = parse_json(path.read_bytes())
        except FileNotFoundError:
            return {}, str(path)
        except (OSError, ValueError) as exc:
            logs.warning(f"{path}: cannot read Docker's config ({exc}); no credentials from it")
            return {}, str(path)
        return (data if isinstance(data, dict) else {}), str(path)

    async def _helper(self, helper: str, host: str, source: str) -> Credentials | None:
        program = f"docker-credential-{helper}"
        for key in _config_keys(host)[:2]:
            try:
                with anyio.fail_after(HELPER_TIMEOUT):
                    result = await anyio.run_process(
                        [program, "get"], input=key.encode(), check=False
                    )
            except FileNotFoundError:
                logs.warning(f"{source}: credential helper {program} is not installed")
                return None
            except TimeoutError:
                logs.warning(f"{source}: credential helper {program} timed out for {host}")
                return None
            if result.returncode != 0:
                continue  # "credentials not found in native keychain"
            try:
                data = parse_json(result.stdout)
                return Credentials(str(data["Username"]), str(data["Secret"]), program)
            except (ValueError, KeyError, TypeError):
                logs.warning(f"{program} answered for {host} with something that is not JSON")
                return None
        return None

    async def _resolve(self, host: str) -> Credentials | None:
        user = self.environ.get("MZBUILD_ASYNC_REGISTRY_USERNAME")
        secret = self.environ.get("MZBUILD_ASYNC_REGISTRY_PASSWORD")
        hosts = self.environ.get("MZBUILD_ASYNC_REGISTRY_HOSTS")
        for_host = not hosts or host in {h.strip() for h in hosts.split(",")}
        if user and secret is not None and for_host:
            return Credentials(user, secret, "MZBUILD_ASYNC_REGISTRY_USERNAME")
        config, source = self._docker_config()
        helpers = config.get("credHelpers")
        if isinstance(helpers, dict):
            for key in _config_keys(host):
                helper = helpers.get(key)
                if isinstance(helper, str):
                    return await self._helper(helper, host, source)
        auths = config.get("auths")
        if isinstance(auths, dict):
            for key in _config_keys(host):
                entry = auths.get(key)
                if isinstance(entry, dict):
                    found = _decode_auth(entry, source)
                    if found is not None:
                        return found
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            return await self._helper(store, host, source)
        return None

    async def get(self, host: str) -> Credentials | None:
        """The credentials for ``host``, or None to go anonymous."""
        async with self._lock:
            if host not in self._cache:
                found = self._cache[host] = await self._resolve(host)
                if found is not None:
                    pair = f"{found.username}:{found.secret}"
                    logs.register_secret(
                        found.secret, pair, base64.b64encode(pair.encode()).decode()
                    )
            return self._cache[host]
