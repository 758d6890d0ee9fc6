"""Faults in front of an httpx handler, and a retry policy without waits."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from ..support.retry import RetryPolicy

Handler = Callable[[httpx.Request], httpx.Response]


def no_wait(attempts: int = 2, max_seconds: float = 5.0) -> RetryPolicy:
    """A retry policy that tries ``attempts`` times without waiting between tries."""
    return RetryPolicy(
        attempts=attempts, max_seconds=max_seconds, initial_wait=0.0, max_wait=0.0, jitter=0.0
    )


@dataclass
class FaultPlan:
    """What the next requests get instead of the handler's answer; change the fields
    between requests. Each count goes down as the fault is used; :attr:`done` counts
    the faults dealt, by kind."""

    #: The next N requests get 503.
    errors: int = 0
    #: The next N requests get 429 with ``Retry-After: retry_after``.
    throttle: int = 0
    retry_after: float = 0.0
    #: The next N requests get no answer (a connection that fails).
    resets: int = 0
    #: Every HEAD and GET of a manifest gets 404 (a tag the registry cannot find).
    missing_manifests: bool = False
    #: Faults apply only to paths containing this (None: every path)...
    only: str | None = None
    #: ...and only to these methods (None: every method).
    methods: tuple[str, ...] | None = None
    done: Counter[str] = field(default_factory=Counter)

    def applies(self, request: httpx.Request) -> bool:
        """Whether ``request`` is one the faults are for."""
        if self.only is not None and self.only not in request.url.path:
            return False
        return self.methods is None or request.method in self.methods

    def wrap(self, handler: Handler) -> Handler:
        """``handler`` with the faults in front of it."""

        def faulty(request: httpx.Request) -> httpx.Response:
            if not self.applies(request):
                return handler(request)
            if self.resets > 0:
                self.resets -= 1
                self.done["reset"] += 1
                raise httpx.ConnectError("connection reset (fault plan)", request=request)
            if self.errors > 0:
                self.errors -= 1
                self.done["503"] += 1
                return httpx.Response(503, json={"errors": [{"code": "UNAVAILABLE"}]})
            if self.throttle > 0:
                self.throttle -= 1
                self.done["429"] += 1
                return httpx.Response(429, headers={"Retry-After": f"{self.retry_after:g}"})
            manifest = "/manifests/" in request.url.path
            if self.missing_manifests and manifest and request.method in ("HEAD", "GET"):
                self.done["missing"] += 1
                return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
            return handler(request)

        return faulty

    def transport(self, handler: Handler) -> httpx.MockTransport:
        """An httpx transport answering with ``handler`` behind the faults."""
        return httpx.MockTransport(self.wrap(handler))
