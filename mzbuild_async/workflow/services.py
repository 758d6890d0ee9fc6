"""A run's services: its engines (one, or a pool's members that build its platform),
the registry client and the lookups, opened together and closed by whoever made them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..builds.scheduler import LOCAL_ENGINE, Slots
from ..engine.endpoints import local_endpoint
from ..engine.factory import open_engine
from ..engine.pool import Member, close_pool, open_pool
from ..engine.protocol import Engine
from ..errors import MzbuildError, UsageError, single_error
from ..lookup.lookups import Lookups
from ..model.status import TIER_ORDER
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..source.repository import Repository
from ..support import logs
from .options import RunOptions

#: Tiers that say "published" (the daemon only says "local").
PUBLISHED_TIERS = ("memory", "disk", "registry", "manifest")

if TYPE_CHECKING:
    from ..engine.buildx import BuildxBuilder


@dataclass(frozen=True)
class Services:
    """A run's engines (home first), registry client and lookups."""

    members: list[Member]
    client: RegistryClient
    lookups: Lookups
    #: From ``--engine``/``[[engine]]``.
    configured: bool

    @property
    def home(self) -> Engine:
        """The engine the daemon tier asks, and where acquire leaves its targets."""
        return self.members[0].engine

    async def image_id(self, engine: str, spec: str) -> str | None:
        """The ID of ``spec`` in the engine named ``engine`` (else the home engine);
        None when neither has it or can be asked."""
        chosen = [m for m in self.members if m.name == engine] + self.members[:1]
        for member in {m.name: m for m in chosen}.values():
            try:
                image = await member.engine.image_id(spec)
            except MzbuildError:
                continue
            if image:
                return image
        return None

    def slots(self, lost: AbstractSet[str] = frozenset()) -> list[Slots]:
        """The engines as the scheduler sees them (but those ``lost`` already)."""
        return [
            Slots(m.name, m.slots, m.platform or None) for m in self.members if m.name not in lost
        ]


@asynccontextmanager
async def open_services(
    cache_dir: Path,
    docker: Engine | None,
    client: RegistryClient | None,
    tiers: Iterable[str] = TIER_ORDER,
    options: RunOptions | None = None,
    platform: str = "",
    confirm: bool = False,
    *,
    registry: str = "",
    alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
) -> AsyncIterator[Services]:
    """The engine connections and lookups of a run, closed at the end.

    While the engines connect, ``alongside`` runs (the fingerprints) and the
    ``registry`` host is made ready (scheme, TLS handshake, challenge) by a
    warm-up that goes on in the background until the block ends: nothing of
    it waits for the rest, and the lookups join what it has in flight.
    """
    options = options or RunOptions()
    own_docker = docker is None
    # Whoever made a resource closes it: the lookups close the
    # registry client only if it was made here.
    engine = Lookups.create(
        tiers=[t for t in tiers if t in PUBLISHED_TIERS],
        client=client,
        cache_dir=cache_dir,
        owns_client=client is None,
        confirm=confirm,
    )
    members: list[Member] = []
    try:
        with single_error():
            async with anyio.create_task_group() as warm:
                if registry:
                    warm.start_soon(engine.client.warm_up, [registry])
                async with anyio.create_task_group() as tg:
                    if alongside is not None:
                        tg.start_soon(alongside)
                    members = await _connect(docker, options, platform)
                try:
                    yield Services(members, engine.client, engine, bool(options.engines))
                finally:
                    warm.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await engine.aclose()
            if own_docker:
                await close_pool([m.engine for m in members] or ([docker] if docker else []))


async def _connect(docker: Engine | None, options: RunOptions, platform: str) -> list[Member]:
    """The run's engines: the pool's members that build ``platform``, else one engine."""
    kind = options.builder if options.builder in ("buildkit", "classic") else "auto"
    if options.engines and docker is None:
        connect = partial(open_engine, builder=kind)
        return _usable_members(
            await open_pool(options.engines, slots=options.slots, connect=connect), platform
        )
    made = docker is None
    if docker is None:
        local = local_endpoint(options.environ)  # the Docker CLI's choice
        url, docker = local.url, open_engine(local=local, builder=kind)
    else:
        url = "(given)"
    try:
        await docker.ping()
    except BaseException:
        if made:  # (whoever made it closes it: no member holds it yet)
            with anyio.CancelScope(shield=True):
                await docker.aclose()
        raise
    return [Member(LOCAL_ENGINE, url, docker, platform, options.jobs)]


def registry_host(repo: Repository) -> str:
    """The API host of the run's image registry ("" when it is not a valid one)."""
    try:
        return parse_reference(f"{repo.options.image_registry}/probe:probe").api_host
    except UsageError:
        return ""


def _usable_members(members: list[Member], platform: str) -> list[Member]:
    """The members that build ``platform`` (one warning per other one)."""
    usable = [m for m in members if not platform or m.platform == platform]
    for member in members:
        if member not in usable:
            logs.warning(
                f"engine {member.name} ({member.url}) is {member.platform}; this run builds"
                f" {platform}, so it gets no builds"
            )
    if not usable:
        raise UsageError(
            f"no engine of the pool builds {platform} (they are"
            f" {', '.join(sorted({m.platform for m in members}))}); add one, or set"
            " platform in its [[engine]] table"
        )
    return usable


async def open_builder(options: RunOptions, pooled: bool) -> BuildxBuilder | None:
    """``docker buildx`` when asked for (checked to be installed), else None."""
    if options.builder != "buildx":
        return None
    if pooled:
        raise UsageError("--builder buildx drives the local docker CLI; it takes no --engine")
    from ..engine.buildx import BuildxBuilder

    buildx = BuildxBuilder(environ=options.environ)
    await buildx.check()
    return buildx


def run_platform(repo: Repository) -> str:
    """The platform every build of the run is for (``linux/amd64``)."""
    return repo.options.arch.platform
