"""The Cargo workspace: crates, their binaries and path-dependency closures.

Only what the fingerprint needs, exactly as the original mzbuild reads it:
the workspace ``members`` of the root ``Cargo.toml``; per crate its
``[dependencies]`` and ``[build-dependencies]`` entries that have a ``path``
(and ``[dev-dependencies]`` for examples); its binaries and examples by
Cargo's auto-discovery rules.
"""

from __future__ import annotations

import glob
import os
import posixpath
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CargoError
from ..support.documents import parse_toml

#: Files directly in a crate directory that are not inputs of the crate.
EXCLUDED_CRATE_FILES = ("mzcompose", "mzcompose.py")


@dataclass(frozen=True)
class Crate:
    """One crate: its repository-relative directory, targets and path dependencies."""

    name: str
    path: str
    bins: tuple[str, ...]
    examples: tuple[str, ...]
    #: Directories of ``[dependencies]`` and ``[build-dependencies]`` path entries.
    path_deps: tuple[str, ...]
    #: Directories of ``[dev-dependencies]`` path entries.
    dev_path_deps: tuple[str, ...]
    features: tuple[str, ...] = ()


def _normalize(path: str) -> str:
    """A repository-relative directory: ``""`` for the root (never ``"."``)."""
    normalized = posixpath.normpath(path)
    return "" if normalized == "." else normalized


