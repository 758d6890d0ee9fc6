"""What each registry host asked of us last time: its auth challenge.

Remembering ``Bearer realm=...,service=...`` (or "no auth") saves the
``GET /v2/`` round trip that otherwise precedes the first token request of
every run. It holds no secret. A remembered challenge is only a guess: the
client drops it and asks again if it stops working.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .. import logs
from ..registry.auth import Challenge

FILE_NAME = "hosts.json"


def load_challenges(directory: Path) -> dict[str, Challenge | None]:
    """The remembered challenges (none when the file is missing or unreadable)."""
    path = directory / FILE_NAME
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        logs.warning(f"{path}: cannot read ({exc}); asking each registry again")
        return {}
    found: dict[str, Challenge | None] = {}
    for host, entry in data.items() if isinstance(data, dict) else ():
        if entry is None:
            found[host] = None
        elif isinstance(entry, dict) and isinstance(entry.get("scheme"), str):
            params = entry.get("params", {})
            if isinstance(params, dict) and all(isinstance(v, str) for v in params.values()):
                found[host] = Challenge(entry["scheme"], params)
    return found


def save_challenges(directory: Path, challenges: Mapping[str, Challenge | None]) -> None:
    """Merge ``challenges`` into the file (atomically); errors are one warning."""
    if not challenges:
        return
    path = directory / FILE_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        merged: dict[str, object] = {}
        if path.exists():
            try:
                old = json.loads(path.read_text())
                merged.update(old if isinstance(old, dict) else {})
            except (json.JSONDecodeError, UnicodeDecodeError):
                pass
        for host, challenge in challenges.items():
            merged[host] = (
                None
                if challenge is None
                else {"scheme": challenge.scheme, "params": dict(challenge.params)}
            )
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".hosts-")
        with os.fdopen(fd, "w") as f:
            json.dump(merged, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as exc:
        logs.warning(f"{path}: cannot write ({exc}); registries will be asked again next run")
