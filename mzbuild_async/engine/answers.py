"""What the Docker engine API's answers mean, and what its requests say: its errors,
its auth header, a push's digest, the builder its ``/version`` offers, a build's
parameters.

The engine speaks text in its progress streams (``error``/``errorDetail``) and
aiohttp's exceptions below them; this is the one place that reads them, so
everything past it sees :class:`~..errors.TransferError` (transient or not),
:class:`~..errors.ManifestUnknown` or a connection failure.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ManifestUnknown, TransferError
from ..registry.auth import Credentials
from .protocol import BuildRequest, LineSink

#: The builders an engine may build with (``auto``: BuildKit where it has it).
AUTO, BUILDKIT, CLASSIC = "auto", "buildkit", "classic"


#: The classic builder's answer when an image it used as cache was removed while it
#: ran (another job's ``docker rmi`` on a shared engine): the build itself was sound.
_CACHE_VANISHED = re.compile(r"failed to get digest sha256:[0-9a-f]+: .*no such file or directory")


def cache_vanished(message: str) -> bool:
    """Whether a failed build's ``message`` says only that its cache image vanished
    under it (building again succeeds: the engine no longer offers that cache)."""
    return _CACHE_VANISHED.search(message) is not None


def builder_for(version: Mapping[str, Any]) -> str:
    """The builder an engine's ``/version`` offers: BuildKit from API 1.39 on Linux,
    not podman's (its Docker API builds with buildah, the classic way)."""
    components = " ".join(str(c.get("Name", "")) for c in version.get("Components") or [])
    if "podman" in components.lower():
        return CLASSIC
    api = tuple(int(p) for p in str(version.get("ApiVersion", "0.0")).split(".")[:2])
    linux = str(version.get("Os", "linux")) == "linux"
    return BUILDKIT if api >= (1, 39) and linux else CLASSIC


def build_params(request: BuildRequest, buildargs: Mapping[str, str]) -> dict[str, str]:
    """The query of ``POST /build`` both builders share."""
    params = {
        "t": request.tag,
        "dockerfile": request.dockerfile,
        "buildargs": json.dumps(dict(buildargs)),
        "labels": json.dumps(dict(request.labels)),
    }
    if request.platform:
        params["platform"] = request.platform
    if request.cache_from:
        params["cachefrom"] = json.dumps(list(request.cache_from))
    return params


def registry_auth(host: str, credentials: Credentials | None) -> str:
    """The ``X-Registry-Auth`` header value for ``host`` (anonymous when None): how the
    Docker engine API takes our credentials."""
    if credentials is None:
        payload: dict[str, str] = {}
    else:
        payload = {
            "username": credentials.username,
            "password": credentials.secret,
            "serveraddress": host,
        }
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode("ascii")


def identity(info: Mapping[str, Any]) -> str:
    """One engine's identity from its ``/info`` (see :attr:`EngineInfo.id`)."""
    engine_id = str(info.get("ID") or "")
    if not engine_id:
        return ""
    return f"{engine_id} {info.get('Name', '')} {info.get('DockerRootDir', '')}"


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the engine could not be reached (rather than refused)."""
    return isinstance(exc, OSError | ValueError) or type(exc).__module__.startswith("aiohttp")


#: The digest in a push's last status line (``TAG: digest: sha256:... size: N``).
PUSHED_DIGEST = re.compile(r"\bdigest: (sha256:[0-9a-f]{64})\b")

#: What a pull or push error from the engine's stream says when another try
#: may succeed. The stream carries only text (``error``/``errorDetail``), so
#: this boundary reads it once; everything past it sees ``transient``.
TRANSIENT_STREAM_ERROR = re.compile(
    r"timeout|timed out|reset by peer|EOF|connection refused|50[0234]|429|toomanyrequests"
    r"|i/o|temporar",
    re.IGNORECASE,
)


#: What the engine says when it cannot connect to the registry at all (its own link
#: to it is cut, or the registry is down): ``dial tcp HOST: connect: ...``, a lookup
#: of the registry's name that failed, a TLS handshake that never came.
UNREACHABLE_STREAM_ERROR = re.compile(
    r"dial tcp|no route to host|network is unreachable|no such host|TLS handshake timeout",
    re.IGNORECASE,
)


#: What the engine says when the registry has no manifest at a tag (dockerd:
#: ``manifest for X not found: manifest unknown``; podman: ``manifest unknown``).
MANIFEST_UNKNOWN = re.compile(r"manifest unknown|manifest for \S+ not found", re.IGNORECASE)


def stream_error(what: str, item: Mapping[str, Any]) -> TransferError:
    """The error an ``error`` item of a pull or push stream stands for."""
    message = str(item.get("error", "")).strip()
    if MANIFEST_UNKNOWN.search(message):
        return ManifestUnknown(f"{what} failed: {message}")
    unreachable = UNREACHABLE_STREAM_ERROR.search(message) is not None
    return TransferError(
        f"{what} failed: {message}",
        transient=bool(TRANSIENT_STREAM_ERROR.search(message)),
        unreachable=unreachable,
    )


def moved_bytes(item: Mapping[str, Any], layers: dict[str, int]) -> None:
    """Fold one item of a pull's or push's progress stream into ``layers`` (layer ID ->
    bytes): each layer that downloads or uploads counts its total (those the other
    side had already move nothing)."""
    detail = item.get("progressDetail")
    if item.get("status") in ("Downloading", "Pushing") and isinstance(detail, dict):
        total = detail.get("total")
        if isinstance(total, int) and total > 0:
            layers[str(item.get("id", ""))] = total


#: dockerd's countdown before it tries a layer's transfer again (5 s, then 10, 15...).
RETRYING = re.compile(r"\bRetrying in (\d+) seconds?\b")
#: A countdown this long or longer: the first retry of that layer failed too.
RETRIED_ONCE_SECONDS = 10


def give_up_retrying(sink: LineSink, what: str, pooled: bool) -> LineSink:
    """``sink`` that, for an engine of a pool (``pooled``), gives up ``what`` (a pull or a
    push) once dockerd counts down to a layer's second retry: the engine's link to the
    registry keeps failing (dockerd alone would go on retrying for minutes over a
    flapping link), and another engine's may not. The :class:`TransferError` raised
    (``unreachable``) moves the work; the stream closed, dockerd stops the transfer."""
    if not pooled:
        return sink

    def watched(line: str) -> None:
        sink(line)
        retrying = RETRYING.search(line)
        if retrying and int(retrying.group(1)) >= RETRIED_ONCE_SECONDS:
            raise TransferError(
                f"{what} failed: the engine's link to the registry keeps failing (dockerd:"
                f" {line.strip()!r}); given up to move the work",
                unreachable=True,
            )

    return watched


def retries_exhausted(what: str, exc: Exception) -> TransferError:
    """The failure of ``what`` once its retries ran out on ``exc`` (still saying whether
    the engine could not reach the registry at all: a pool moves such work)."""
    cause = exc.__cause__
    unreachable = isinstance(cause, TransferError) and cause.unreachable
    return TransferError(f"{what} failed after retries: {exc}", unreachable=unreachable)
