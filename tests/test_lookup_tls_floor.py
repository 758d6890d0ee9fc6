"""TLS lookups at their floor, counted at a TCP line in front of the real registry:
one connection (so one handshake) per host under HTTP/2, whatever the batch size,
and a remembered plain-HTTP scheme that went stale switches to TLS once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import anyio
import pytest

from mzbuild_async.lookup.lookups import Lookups
from mzbuild_async.model.status import Status
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.registry.tls import TlsFiles, TlsSettings
from tests.support.delayline import DelayLine
from tests.support.registry import Registry, run_registry
from tests.support.tls import TlsMaterial, make_tls

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.real]


@pytest.fixture(scope="module")
def tls_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TlsMaterial]]:
    pki = make_tls(tmp_path_factory.mktemp("pki"))
    with run_registry(tmp_path_factory.mktemp("reg-tls"), tls=pki) as registry:
        yield registry, pki


@asynccontextmanager
async def line_to(registry: Registry) -> AsyncIterator[DelayLine]:
    line = DelayLine(int(registry.host.rsplit(":", 1)[1]))
    async with anyio.create_task_group() as tg:
        await tg.start(line.serve)
        yield line
        tg.cancel_scope.cancel()


def _client(line: DelayLine, pki: TlsMaterial, **options: object) -> RegistryClient:
    tls = TlsSettings.from_environ({}, {line.host: TlsFiles(cas=(pki.ca,))})
    return RegistryClient(tls=tls, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("remembered", [False, True], ids=["first-contact", "remembered"])
async def test_one_connection_per_host_under_http2(
    tls_registry: tuple[Registry, TlsMaterial], remembered: bool
) -> None:
    registry, pki = tls_registry
    async with line_to(registry) as line:
        specs, pushed = registry.push_many(60, 30, host=line.host)
        options = {"remembered": {line.host: None}} if remembered else {}
        client = _client(line, pki, **options)
        async with Lookups.create(tiers=("memory", "registry"), client=client) as engine:
            await engine.warm_up([line.host])
            answers = await engine.lookup_many(specs)
        await client.aclose()
    assert {s: a.status for s, a in answers.items()} == {
        s: Status.PRESENT if s in pushed else Status.ABSENT for s in specs
    }
    assert line.connections == 1, line.connections


async def test_a_stale_plain_http_scheme_switches_to_tls_once(
    tls_registry: tuple[Registry, TlsMaterial],
) -> None:
    registry, pki = tls_registry
    async with line_to(registry) as line:
        specs, pushed = registry.push_many(10, 5, host=line.host)
        client = _client(
            line, pki, remembered={line.host: None}, remembered_schemes={line.host: "http"}
        )
        async with Lookups.create(tiers=("memory", "registry"), client=client) as engine:
            answers = await engine.lookup_many(specs)
        await client.aclose()
    assert {s: a.status for s, a in answers.items()} == {
        s: Status.PRESENT if s in pushed else Status.ABSENT for s in specs
    }
    assert client.schemes == {line.host: "https"}
