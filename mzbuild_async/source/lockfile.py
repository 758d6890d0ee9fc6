"""``Cargo.lock``: every package a workspace crate pulls in, with its version and checksum.

The closure of a crate is every package reachable from it through the lock
file's ``dependencies`` lists (``name``, ``name version`` or ``name version
(source)``). The lock file resolves for every platform and feature at once,
so the closure is what the binary may contain: a superset, never less.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import CargoError
from ..support.documents import parse_toml

LOCK_NAME = "Cargo.lock"


@dataclass(frozen=True)
class Package:
    """One package of the lock file."""

    name: str
    version: str
    #: ``registry+https://...``, ``git+https://...#rev`` ("" for a workspace member).
    source: str = ""
    #: The SHA-256 of the ``.crate`` file (registry packages only).
    checksum: str = ""

    @property
    def purl(self) -> str:
        """Its package URL (``pkg:cargo/name@version``)."""
        return f"pkg:cargo/{self.name}@{self.version}"


@dataclass(frozen=True)
class Lockfile:
    """The packages of a ``Cargo.lock`` and what each depends on."""

    packages: Mapping[tuple[str, str], Package]
    dependencies: Mapping[tuple[str, str], tuple[tuple[str, str], ...]]

    def closure(self, names: Iterable[str]) -> list[Package]:
        """Every package reachable from the packages ``names`` (themselves included),
        sorted by name and version."""
        todo = [key for key in self.packages if key[0] in set(names)]
        seen: set[tuple[str, str]] = set()
        while todo:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            todo.extend(self.dependencies.get(key, ()))
        return sorted((self.packages[k] for k in seen), key=lambda p: (p.name, p.version))


def load_lockfile(root: Path) -> Lockfile | None:
    """The ``Cargo.lock`` at ``root`` (None when there is none)."""
    path = root / LOCK_NAME
    try:
        data = parse_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CargoError(f"{LOCK_NAME}: cannot read it ({exc})") from None
    entries = data.get("package", [])
    if not isinstance(entries, list):
        raise CargoError(f"{LOCK_NAME}: package must be an array of tables")
    packages: dict[tuple[str, str], Package] = {}
    raw: dict[tuple[str, str], list[str]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        name, version = entry.get("name"), entry.get("version")
        if not isinstance(name, str) or not isinstance(version, str):
            raise CargoError(f"{LOCK_NAME}: a package without a name and version")
        key = (name, version)
        packages[key] = Package(
            name, version, str(entry.get("source", "")), str(entry.get("checksum", ""))
        )
        deps = entry.get("dependencies", [])
        raw[key] = [d for d in deps if isinstance(d, str)] if isinstance(deps, list) else []
    by_name: dict[str, list[tuple[str, str]]] = {}
    for key in packages:
        by_name.setdefault(key[0], []).append(key)
    resolved = {key: tuple(_resolve(d, by_name, key) for d in deps) for key, deps in raw.items()}
    return Lockfile(packages, resolved)


def _resolve(
    reference: str, by_name: Mapping[str, list[tuple[str, str]]], owner: tuple[str, str]
) -> tuple[str, str]:
    """``name``, ``name version`` or ``name version (source)`` as a package key."""
    parts = reference.split(" ")
    candidates = by_name.get(parts[0], [])
    if len(parts) >= 2:
        candidates = [c for c in candidates if c[1] == parts[1]]
    if len(candidates) != 1:
        raise CargoError(
            f"{LOCK_NAME}: {owner[0]} {owner[1]} depends on {reference!r}, which the lock"
            " file does not resolve to one package"
        )
    return candidates[0]
