"""Counts in words: ``1 image``, ``2 images`` (the messages and summaries say them so)."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str = "") -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1 (``plural``: when not noun + "s")."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def amount_of_bytes(count: float) -> str:
    """``count`` bytes in the largest unit that keeps it at least 1 (``12.3 MB``)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(count) < 1000:
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} TB"
