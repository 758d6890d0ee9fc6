"""What a command runs with, as values: built once by the command line, passed down.

Nothing here reads the environment or a file: the command line builds these
from its flags, ``mzbuild-async.toml`` and the environment it was given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from ..model.options import BuildOptions
from ..model.publication import Destination, Publication
from ..registry.auth import CredentialStore
from ..registry.client import RegistryClient
from ..registry.config import RegistryConfig
from ..registry.tls import TlsSettings
from ..store.challenges import load_hosts, save_challenges
from ..support.retry import RetryPolicy


@dataclass(frozen=True)
class RegistrySettings:
    """How this run talks to registries and which lookup tiers it consults."""

    config: RegistryConfig
    tiers: tuple[str, ...]
    retry: RetryPolicy
    deadline: float
    environ: Mapping[str, str]
    #: Where images are published (primary and mirrors) and which tags may move
    #: (None: the options' registry alone, the default moving tags).
    publication: Publication | None = None
    #: An httpx transport every registry request goes to instead of the network
    #: (``mzbuild_async.testing.MemoryRegistry.transport()``: tests and scripting).
    transport: httpx.AsyncBaseTransport | None = None

    def publication_for(self, options: BuildOptions) -> Publication:
        """Where images built with ``options`` are published."""
        if self.publication is not None:
            return self.publication
        return Publication(Destination(options.image_registry, options.image_prefix))

    @asynccontextmanager
    async def session(self, cache_dir: Path) -> AsyncIterator[RegistryClient]:
        """A client with these settings, closed at the end of the block; the hosts'
        challenges it learned are then saved for the next run (not after a failure)."""
        async with self.client(cache_dir) as client:
            yield client
        save_challenges(cache_dir, client.challenges, client.schemes)

    def client(self, cache_dir: Path) -> RegistryClient:
        """A registry client with these settings (the caller closes it: ``async with``)."""
        challenges, schemes = load_hosts(cache_dir)
        return RegistryClient(
            credentials=CredentialStore(environ=self.environ),
            limiters=self.config.limiters(),
            insecure=self.config.insecure,
            remembered=challenges,
            remembered_schemes=schemes,
            retry=self.retry,
            deadline=self.deadline,
            tls=TlsSettings.from_environ(self.environ, self.config.tls),
            transport=self.transport,
        )
