"""Splitting a child process's output stream into lines."""

from __future__ import annotations

import re
from collections.abc import Callable

import anyio.abc

#: Terminal colour and cursor sequences some tools print even into a pipe.
ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences."""
    return ANSI_RE.sub("", text)


async def pump_lines(
    stream: anyio.abc.ByteReceiveStream | None, sink: Callable[[str], None]
) -> None:
    """Hand each line of ``stream`` (decoded, without its newline) to ``sink``."""
    if stream is None:
        return
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            sink(raw.decode("utf-8", "replace").rstrip("\r"))
    if pending:
        sink(pending.decode("utf-8", "replace"))
