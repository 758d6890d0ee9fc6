"""``mzbuild.yml`` and ``Dockerfile`` parsing into frozen, validated values.

Every problem is a :class:`~mzbuild_async.errors.ManifestError` whose message
starts with ``FILE:LINE:COLUMN:`` (1-based, where YAML knows the place) so an
editor can jump to it. Keys the original mzbuild does not know are collected
as warnings (the original silently ignores them); the repository loader
decides whether they are fatal (``--strict``).
"""

from __future__ import annotations

import datetime
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import yaml

from ..errors import ManifestError, shorten
from ..support.documents import DocumentError, check_yaml_depth
from ..support.documents import YamlLoader as _Loader

NAME_RE = re.compile(r"[A-Za-z0-9-]+")
MZFROM_RE = re.compile(rb"^MZFROM\s*(\S+)")

MANIFEST_KEYS = frozenset({"name", "publish", "description", "mainline", "build-args", "pre-image"})
CARGO_KEYS = frozenset({"type", "bin", "example", "strip", "features", "extract"})
COPY_KEYS = frozenset({"type", "source", "destination", "matching"})


@dataclass(frozen=True)
class CargoBuild:
    """A ``cargo-build`` pre-image: Rust binaries copied into the context."""

    bins: tuple[str, ...]
    examples: tuple[str, ...] = ()
    strip: bool = True
    features: tuple[str, ...] = ()
    #: ``{package: {src: dst}}``: build-script outputs copied out of cargo's tree.
    extract: Mapping[str, Mapping[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Copy:
    """A ``copy`` pre-image: repository files copied into the context."""

    source: str
    destination: str
    matching: str = "*"


PreImage: TypeAlias = CargoBuild | Copy


@dataclass(frozen=True)
class Manifest:
    """One image's ``mzbuild.yml``, validated."""

    path: str
    name: str
    publish: bool = True
    description: str | None = None
    mainline: bool = True
    build_args: Mapping[str, str] = field(default_factory=dict)
    pre_images: tuple[PreImage, ...] = ()
    #: Unknown keys, one message each (``FILE:LINE:COL: unknown key ...``).
    warnings: tuple[str, ...] = ()

    @property
    def cargo_builds(self) -> tuple[CargoBuild, ...]:
        """The ``cargo-build`` pre-images (none: the image needs no Rust)."""
        return tuple(p for p in self.pre_images if isinstance(p, CargoBuild))


@dataclass(frozen=True)
class MzFrom:
    """One ``MZFROM`` line of a Dockerfile."""

    name: str
    line: int


class _Doc:
    """A parsed YAML document with the node tree kept for error locations."""

    def __init__(self, path: str, node: yaml.Node) -> None:
        self.path = path
        self.node = node

    def where(self, node: yaml.Node | None) -> str:
        if node is None:
            return self.path
        mark = node.start_mark
        return f"{self.path}:{mark.line + 1}:{mark.column + 1}"

    def error(self, node: yaml.Node | None, message: str) -> ManifestError:
        return ManifestError(f"{self.where(node)}: {message}")


def _entries(node: yaml.Node) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping node's entries by key text: ``{key: (key node, value node)}``."""
    assert isinstance(node, yaml.MappingNode)
    return {str(k.value): (k, v) for k, v in node.value}


def inside(path: str) -> bool:
    """Whether the relative ``path`` stays inside the directory it is relative to
    (not absolute, no ``..`` out of it once normalised)."""
    normalized = posixpath.normpath(path)
    return not (
        path.startswith("/") or normalized == ".." or normalized.startswith("../") or "\0" in path
    )


def _describe(value: object) -> str:
    if value is None:
        return "nothing"
    return f"{shorten(repr(value))} ({type(value).__name__})"


#: Nodes that YAML aliases may add to a manifest once expanded: a few hundred
#: bytes of nested anchors can stand for billions of nodes ("billion laughs").
MAX_ALIAS_NODES = 100_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_aliases(node: yaml.Node, path: str) -> None:
    """Refuse a document whose aliases recurse or expand past :data:`MAX_ALIAS_NODES`
    extra nodes; counted over the shared node graph, without expanding it."""
    sizes: dict[int, int] = {}
    pending: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(node, False)]
    while stack:
        current, done = stack.pop()
        key = id(current)
        if done:
            pending.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in _children(current))
            if sizes[key] - len(sizes) > MAX_ALIAS_NODES:
                mark = current.start_mark
                raise ManifestError(
                    f"{path}:{mark.line + 1}:{mark.column + 1}: YAML aliases expand this"
                    f" manifest past {MAX_ALIAS_NODES:,} nodes; write it out without nested"
                    " anchors"
                )
            continue
        if key in sizes:
            continue
        if key in pending:
            mark = current.start_mark
            raise ManifestError(
                f"{path}:{mark.line + 1}:{mark.column + 1}: a YAML alias refers to a node"
                " that contains it (a recursive alias); a manifest cannot be recursive"
            )
        pending.add(key)
        stack.append((current, True))
        stack.extend((c, False) for c in _children(current) if id(c) not in sizes)


