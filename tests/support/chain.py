"""The small repository the in-memory tests share: ``base``, ``lib`` on it, ``app`` on
``lib`` (FROM scratch, a file each), and the settings that reach an in-memory registry."""

from __future__ import annotations

import httpx

from mzbuild_async.model.publication import Publication
from mzbuild_async.registry.config import RegistryConfig
from mzbuild_async.testing import no_wait
from mzbuild_async.workflow.settings import RegistrySettings

#: base <- lib <- app, by ``MZFROM``.
CHAIN = {
    "base/mzbuild.yml": "name: base\n",
    "base/Dockerfile": "FROM scratch\nCOPY hello.txt /hello.txt\n",
    "base/hello.txt": "hello\n",
    "lib/mzbuild.yml": "name: lib\n",
    "lib/Dockerfile": "MZFROM base\nCOPY lib.txt /lib.txt\n",
    "lib/lib.txt": "lib\n",
    "app/mzbuild.yml": "name: app\n",
    "app/Dockerfile": "MZFROM lib\n",
}


def memory_settings(
    transport: httpx.AsyncBaseTransport, publication: Publication | None = None
) -> RegistrySettings:
    """Registry settings whose every request goes to ``transport`` (the registry tier,
    two quick tries, a 10 s deadline)."""
    return RegistrySettings(
        RegistryConfig(), ("registry",), no_wait(2), 10.0, {}, publication, transport
    )
