"""The one retry helper: transient failures again, anything else never; the engine decides."""

from __future__ import annotations

import anyio
import pytest

from mzbuild_async.engine.answers import stream_error as _stream_error
from mzbuild_async.support.retry import RetryPolicy, Transient, call_with_retries

POLICY = RetryPolicy(attempts=4, initial_wait=0.0, max_wait=0.0, jitter=0.0)


async def no_sleep(_seconds: float) -> None:
    """Tests do not wait."""


def test_transient_failures_are_retried_until_success() -> None:
    """Two transient failures, then an answer: the answer, after three calls."""
    calls: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise Transient("try again")
        return "ok"

    assert anyio.run(call_with_retries, POLICY, flaky, no_sleep) == "ok"
    assert len(calls) == 3


def test_attempts_are_bounded_and_the_last_failure_is_raised() -> None:
    """A failure that never goes away is raised after the policy's attempts."""
    calls: list[int] = []

    async def broken() -> str:
        calls.append(1)
        raise Transient(f"failure {len(calls)}")

    with pytest.raises(Transient, match="failure 4"):
        anyio.run(call_with_retries, POLICY, broken, no_sleep)
    assert len(calls) == 4


def test_other_errors_are_never_retried() -> None:
    """A final error (not Transient) is raised at the first call."""
    calls: list[int] = []

    async def denied() -> str:
        calls.append(1)
        raise PermissionError("denied")

    with pytest.raises(PermissionError):
        anyio.run(call_with_retries, POLICY, denied, no_sleep)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("message", "transient"),
    [
        pytest.param("received unexpected HTTP status: 503 Service Unavailable", True, id="503"),
        pytest.param("toomanyrequests: rate limit", True, id="429"),
        pytest.param("read tcp 1.2.3.4: i/o timeout", True, id="io-timeout"),
        pytest.param("denied: requested access to the resource is denied", False, id="denied"),
        pytest.param("manifest unknown", False, id="unknown"),
    ],
)
def test_the_engine_boundary_says_what_is_transient(message: str, transient: bool) -> None:
    """An error item of the engine's push/pull stream becomes a TransferError marked once."""
    error = _stream_error("push of x", {"error": message, "errorDetail": {"message": message}})
    assert error.transient is transient
    assert str(error) == f"push of x failed: {message}"


@pytest.mark.parametrize(
    ("message", "unreachable"),
    [
        ('Get "https://10.231.3.2:5000/v2/": dial tcp 10.231.3.2:5000: connect: network is'
         " unreachable", True),
        ("dial tcp 10.0.0.9:5000: connect: no route to host", True),
        ("dial tcp: lookup registry.internal: no such host", True),
        ("net/http: TLS handshake timeout", True),
        ("received unexpected HTTP status: 500 Internal Server Error", False),
        ("denied: requested access to the resource is denied", False),
        ("manifest for reg/x:t not found: manifest unknown", False),
    ],
)  # fmt: skip
def test_the_engine_boundary_says_when_the_registry_was_not_reached(
    message: str, unreachable: bool
) -> None:
    """An engine that could not connect to the registry at all says so (a pool moves its
    work); one the registry answered, however badly, did reach it. The mark survives
    the retries running out."""
    from mzbuild_async.engine.answers import retries_exhausted

    error = _stream_error("push of x", {"error": message})
    assert error.unreachable is unreachable
    with pytest.raises(Transient) as raised:
        raise Transient(str(error)) from error
    assert retries_exhausted("push of x", raised.value).unreachable is unreachable
