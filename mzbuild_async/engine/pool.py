"""A pool of Docker engines: each one connected, asked what it is, or left out.

:func:`open_pool` connects to every configured engine at once, asks each
for its platform and CPU count (``/info``) unless configured, and leaves
out, with one warning each, those that do not answer. The first engine that
answers is the *home* engine: the one the daemon lookup tier asks, and the
one ``acquire`` and ``run`` leave their targets in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio

from ..errors import EngineError, UsageError
from ..support import logs
from .endpoints import Endpoint
from .factory import open_engine
from .protocol import Engine

#: Seconds an engine has to answer its first request.
CONNECT_SECONDS = 20.0


@dataclass(frozen=True)
class Member:
    """One engine of a run's pool."""

    name: str
    url: str
    engine: Engine
    platform: str
    slots: int
    #: The engine's own ID (empty when it does not say).
    id: str = ""


async def open_pool(
    endpoints: Sequence[Endpoint],
    *,
    slots: int | None = None,
    connect: Callable[[Endpoint], Engine] = open_engine,
    timeout: float = CONNECT_SECONDS,
) -> list[Member]:
    """Connect to every engine at once; those that answer, in the configured order.

    ``slots`` (``--jobs``) overrides each engine's slots; else its configured
    slots, else its CPU count. No engine answering is a :class:`UsageError`.
    """
    members: dict[int, Member] = {}
    engines = [connect(endpoint) for endpoint in endpoints]

    async def join(i: int, endpoint: Endpoint, engine: Engine) -> None:
        why = f"engine {endpoint.name} ({endpoint.url}) did not answer in {timeout:g} s"
        with anyio.move_on_after(timeout):
            try:
                info = await engine.info()
            except EngineError as exc:
                why = str(exc)  # (it names the engine)
            else:
                members[i] = Member(
                    endpoint.name,
                    endpoint.url,
                    engine,
                    endpoint.platform or info.platform,
                    slots or endpoint.slots or info.cpus,
                    info.id,
                )
                return
        logs.warning(f"{why}; left out of this run")
        with anyio.CancelScope(shield=True):
            await engine.aclose()

    try:
        async with anyio.create_task_group() as tg:
            for i, (endpoint, engine) in enumerate(zip(endpoints, engines, strict=True)):
                tg.start_soon(join, i, endpoint, engine)
    except BaseException:
        await close_pool([m.engine for m in members.values()])
        raise
    if not members:
        raise UsageError(
            f"none of the {len(endpoints)} engines answered; start them or fix --engine"
            " / [[engine]] in mzbuild-async.toml"
        )
    return await _distinct([members[i] for i in sorted(members)])


async def _distinct(members: list[Member]) -> list[Member]:
    """The members without repeats: one engine reached under several URLs (the same
    socket by two paths, a context and its URL) counts once, as the first of them."""
    first: dict[str, Member] = {}
    kept: list[Member] = []
    for member in members:
        same = first.get(member.id) if member.id else None
        if same is None:
            first[member.id] = member
            kept.append(member)
            continue
        logs.warning(
            f"engine {member.name} ({member.url}) is the same Docker engine as {same.name}"
            f" ({same.url}: same ID, host and data root); left out, so it is not used twice"
        )
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_SECONDS):
            await member.engine.aclose()
    return kept


#: Seconds closing one engine's connection may take (an SSH engine that froze
#: may never answer the goodbye).
CLOSE_SECONDS = 5.0


async def close_pool(engines: Sequence[Engine]) -> None:
    """Close every engine's connection (shielded and bounded: also when the run is
    cancelled, and when an engine no longer answers)."""
    with anyio.CancelScope(shield=True):
        for engine in engines:
            with anyio.move_on_after(CLOSE_SECONDS):
                await engine.aclose()
