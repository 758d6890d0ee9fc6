"""The layer cache a build starts from (``--cache-registry``): where it lives, whether
it can be used, and the logins a builder that fetches it itself needs.

A missing or unreadable cache is a miss, never a failure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..engine.protocol import Engine
from ..errors import BuildError
from ..model.status import Status
from ..registry.auth import Credentials
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..support import logs


def cache_ref(cache_registry: str, name: str) -> str:
    """The layer-cache tag of image ``name`` under ``--cache-registry``."""
    return f"{cache_registry.rstrip('/')}/{name}:buildcache"


async def credentials_for(client: RegistryClient, ref: str) -> Credentials | None:
    """Our credentials for ``ref``'s registry (None: anonymous)."""
    return await client.credentials.get(parse_reference(ref).api_host)


async def cache_usable(
    tag: str, docker: Engine, client: RegistryClient, fields: Mapping[str, str | None]
) -> bool:
    """Whether the layer cache ``tag`` can be built from: it is at its registry, and
    (for a builder that does not import it itself) pulled; ``fields`` name the image
    in the warning when it cannot be pulled."""
    probe = await client.lookup(parse_reference(tag))
    if probe.status is not Status.PRESENT:
        return False
    if await docker.imports_cache():
        return True  # (BuildKit reads it from the registry: nothing to pull)
    try:
        await docker.pull(tag, await credentials_for(client, tag))
    except BuildError as exc:
        logs.warning(f"layer cache {tag} not used: {exc}", **fields)
        return False
    return True


async def cache_logins(
    refs: Sequence[str], docker: Engine, client: RegistryClient
) -> dict[str, tuple[str, str]]:
    """Our credentials for the registries of ``refs``, by host, for a builder that
    reads them itself (BuildKit asks over its session; none: it goes anonymous)."""
    if not refs or not await docker.imports_cache():
        return {}
    logins: dict[str, tuple[str, str]] = {}
    for ref in refs:
        credentials = await credentials_for(client, ref)
        if credentials is not None:
            where = parse_reference(ref)
            for host in (where.domain, where.api_host):
                logins[host] = (credentials.username, credentials.secret)
    return logins