def _load_toml(root: Path, rel: str) -> dict[str, Any]:
    try:
        return parse_toml((root / rel).read_bytes())
    except FileNotFoundError:
        raise CargoError(f"{rel}: no such file; the Cargo workspace needs it") from None
    except OSError as exc:
        raise CargoError(f"{rel}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CargoError(f"{rel}: malformed TOML: {exc}") from None


def _names(table: object, key: str, manifest: str) -> list[str]:
    if not isinstance(table, list):
        return []
    names: list[str] = []
    for entry in table:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CargoError(f"{manifest}: every [[{key}]] needs a string 'name'")
        names.append(entry["name"])
    return names


def discovers(path: str) -> bool:
    """Whether the mere presence of file ``path`` can add a target Cargo discovers
    (``src/main.rs``, ``src/bin/*.rs``, ``src/bin/*/main.rs`` and the same under
    ``examples/``): what :func:`load_crate` looks for besides ``Cargo.toml``."""
    parts = path.split("/")
    if not path.endswith(".rs"):
        return False
    if parts[-2:] == ["src", "main.rs"]:
        return True
    for i in range(len(parts) - 1):
        rest = parts[i + 1 :]
        target_dir = parts[i] == "examples" or (i > 0 and parts[i - 1 : i + 1] == ["src", "bin"])
        if target_dir and (rest[1:] in ([], ["main.rs"])):
            return True
    return False


def _targets(directory: Path) -> list[str]:
    """Auto-discovered targets in ``directory``: ``*.rs`` stems, then ``*/main.rs`` dirs.

    One ``scandir`` instead of two globs: this runs for every crate.
    """
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    files = [e.name[:-3] for e in entries if e.name.endswith(".rs") and e.is_file()]
    dirs = [
        e.name for e in entries if e.is_dir() and os.path.isfile(os.path.join(e.path, "main.rs"))
    ]
    return files + dirs


def load_crate(root: Path, path: str) -> Crate:
    """Read the crate whose directory is ``path`` (repository-relative)."""
    manifest = posixpath.join(path, "Cargo.toml")
    config = _load_toml(root, manifest)
    package = config.get("package")
    if not isinstance(package, dict) or not isinstance(package.get("name"), str):
        raise CargoError(f"{manifest}: no [package] with a 'name'; is it a workspace member?")
    name: str = package["name"]
    directory = root / path
    bins = _names(config.get("bin"), "bin", manifest)
    if package.get("autobins", True) is not False:
        if (directory / "src" / "main.rs").exists():
            bins.append(name)
        bins += _targets(directory / "src" / "bin")
    examples = _names(config.get("example"), "example", manifest)
    if package.get("autoexamples", True) is not False:
        examples += _targets(directory / "examples")

    def path_deps(*tables: str) -> tuple[str, ...]:
        found: list[str] = []
        for table in tables:
            entries = config.get(table, {})
            if not isinstance(entries, dict):
                raise CargoError(f"{manifest}: [{table}] must be a table")
            for dep, spec in entries.items():
                if isinstance(spec, dict) and "path" in spec:
                    dep_path = spec["path"]
                    if not isinstance(dep_path, str):
                        raise CargoError(f"{manifest}: dependency {dep!r} has a non-string path")
                    found.append(_normalize(posixpath.join(path, dep_path)))
        return tuple(sorted(set(found)))

    features = config.get("features", {})
    return Crate(
        name=name,
        path=path,
        bins=tuple(bins),
        examples=tuple(examples),
        path_deps=path_deps("dependencies", "build-dependencies"),
        dev_path_deps=path_deps("dev-dependencies"),
        features=tuple(sorted(features)) if isinstance(features, dict) else (),
    )


class Workspace:
    """The crates of the workspace at a repository root, loaded once per run."""

    def __init__(self, root: Path, crates: Mapping[str, Crate]) -> None:
        self.root = root
        #: Member crates by repository-relative directory.
        self.crates = dict(crates)
        self._by_bin = self._index(lambda c: c.bins, "binary")
        self._by_example = self._index(lambda c: c.examples, "example")

    def _index(self, targets: Any, kind: str) -> dict[str, Crate | tuple[Crate, Crate]]:
        index: dict[str, Crate | tuple[Crate, Crate]] = {}
        for crate in self.crates.values():
            for target in targets(crate):
                other = index.get(target)
                if isinstance(other, Crate) and other is not crate:
                    index[target] = (other, crate)
                elif other is None:
                    index[target] = crate
        return index

    def _owner(self, target: str, kind: str, where: str) -> Crate:
        index = self._by_bin if kind == "binary" else self._by_example
        found = index.get(target)
        if found is None:
            raise CargoError(
                f"{where}: no workspace crate has {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
                f" named {target!r};"
                " check the name or the workspace members in Cargo.toml"
            )
        if isinstance(found, tuple):
            a, b = found
            raise CargoError(
                f"{where}: {kind} {target!r} is defined by two crates, {a.path} and {b.path};"
                " rename one"
            )
        return found

    def crate_for_bin(self, name: str, where: str) -> Crate:
        """The crate that builds binary ``name``; ``where`` names the manifest asking."""
        return self._owner(name, "binary", where)

    def crate_for_example(self, name: str, where: str) -> Crate:
        """The crate that has example ``name``; ``where`` names the manifest asking."""
        return self._owner(name, "example", where)

    def _crate_at(self, path: str, needed_by: Crate) -> Crate:
        crate = self.crates.get(path)
        if crate is not None:
            return crate
        if path == ".." or path.startswith("../"):
            raise CargoError(
                f"{needed_by.path}/Cargo.toml: path dependency {path!r} lies outside the"
                " repository; its files cannot be fingerprinted"
            )
        # A path dependency outside the members: read it like a member.
        crate = load_crate(self.root, path)
        self.crates[path] = crate
        return crate

    def closure(self, crate: Crate, *, dev: bool = False) -> tuple[Crate, ...]:
        """``crate`` and its transitive normal/build path dependencies.

        With ``dev``, the crate's own dev-dependencies (one level) and their
        normal/build closures join, as for building an example.
        """
        seen: dict[str, Crate] = {}
        # An explicit stack, not recursion: any depth of path dependencies works.
        todo = [crate]
        if dev:
            todo += [self._crate_at(dep, crate) for dep in crate.dev_path_deps]
        while todo:
            c = todo.pop()
            if c.path in seen:
                continue
            seen[c.path] = c
            todo += [self._crate_at(dep, c) for dep in c.path_deps]
        return tuple(seen[p] for p in sorted(seen))


def _members(root: Path, patterns: Iterable[object], exclude: set[str]) -> list[str]:
    members: list[str] = []
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise CargoError("Cargo.toml: [workspace] members must be strings")
        normalized = _normalize(pattern)
        if glob.has_magic(normalized):
            matches = sorted(
                os.path.relpath(p, root).replace(os.sep, "/")
                for p in glob.glob(os.path.join(glob.escape(str(root)), normalized))
                if os.path.isfile(os.path.join(p, "Cargo.toml"))
            )
            members += [m for m in matches if m not in exclude]
        elif normalized not in exclude:
            members.append(normalized)
    return members


def load_workspace(root: Path) -> Workspace:
    """Read the workspace of the root ``Cargo.toml`` and all its member crates."""
    config = _load_toml(root, "Cargo.toml")
    workspace = config.get("workspace")
    if not isinstance(workspace, dict) or not isinstance(workspace.get("members", []), list):
        raise CargoError("Cargo.toml: no [workspace] table with a 'members' list")
    exclude = {_normalize(e) for e in workspace.get("exclude", []) if isinstance(e, str)}
    crates: dict[str, Crate] = {}
    for member in _members(root, workspace.get("members", []), exclude):
        crates[member] = load_crate(root, member)
    return Workspace(root, crates)
