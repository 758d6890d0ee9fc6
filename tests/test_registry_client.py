"""The registry client's own logic, on httpx.MockTransport and a fake clock.

The real-registry tests prove it works; these pin down the rules: what is
retried, when tokens expire, when a 401 is final.
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest

from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.support.retry import RetryPolicy
from mzbuild_async.testing import FakeClock

pytestmark = pytest.mark.anyio
REF = parse_reference("registry.test/acme/app:mzbuild-X")
CHALLENGE = 'Bearer realm="https://auth.test/token",service="registry.test"'
MANIFEST = {"content-type": "application/vnd.oci.image.manifest.v1+json"}


async def no_sleep(seconds: float) -> None:
    return None


def client(handler: object, clock: FakeClock | None = None) -> RegistryClient:
    assert callable(handler)
    return RegistryClient(
        transport=httpx.MockTransport(handler),
        retry=RetryPolicy(attempts=3, initial_wait=0.0),
        sleep=no_sleep,
        clock=clock or FakeClock(1000.0),
    )


async def test_404_is_absent_and_never_retried() -> None:
    """A 404 is a definite absent after exactly one HEAD."""
    seen: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        seen[f"{request.method} {request.url.path}"] += 1
        return httpx.Response(404 if "manifests" in request.url.path else 200)

    c = client(handler)
    assert (await c.lookup(REF)).status is Status.ABSENT
    assert seen["HEAD /v2/acme/app/manifests/mzbuild-X"] == 1


async def test_5xx_is_retried_then_unknown() -> None:
    """5xx answers are retried up to the policy's attempts, then the answer is unknown."""
    seen: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.method] += 1
        return httpx.Response(200 if request.url.path == "/v2/" else 502)

    probe = await client(handler).lookup(REF)
    assert probe.status is Status.UNKNOWN
    assert "server error 502" in probe.detail
    assert seen["HEAD"] == 3


async def test_tokens_are_reused_until_they_expire() -> None:
    """A token without expires_in lives 60 s (less a safety margin), then is fetched again."""
    clock = FakeClock(1000.0)
    tokens = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal tokens
        if request.url.host == "auth.test":
            tokens += 1
            return httpx.Response(200, json={"token": f"t{tokens}"})
        if request.headers.get("authorization") != f"Bearer t{tokens}":
            return httpx.Response(401, headers={"www-authenticate": CHALLENGE})
        return httpx.Response(200, headers=MANIFEST)

    c = client(handler, clock)
    assert (await c.lookup(REF)).status is Status.PRESENT
    clock.now += 30
    assert (await c.lookup(REF)).status is Status.PRESENT
    assert tokens == 1
    clock.now += 31
    assert (await c.lookup(REF)).status is Status.PRESENT
    assert tokens == 2


async def test_401_with_a_fresh_token_is_final() -> None:
    """When a freshly fetched token is refused too, the answer is unknown, not retried forever."""
    heads = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal heads
        if request.url.host == "auth.test":
            return httpx.Response(200, json={"token": "t", "expires_in": 300})
        heads += request.method == "HEAD"
        return httpx.Response(401, headers={"www-authenticate": CHALLENGE})

    probe = await client(handler).lookup(REF)
    assert probe.status is Status.UNKNOWN
    assert "unauthorized" in probe.detail
    assert heads == 2


