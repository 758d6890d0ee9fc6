"""Argument types: each checks one flag's value, or is argparse's one-line error."""

from __future__ import annotations

import argparse
import math


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero (``--deadline``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite number of seconds")
    return value


def non_negative_seconds(text: str) -> float:
    """A finite number of seconds, zero or more (``pipeline --startup``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def positive_int(text: str) -> int:
    """An integer of at least one (``--retries``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


#: Seconds in each unit a duration may be written in.
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> float:
    """A duration: a number with a unit (``90s``, ``30m``, ``24h``, ``7d``, ``2w``) or
    plain seconds, zero or more (``gc --keep-younger``)."""
    number, unit = text.strip(), "s"
    if number and number[-1].lower() in UNITS:
        number, unit = number[:-1], number[-1].lower()
    try:
        value = float(number) * UNITS[unit]
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write e.g. 90s, 30m, 24h, 7d or 2w"
        )
    return value
