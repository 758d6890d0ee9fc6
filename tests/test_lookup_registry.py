"""Lookups against a real registry (Debian's docker-registry) in three auth set-ups."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import pytest
import structlog

from mzbuild_async.lookup.lookups import Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.auth import CredentialStore
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.schemes import SCOPES_PER_TOKEN
from tests.support.registry import PASSWORD, USER, Registry

pytestmark = pytest.mark.anyio

CREDENTIALS = {"MZBUILD_ASYNC_REGISTRY_USERNAME": USER, "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD}


def engine(
    environ: dict[str, str] | None = None,
    tiers: tuple[str, ...] = ("memory", "registry", "manifest"),
) -> Lookups:
    client = RegistryClient(credentials=CredentialStore(environ=environ or {}))
    return Lookups.create(tiers=tiers, client=client, owns_client=True)


@pytest.mark.parametrize("auth", ["none", "htpasswd", "token"])
@pytest.mark.real
async def test_present_and_absent_in_each_setup(registries: dict[str, Registry], auth: str) -> None:
    """Pushed tags are present and others absent, decided by the registry tier."""
    registry = registries[auth]
    wanted, pushed = registry.push_many(6, 3)
    eng = engine(CREDENTIALS if auth == "htpasswd" else {})
    try:
        answers = await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    for spec in wanted:
        expected = Status.PRESENT if spec in pushed else Status.ABSENT
        assert (answers[spec].status, answers[spec].tier) == (expected, "registry")
    # One HEAD per spec plus the /v2/ ping; token requests go to the issuer's host.
    assert eng.requests[registry.host] == len(wanted) + 1


@pytest.mark.real
async def test_basic_auth_without_credentials_is_unknown(registries: dict[str, Registry]) -> None:
    """A registry that wants a password we do not have gives unknown, never present."""
    registry = registries["htpasswd"]
    wanted, _ = registry.push_many(2, 1)
    eng = engine({})
    try:
        answers = await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    for answer in answers.values():
        assert answer.status is Status.UNKNOWN
        assert "wants a username and password" in answer.detail


@pytest.mark.real
async def test_credentials_from_docker_config_and_helper(
    registries: dict[str, Registry], tmp_path: Path
) -> None:
    """auths entries and credHelpers programs from config.json both log in."""
    registry = registries["htpasswd"]
    wanted, _ = registry.push_many(1, 1)
    import base64

    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": auth}}}))
    eng = engine({"DOCKER_CONFIG": str(tmp_path)})
    try:
        assert (await eng.lookup(wanted[0])).status is Status.PRESENT
    finally:
        await eng.aclose()
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text(
        "#!/bin/sh\nread host\n"
        f'echo \'{{"ServerURL": "\'$host\'", "Username": "{USER}", "Secret": "{PASSWORD}"}}\'\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {registry.host: "fake"}}))
    env = {"DOCKER_CONFIG": str(tmp_path), "PATH": f"{helper.parent}:{os.environ['PATH']}"}
    old_path = os.environ["PATH"]
    os.environ["PATH"] = env["PATH"]
    try:
        eng = engine(env)
        try:
            assert (await eng.lookup(wanted[0])).status is Status.PRESENT
        finally:
            await eng.aclose()
    finally:
        os.environ["PATH"] = old_path


@pytest.mark.real
async def test_one_token_request_serves_many_repositories(registries: dict[str, Registry]) -> None:
    """Tokens are fetched for many repositories at once, not one per lookup."""
    registry = registries["token"]
    assert registry.issuer is not None
    wanted, pushed = registry.push_many(SCOPES_PER_TOKEN + 10, 5)
    before = registry.issuer.requests
    eng = engine({})
    try:
        answers = await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    assert {s for s, a in answers.items() if a.status is Status.PRESENT} == pushed
    assert registry.issuer.requests - before == 2  # ceil(60 / 50)


@pytest.mark.real
async def test_concurrent_lookups_of_one_spec_share_a_request(
    registries: dict[str, Registry],
) -> None:
    """Many simultaneous lookups of one tag send one HEAD."""
    registry = registries["none"]
    wanted, _ = registry.push_many(1, 1)
    eng = engine({})
    results: list[Status] = []

    async def one() -> None:
        results.append((await eng.lookup(wanted[0])).status)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(one)
    finally:
        await eng.aclose()
    assert results == [Status.PRESENT] * 20
    assert eng.requests[registry.host] == 2  # the ping and one HEAD


@pytest.mark.real
async def test_disk_tier_keeps_present_only(
    registries: dict[str, Registry], tmp_path: Path
) -> None:
    """A second run answers present tags from disk with no request; absent ones are asked again."""
    registry = registries["none"]
    wanted, pushed = registry.push_many(4, 2)
    tiers = ("memory", "disk", "registry")
    first = Lookups.create(
        tiers=tiers, client=RegistryClient(), cache_dir=tmp_path, owns_client=True
    )
    try:
        await first.lookup_many(wanted)
    finally:
        await first.aclose()
    second = Lookups.create(
        tiers=tiers, client=RegistryClient(), cache_dir=tmp_path, owns_client=True
    )
    try:
        answers = await second.lookup_many(wanted)
    finally:
        await second.aclose()
    for spec in wanted:
        if spec in pushed:
            assert (answers[spec].status, answers[spec].tier) == (Status.PRESENT, "disk")
        else:
            assert (answers[spec].status, answers[spec].tier) == (Status.ABSENT, "registry")
    assert second.requests[registry.host] == 1 + len(wanted) - len(pushed)


@pytest.mark.real
async def test_warm_run_with_everything_present_sends_nothing(
    registries: dict[str, Registry], tmp_path: Path
) -> None:
    """When the disk cache knows every tag, not a single HTTP request is sent."""
    registry = registries["token"]
    wanted, _ = registry.push_many(5, 5)
    tiers = ("memory", "disk", "registry")
    for _ in range(2):
        eng = Lookups.create(
            tiers=tiers, client=RegistryClient(), cache_dir=tmp_path, owns_client=True
        )
        try:
            answers = await eng.lookup_many(wanted)
        finally:
            await eng.aclose()
    assert all(a.tier == "disk" for a in answers.values())
    assert sum(eng.requests.values()) == 0


@pytest.mark.real
async def test_secrets_never_logged(registries: dict[str, Registry], tmp_path: Path) -> None:
    """No password, token or Authorization header appears in any log event."""
    registry = registries["htpasswd"]
    wanted, _ = registry.push_many(2, 1)
    (tmp_path / "config.json").write_text("{broken")
    with structlog.testing.capture_logs() as events:
        eng = engine({**CREDENTIALS, "DOCKER_CONFIG": str(tmp_path)})
        try:
            await eng.lookup_many([*wanted, "bad reference!"])
        finally:
            await eng.aclose()
    text = json.dumps(events, default=str)
    assert PASSWORD not in text
    assert "Authorization" not in text
    assert "Bearer " not in text


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param("Upper/Case:tag", "must be lowercase", id="uppercase"),
        pytest.param("localhost:5000/x:bad tag", "bad tag", id="space-in-tag"),
        pytest.param("127.0.0.1:1/nothing/listens:here", "connection failed", id="unreachable"),
    ],
)
async def test_bad_references_and_hosts_are_unknown(spec: str, message: str) -> None:
    """Malformed references and unreachable hosts give unknown with one clear line."""
    from mzbuild_async.support.retry import RetryPolicy

    client = RegistryClient(retry=RetryPolicy(attempts=2, initial_wait=0.01))
    eng = Lookups.create(tiers=("memory", "registry"), client=client, owns_client=True)
    try:
        answer = await eng.lookup(spec)
    finally:
        await eng.aclose()
    assert answer.status is Status.UNKNOWN
    assert message in answer.detail
    assert "\n" not in answer.detail


@pytest.mark.parametrize("stale", [False, True])
@pytest.mark.real
async def test_remembered_challenge_skips_the_ping(
    registries: dict[str, Registry], stale: bool
) -> None:
    """A remembered token realm saves the /v2/ round trip; a stale one is dropped, not fatal."""
    from mzbuild_async.registry.auth import Challenge

    registry = registries["token"]
    wanted, pushed = registry.push_many(4, 2)
    first = RegistryClient()
    eng = Lookups.create(tiers=("registry",), client=first, owns_client=True)
    try:
        await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    learned = dict(first.challenges)
    challenge = learned[registry.host]
    assert challenge is not None
    assert challenge.scheme == "bearer"
    if stale:
        learned[registry.host] = Challenge(
            "bearer", {**challenge.params, "realm": "http://127.0.0.1:1/token"}
        )
    client = RegistryClient(remembered=learned, remembered_schemes=first.schemes)
    eng = Lookups.create(tiers=("registry",), client=client, owns_client=True)
    try:
        answers = await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    assert {s for s, a in answers.items() if a.status is Status.PRESENT} == pushed
    assert all(a.status is not Status.UNKNOWN for a in answers.values())
    pings = 1 if stale else 0
    assert client.requests[registry.host] == len(wanted) + pings
    assert client.challenges[registry.host] == challenge


@pytest.mark.real
async def test_remembered_no_auth_then_auth_required(registries: dict[str, Registry]) -> None:
    """A host remembered as open that now wants a token: the 401 teaches the client."""
    registry = registries["token"]
    wanted, pushed = registry.push_many(2, 1)
    client = RegistryClient(remembered={registry.host: None})
    eng = Lookups.create(tiers=("registry",), client=client, owns_client=True)
    try:
        answers = await eng.lookup_many(wanted)
    finally:
        await eng.aclose()
    assert {s for s, a in answers.items() if a.status is Status.PRESENT} == pushed
    assert client.challenges[registry.host] is not None