async def test_head_200_without_manifest_signs_is_unknown() -> None:
    """A 200 that looks like an HTML page (a captive portal) is never present."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, text="<html/>")

    probe = await client(handler).lookup(REF)
    assert probe.status is Status.UNKNOWN
    assert "text/html, not a manifest" in probe.detail


@pytest.mark.parametrize(
    ("host", "insecure", "plain"),
    [
        pytest.param("registry.test", False, False, id="remote-tls"),
        pytest.param("registry.test", False, True, id="remote-plain-refused"),
        pytest.param("localhost:5000", False, False, id="loopback-tls"),
        pytest.param("localhost:5000", False, True, id="loopback-plain"),
        pytest.param("registry.test", True, True, id="insecure-plain"),
    ],
)
async def test_https_first_plain_http_only_as_a_fallback(
    host: str, insecure: bool, plain: bool
) -> None:
    """Every registry is asked over HTTPS first. A loopback or insecure one answering TLS in
    plain HTTP is asked over HTTP from then on; a remote one never is (one line instead)."""
    import ssl

    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        if plain and request.url.scheme == "https":
            error = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
            raise httpx.ConnectError(str(error)) from error
        return httpx.Response(404)

    c = client(handler)
    if insecure:
        c.insecure = frozenset({host})
    first = await c.lookup(parse_reference(f"{host}/a:b"))
    second = await c.lookup(parse_reference(f"{host}/a:c"))
    assert urls[0].startswith(f"https://{host}/")
    falls_back = plain and (insecure or host.startswith("localhost"))
    if falls_back:
        assert (first.status, second.status) == (Status.ABSENT, Status.ABSENT)
        assert c.scheme(host) == "http"
        assert urls[-1].startswith(f"http://{host}/")
        assert sum(u.startswith("https:") for u in urls) == 1  # learned once
    elif plain:
        assert first.status is Status.UNKNOWN
        assert "TLS handshake failed" in first.detail
        assert all(u.startswith("https:") for u in urls)
    else:
        assert all(u.startswith("https:") for u in urls)
        assert first.status is Status.ABSENT


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("127.0.0.1:5000", ("127.0.0.1", 5000), id="ipv4-port"),
        pytest.param("[::1]:5000", ("::1", 5000), id="ipv6-port"),
        pytest.param("[::1]", ("::1", 443), id="ipv6"),
        pytest.param("registry.test", ("registry.test", 443), id="name"),
    ],
)
def test_host_and_port_for_the_tls_diagnosis(host: str, expected: tuple[str, int]) -> None:
    """The TLS diagnosis connects where the registry host says, 443 by default."""
    from mzbuild_async.registry.transport import _host_and_port

    assert _host_and_port(host) == expected


async def test_a_new_auth_scheme_is_one_class_and_one_entry(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    """An authenticator registered in SCHEMES is used by the client and remembered by the
    challenge store; nothing else changes (the extension cost the schemes module claims)."""
    from dataclasses import dataclass
    from pathlib import Path
    from typing import ClassVar

    from mzbuild_async.registry import schemes
    from mzbuild_async.registry.auth import Challenge
    from mzbuild_async.store.challenges import load_challenges, save_challenges

    @dataclass
    class TokenAuth:
        context: schemes.AuthContext
        name: ClassVar[str] = "token"

        @staticmethod
        def valid(params: object) -> bool:
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
            return {"Authorization": f"Token {challenge.params['key']}-{repo}"}

        async def prepare(self, host: str, challenge: Challenge, repos: object) -> None:
            return None

    monkeypatch.setitem(schemes.SCHEMES, "token", TokenAuth)
    authorizations: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(401, headers={"www-authenticate": 'Token key="k1"'})
        authorizations.append(request.headers.get("authorization"))
        if request.headers.get("authorization") != "Token k1-acme/app":
            return httpx.Response(401, headers={"www-authenticate": 'Token key="k1"'})
        return httpx.Response(200, headers=MANIFEST)

    c = client(handler)
    assert (await c.lookup(REF)).status is Status.PRESENT
    assert authorizations == ["Token k1-acme/app"]
    cache = Path(str(tmp_path))
    save_challenges(cache, c.challenges)
    assert load_challenges(cache) == {"registry.test": Challenge("token", {"key": "k1"})}
    monkeypatch.delitem(schemes.SCHEMES, "token")  # unknown again: not remembered
    assert load_challenges(cache) == {}


async def test_an_unknown_scheme_is_unknown_with_its_name() -> None:
    """A challenge of no scheme in SCHEMES: the lookup is unknown and says which scheme."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"www-authenticate": 'Negotiate realm="x"'})

    probe = await client(handler).lookup(REF)
    assert probe.status is Status.UNKNOWN
    assert "unsupported authentication scheme 'negotiate'" in probe.detail


@pytest.mark.parametrize("announced", [True, False], ids=["with Content-Length", "chunked"])
async def test_a_body_over_the_cap_is_never_read_whole(announced: bool) -> None:
    """A 150 MB answer to a manifest GET: refused from its Content-Length before a byte
    is read, or (chunked) once the cap has come; the rest is never asked for."""
    from mzbuild_async.errors import TransferError
    from mzbuild_async.registry.transport import MAX_BODY
    from mzbuild_async.registry.writer import RegistryWriter

    chunk = b"x" * (1 << 20)
    sent: list[int] = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[no-untyped-def]
            for _ in range(150):
                sent.append(len(chunk))
                yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}
        if announced:
            headers["Content-Length"] = str(150 * len(chunk))
        return httpx.Response(200, headers=headers, stream=Endless())

    async with client(handler) as registry:
        writer = RegistryWriter(registry)
        with pytest.raises(TransferError, match=f"is over {MAX_BODY} bytes") as caught:
            await writer.manifest(parse_reference("reg.test/p/app:v1"))
    assert "nothing of it was kept" in str(caught.value)
    assert sum(sent) <= (0 if announced else MAX_BODY + len(chunk))


@pytest.mark.parametrize(
    "error", [httpx.WriteTimeout(""), httpx.ReadTimeout(""), httpx.ConnectError("")]
)
async def test_a_failure_without_a_message_is_named_by_its_kind(error: httpx.HTTPError) -> None:
    """A timeout often has no text: the line names its kind, never "PUT failed: "."""
    from mzbuild_async.registry.client import RegistryUnavailable

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method != "PUT":
            return httpx.Response(200)  # (the /v2/ probe: no auth)
        raise error

    async def body() -> object:
        yield b"x"

    async with client(handler) as registry:
        with pytest.raises(RegistryUnavailable) as caught:
            await registry.put_stream(REF, "/v2/acme/app/blobs/uploads/u1", body(), 1)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.endswith(f"PUT failed: {type(error).__name__}"), message
