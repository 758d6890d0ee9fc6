"""What each registry host asked of us last time: its auth challenge.

Remembering ``Bearer realm=...,service=...`` (or "no auth") saves the
``GET /v2/`` round trip that otherwise precedes the first token request of
every run. It holds no secret. A remembered challenge is only a guess: the
client drops it and asks again if it stops working.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..registry.auth import Challenge
from ..support import logs
from .integrity import read_json, write_json

FILE_NAME = "hosts.json"
_SCHEMES = ("basic", "bearer")


def _parse(entry: object) -> tuple[bool, Challenge | None]:
    """Whether an entry is valid, and the challenge it stands for (None: no auth)."""
    if entry is None:
        return True, None
    if not isinstance(entry, dict) or set(entry) != {"scheme", "params"}:
        return False, None
    scheme, params = entry["scheme"], entry["params"]
    if not isinstance(scheme, str) or scheme.lower() not in _SCHEMES:
        return False, None
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in params.items()
    ):
        return False, None
    realm = params.get("realm")
    if scheme.lower() == "bearer" and not (
        isinstance(realm, str) and realm.startswith(("https://", "http://"))
    ):
        return False, None
    return True, Challenge(scheme, params)


def load_challenges(directory: Path) -> dict[str, Challenge | None]:
    """The remembered challenges (none when the file is missing or fails its check)."""
    path = directory / FILE_NAME
    data = read_json(path, "asking each registry again")
    if data is None:
        return {}
    found: dict[str, Challenge | None] = {}
    bad = 0
    for host, entry in data.items() if isinstance(data, dict) else ():
        valid, challenge = _parse(entry)
        if valid and host:
            found[host] = challenge
        else:
            bad += 1
    if bad or not isinstance(data, dict):
        logs.warning(f"{path}: {bad or 'all'} entries are not valid; asking those registries again")
    return found


def save_challenges(directory: Path, challenges: Mapping[str, Challenge | None]) -> None:
    """Merge ``challenges`` into the file (atomically); errors are one warning."""
    if not challenges:
        return
    path = directory / FILE_NAME
    merged: dict[str, object] = {}
    old = read_json(path, "", warn=False)  # load_challenges has warned about it
    if isinstance(old, dict):
        merged.update((h, e) for h, e in old.items() if _parse(e)[0])
    for host, challenge in challenges.items():
        merged[host] = (
            None
            if challenge is None
            else {"scheme": challenge.scheme, "params": dict(challenge.params)}
        )
    try:
        write_json(path, merged)
    except OSError as exc:
        logs.warning(f"{path}: cannot write ({exc}); registries will be asked again next run")
