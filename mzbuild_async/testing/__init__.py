"""Test doubles for code that uses mzbuild_async, shipped as ``httpx`` ships
``MockTransport``: the suite's own unit tier runs on them, and a script that
drives the library can be tested the same way, without Docker or a registry.

- :class:`MemoryEngine`: a container engine in memory (builds read the tar
  context and its ``FROM`` lines; it can fail a build, stall, freeze or vanish
  on command); ``memory://NAME`` engine URLs open registered instances.
- :class:`MemoryRegistry`: an OCI registry in memory behind an httpx transport
  (give ``registry.transport()`` to a ``RegistryClient`` as ``transport=``).
- :class:`FaultPlan`: faults in front of any httpx handler (the next N requests
  answer 503, 429, or have no answer; manifests missing), matched by path and
  method, with a count of what it did.
- :class:`FakeClock`: a clock and a ``sleep`` that move only when told.
- :func:`no_wait`: a retry policy that retries at once (no backoff to wait out).

Example::

    registry = MemoryRegistry()
    faults = FaultPlan(errors=2, only="/manifests/")
    client = RegistryClient(transport=faults.transport(registry.handle), retry=no_wait(3))
    probe = await client.lookup(parse_reference("r.test/app:v1"))  # 503, 503, then 404
"""

from __future__ import annotations

from ..engine.inmemory import MemoryEngine, MemoryImage
from ..registry.inmemory import MemoryRegistry
from .clock import FakeClock
from .faults import FaultPlan, no_wait

__all__ = [
    "FakeClock",
    "FaultPlan",
    "MemoryEngine",
    "MemoryImage",
    "MemoryRegistry",
    "no_wait",
]
