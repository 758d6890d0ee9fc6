"""structlog set-up: key-value events on stderr, never on stdout.

structlog is imported on the first event, not at start-up: most runs log
nothing, and the import is a noticeable share of a short command's time.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from .annotate import Annotator, located

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time of each event."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


#: Keys whose values never reach a log line.
SECRET_KEYS = frozenset(
    {"authorization", "password", "secret", "token", "x-registry-auth", "auth", "access_token"}
)
#: Credentials that may hide inside a message: HTTP auth values, userinfo in URLs.
SECRET_RE = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+|(?<=://)[^/\s:@]+:[^/\s@]+@")


#: Secrets this process holds (registry passwords, ``user:password``, their Basic
#: encoding): masked wherever they appear, even in text a registry echoed back.
_KNOWN_SECRETS: set[str] = set()
#: Shorter values are not masked (a one-letter password would mask every word).
MIN_SECRET_CHARS = 4


def register_secret(*values: str) -> None:
    """Mask these values in every event and every message :func:`redact_text` sees."""
    _KNOWN_SECRETS.update(v for v in values if len(v) >= MIN_SECRET_CHARS)


def redact_text(text: str) -> str:
    """``text`` without credentials: auth header values, URL userinfo, known secrets.

    Every error string that leaves the process (summary, ``--json``,
    ``--report``, failure markers, the last error line) goes through this.
    """
    text = SECRET_RE.sub(
        lambda m: f"{m.group(1)} [redacted]" if m.group(1) else "[redacted]@", text
    )
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "[redacted]")
    return text


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: "[redacted]" if str(k).lower() in SECRET_KEYS else _scrub(v)
            for k, v in value.items()
        }
    return value


def redact(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: drop credential values, mask auth headers in text."""
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
        else:
            event[key] = _scrub(event[key])
    return event


@dataclass(frozen=True)
class _Settings:
    level: int
    fmt: str
    stream: Any
    #: Colours in console logs (None: when the stream is a terminal).
    colors: bool | None = None


class _State:
    pending: _Settings | None = None
    #: The configured level (None: not configured, structlog decides).
    level: int | None = None
    #: Also print warnings that name a file and line as the CI system's annotations.
    annotate: Annotator | None = None


_state = _State()


def wants_color(stream: Any, environ: Mapping[str, str]) -> bool:
    """Colour for ``stream``, as the no-color.org and force-color.org conventions say:
    ``NO_COLOR`` (any value) turns it off, else ``FORCE_COLOR`` (but ``0``) on, else a
    terminal that is not ``TERM=dumb``."""
    if environ.get("NO_COLOR"):
        return False
    force = environ.get("FORCE_COLOR")
    if force is not None and force != "":
        return force != "0"
    return stream.isatty() is True and environ.get("TERM") != "dumb"


def configure(
    verbosity: int = 0,
    *,
    fmt: str = "auto",
    stream: TextIO | None = None,
    colors: bool | None = None,
    annotate: Annotator | None = None,
) -> None:
    """Send events to ``stream`` (stderr): readable on a TTY, JSON lines otherwise;
    ``colors`` (default: when a terminal) colours the readable form; ``annotate``
    (the CI system's) also prints warnings that name a file and line as annotations.

    ``verbosity`` 0 shows warnings, 1 info, 2 debug; negative only errors.
    Takes effect at the first event.
    """
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(
        max(-1, min(verbosity, 2)), logging.DEBUG
    )
    _state.pending = _Settings(level, fmt, stream or _Stderr(), colors)
    _state.level = level
    _state.annotate = annotate
    if "structlog" in sys.modules:
        _apply()


def reset() -> None:
    """Forget a pending configuration (for tests)."""
    _state.pending = None
    _state.level = None
    _state.annotate = None


def _apply() -> None:
    settings, _state.pending = _state.pending, None
    if settings is None:
        return
    import structlog

    out = settings.stream
    use_json = _writes_json(settings)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(
            colors=out.isatty() if settings.colors is None else settings.colors
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            redact,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(settings.level),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> FilteringBoundLogger:
    """The package's structlog logger (importing and configuring structlog now)."""
    import structlog

    _apply()
    logger: FilteringBoundLogger = structlog.get_logger("mzbuild_async", **bound)
    return logger


def warning(event: str, **values: Any) -> None:
    """Log a warning, without importing structlog when warnings are filtered out, nor
    for a JSON line (what CI logs get), which is written here exactly as structlog's
    processors and renderer would write it (its import costs ~65 ms of a command
    that prints one warning, as the real Materialize tree's manifests make every
    command print)."""
    if _state.annotate is not None and located(event) is not None:
        # On stderr, which the runner reads commands from too (stdout may be --json).
        shown = _state.annotate("warning", redact_text(event))
        if shown is not None:
            sys.stderr.write(shown + "\n")
            sys.stderr.flush()
    if _state.level is not None and _state.level > logging.WARNING:
        return
    settings = _state.pending
    if "structlog" not in sys.modules and settings is not None and _writes_json(settings):
        record = redact(None, "warning", {**values, "event": event})
        record["level"] = "warning"
        record["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        settings.stream.write(json.dumps(record, default=repr) + "\n")
        return
    get_logger().warning(event, **values)


def _writes_json(settings: _Settings) -> bool:
    return settings.fmt == "json" or (settings.fmt == "auto" and not settings.stream.isatty())