def _check_depth(text: str | bytes, path: str) -> None:
    """Refuse a manifest nested deeper than :data:`MAX_DEPTH` before it is composed."""
    try:
        check_yaml_depth(text)
    except DocumentError as exc:
        where = f"{path}:{exc.line}:{exc.column}" if exc.line else path
        raise ManifestError(f"{where}: {exc}; a manifest needs a handful") from None


def parse_manifest(text: str | bytes, path: str) -> Manifest:
    """Parse the text of the ``mzbuild.yml`` at repository-relative ``path``."""
    _check_depth(text, path)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_aliases(node, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = exc.problem or exc.context or "invalid YAML"
        raise ManifestError(f"{where}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None or not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ManifestError(
            f"{path}: the manifest must be a mapping with at least a 'name' key,"
            f" not {_describe(data)}"
        )
    return _Parser(_Doc(path, node)).manifest(data)


class _Parser:
    def __init__(self, doc: _Doc) -> None:
        self.doc = doc
        self.warnings: list[str] = []

    def manifest(self, data: dict[Any, Any]) -> Manifest:
        doc = self.doc
        entries = _entries(doc.node)
        self._unknown(entries, MANIFEST_KEYS, "")
        if "name" not in data:
            raise doc.error(doc.node, "missing required key 'name' (the image's name)")
        name_node = entries["name"][1]
        name = data["name"]
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise doc.error(
                name_node,
                f"invalid image name {_describe(name)}: use only letters, digits and '-'",
            )
        publish = self._bool(data, entries, "publish", True)
        mainline = self._bool(data, entries, "mainline", True)
        description = data.get("description")
        if description is not None and not isinstance(description, str):
            raise doc.error(
                entries["description"][1],
                f"'description' must be a string, got {_describe(description)}",
            )
        return Manifest(
            path=doc.path,
            name=name,
            publish=publish,
            description=description,
            mainline=mainline,
            build_args=self._build_args(data, entries),
            pre_images=self._pre_images(data, entries),
            warnings=tuple(self.warnings),
        )

    def _unknown(
        self, entries: dict[str, tuple[yaml.Node, yaml.Node]], known: frozenset[str], ctx: str
    ) -> None:
        for key, (key_node, _) in entries.items():
            if key not in known:
                self.warnings.append(
                    f"{self.doc.where(key_node)}: unknown key {key!r}{ctx}"
                    " (mzbuild ignores it; --strict makes it an error)"
                )

    def _bool(
        self,
        data: Mapping[Any, Any],
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        key: str,
        default: bool,
    ) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.doc.error(
                entries[key][1], f"{key!r} must be true or false, got {_describe(value)}"
            )
        return value

    def _build_args(
        self, data: Mapping[Any, Any], entries: dict[str, tuple[yaml.Node, yaml.Node]]
    ) -> Mapping[str, str]:
        raw = data.get("build-args")
        if raw is None:
            return {}
        node = entries["build-args"][1]
        if not isinstance(raw, dict):
            raise self.doc.error(
                node, f"'build-args' must be a mapping of names to values, got {_describe(raw)}"
            )
        args: dict[str, str] = {}
        for key, value in raw.items():
            # Any YAML scalar, as the original passes str(value) (dates included).
            scalar = isinstance(value, str | int | float | bool | datetime.date)
            if not isinstance(key, str) or not scalar:
                raise self.doc.error(
                    node,
                    f"build arg {key!r} must map a name to a string or number,"
                    f" got {_describe(value)}",
                )
            args[key] = str(value)
        return args

    def _pre_images(
        self, data: Mapping[Any, Any], entries: dict[str, tuple[yaml.Node, yaml.Node]]
    ) -> tuple[PreImage, ...]:
        raw = data.get("pre-image")
        if raw is None:
            return ()
        node = entries["pre-image"][1]
        if not isinstance(raw, list) or not isinstance(node, yaml.SequenceNode):
            raise self.doc.error(
                node, f"'pre-image' must be a list of pre-images, got {_describe(raw)}"
            )
        result: list[PreImage] = []
        for index, (item, item_node) in enumerate(zip(raw, node.value, strict=True), 1):
            if not isinstance(item, dict) or not isinstance(item_node, yaml.MappingNode):
                raise self.doc.error(
                    item_node, f"pre-image {index} must be a mapping, got {_describe(item)}"
                )
            item_entries = _entries(item_node)
            kind = item.get("type")
            if kind == "cargo-build":
                self._unknown(item_entries, CARGO_KEYS, f" in cargo-build pre-image {index}")
                result.append(self._cargo(item, item_entries, item_node, index))
            elif kind == "copy":
                self._unknown(item_entries, COPY_KEYS, f" in copy pre-image {index}")
                result.append(self._copy(item, item_entries, item_node, index))
            else:
                where = item_entries["type"][1] if "type" in item_entries else item_node
                raise self.doc.error(
                    where,
                    f"unknown pre-image type {_describe(kind)} in pre-image {index};"
                    " use 'cargo-build' or 'copy'",
                )
        return tuple(result)

    def _strings(
        self,
        item: Mapping[Any, Any],
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        key: str,
    ) -> tuple[str, ...]:
        value = item.get(key, [])
        values = value if isinstance(value, list) else [value]
        if value is None or not all(isinstance(v, str) and v for v in values):
            raise self.doc.error(
                entries[key][1],
                f"{key!r} must be a name or a list of names, got {_describe(value)}",
            )
        return tuple(values)

    def _cargo(
        self,
        item: Mapping[Any, Any],
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        node: yaml.Node,
        index: int,
    ) -> CargoBuild:
        bins = self._strings(item, entries, "bin")
        examples = self._strings(item, entries, "example")
        if not bins and not examples:
            raise self.doc.error(
                node, f"cargo-build pre-image {index} names no 'bin' or 'example' to build"
            )
        strip = self._bool(item, entries, "strip", True)
        features = self._strings(item, entries, "features")
        extract = item.get("extract", {})
        extract_ok = isinstance(extract, dict) and all(
            isinstance(pkg, str)
            and isinstance(files, dict)
            and all(isinstance(s, str) and isinstance(d, str) for s, d in files.items())
            for pkg, files in extract.items()
        )
        if not extract_ok:
            raise self.doc.error(
                entries["extract"][1],
                "'extract' must map packages to {source: destination} mappings,"
                f" got {_describe(extract)}",
            )
        if extract:
            self._confined_extract(entries["extract"][1], index)
        return CargoBuild(
            bins=bins,
            examples=examples,
            strip=strip,
            features=features,
            extract={pkg: dict(files) for pkg, files in extract.items()},
        )

    def _confined_extract(self, node: yaml.Node, index: int) -> None:
        """Every ``extract`` source stays in its build script's output directory and
        every destination in the build context: relative, no ``..`` out of them."""
        assert isinstance(node, yaml.MappingNode)
        for _package, files in node.value:
            assert isinstance(files, yaml.MappingNode)
            for src, dst in files.value:
                for side, value_node, place in (
                    ("source", src, "the build script's output directory"),
                    ("destination", dst, "the build context"),
                ):
                    if not inside(str(value_node.value)):
                        raise self.doc.error(
                            value_node,
                            f"extract {side} {shorten(str(value_node.value))!r} in cargo-build"
                            f" pre-image {index} points outside {place}; give a relative path"
                            " inside it",
                        )

    def _copy(
        self,
        item: Mapping[Any, Any],
        entries: dict[str, tuple[yaml.Node, yaml.Node]],
        node: yaml.Node,
        index: int,
    ) -> Copy:
        values: dict[str, str] = {}
        for key in ("source", "destination", "matching"):
            if key not in item:
                if key == "matching":
                    values[key] = "*"
                    continue
                raise self.doc.error(
                    node, f"copy pre-image {index} is missing required key {key!r}"
                )
            value = item[key]
            if not isinstance(value, str) or not value:
                raise self.doc.error(
                    entries[key][1], f"{key!r} must be a path string, got {_describe(value)}"
                )
            if key != "matching":
                normalized = posixpath.normpath(value)
                if not inside(value):
                    place = "the repository" if key == "source" else "the image directory"
                    raise self.doc.error(
                        entries[key][1],
                        f"copy {key} {value!r} points outside {place}; give a relative path"
                        " inside it",
                    )
                value = "" if normalized == "." else normalized
            values[key] = value
        return Copy(**values)


def parse_dockerfile(content: bytes, path: str) -> tuple[MzFrom, ...]:
    """The ``MZFROM`` lines of the Dockerfile at ``path``, in file order.

    A line counts only when ``MZFROM`` stands at its very start, exactly as
    the original's ``^MZFROM\\s*(\\S+)``; ``MZFROM x AS y`` depends on ``x``.
    """
    found: list[MzFrom] = []
    for number, line in enumerate(content.split(b"\n"), 1):
        match = MZFROM_RE.search(line)
        if match is None:
            continue
        try:
            name = match.group(1).decode()
        except UnicodeDecodeError:
            raise ManifestError(
                f"{path}:{number}: MZFROM names an image that is not UTF-8"
            ) from None
        found.append(MzFrom(name=name, line=number))
    return tuple(found)
