"""What each registry host asked of us last time: its auth challenge and scheme.

Remembering ``Bearer realm=...,service=...`` (or "no auth") saves the
``GET /v2/`` round trip that otherwise precedes the first token request of
every run; remembering that a loopback or insecure host speaks plain HTTP
saves the HTTPS attempt that would find it out. It holds no secret. What is
remembered is only a guess: the client drops it and asks again, once, if it
stops working.

An entry is ``{"challenge": CHALLENGE-OR-NULL, "transport": "http"|"https"}``
(either key may be missing); the first version's entries (the challenge
itself) are still read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ..registry.auth import Challenge
from ..registry.schemes import usable
from ..support import logs
from . import layout
from .integrity import read_json, write_json

FILE_NAME = layout.HOSTS


def _parse(entry: object) -> tuple[bool, Challenge | None]:
    """Whether an entry is valid, and the challenge it stands for (None: no auth)."""
    if entry is None:
        return True, None
    if not isinstance(entry, dict) or set(entry) != {"scheme", "params"}:
        return False, None
    scheme, params = entry["scheme"], entry["params"]
    if not isinstance(scheme, str) or not isinstance(params, dict):
        return False, None
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        return False, None
    challenge = Challenge(scheme, params)
    return (True, challenge) if usable(challenge) else (False, None)


_TRANSPORTS = ("http", "https")


@dataclass(frozen=True)
class Remembered:
    """What the file says of one host (absent parts: not known)."""

    challenge: Challenge | None = None
    knows_challenge: bool = False
    scheme: str | None = None


def _entry(entry: object) -> Remembered | None:
    """One entry of the file, or None when it is not valid."""
    if isinstance(entry, dict) and set(entry) <= {"challenge", "transport"} and entry:
        scheme = entry.get("transport")
        if scheme is not None and scheme not in _TRANSPORTS:
            return None
        if "challenge" not in entry:
            return Remembered(scheme=scheme)
        valid, challenge = _parse(entry["challenge"])
        return Remembered(challenge, True, scheme) if valid else None
    valid, challenge = _parse(entry)  # (the first version: the challenge itself)
    return Remembered(challenge, True) if valid else None


def load_hosts(directory: Path) -> tuple[dict[str, Challenge | None], dict[str, str]]:
    """The remembered challenges and schemes (none when the file is missing or fails
    its check; an entry that is not valid is left out, with one warning)."""
    path = directory / FILE_NAME
    data = read_json(path, "asking each registry again")
    if data is None:
        return {}, {}
    challenges: dict[str, Challenge | None] = {}
    schemes: dict[str, str] = {}
    bad = 0
    for host, entry in data.items() if isinstance(data, dict) else ():
        found = _entry(entry)
        if found is None or not host:
            bad += 1
            continue
        if found.knows_challenge:
            challenges[host] = found.challenge
        if found.scheme is not None:
            schemes[host] = found.scheme
    if bad or not isinstance(data, dict):
        logs.warning(f"{path}: {bad or 'all'} entries are not valid; asking those registries again")
    return challenges, schemes


def load_challenges(directory: Path) -> dict[str, Challenge | None]:
    """The remembered challenges (see :func:`load_hosts`)."""
    return load_hosts(directory)[0]


def save_challenges(
    directory: Path,
    challenges: Mapping[str, Challenge | None],
    schemes: Mapping[str, str] | None = None,
) -> None:
    """Merge ``challenges`` and ``schemes`` into the file (atomically); errors are one
    warning."""
    schemes = schemes or {}
    if not challenges and not schemes:
        return
    path = directory / FILE_NAME
    merged: dict[str, dict[str, object]] = {}
    old = read_json(path, "", warn=False)  # load_hosts has warned about it
    for host, entry in old.items() if isinstance(old, dict) else ():
        found = _entry(entry)
        if found is not None:
            merged[host] = _encoded(found)
    for host, challenge in challenges.items():
        merged.setdefault(host, {})["challenge"] = _challenge_json(challenge)
    for host, scheme in schemes.items():
        merged.setdefault(host, {})["transport"] = scheme
    try:
        write_json(path, merged)
    except OSError as exc:
        logs.warning(f"{path}: cannot write ({exc}); registries will be asked again next run")


def _challenge_json(challenge: Challenge | None) -> object:
    if challenge is None:
        return None
    return {"scheme": challenge.scheme, "params": dict(challenge.params)}


def _encoded(found: Remembered) -> dict[str, object]:
    entry: dict[str, object] = {}
    if found.knows_challenge:
        entry["challenge"] = _challenge_json(found.challenge)
    if found.scheme is not None:
        entry["transport"] = found.scheme
    return entry
