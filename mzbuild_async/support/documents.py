"""JSON and YAML from outside, read without letting their nesting hurt us.

Anyone who can push to a repository can put a manifest, an attestation or an
SBOM there; anyone who can commit can write a steps file or an
``mzbuild.yml``. Parsers recurse: ``json`` raises RecursionError about a
thousand levels down, and libyaml's composer recurses in C, where a few
hundred kilobytes of ``[[[[...`` overflow the stack and end the process. So
every such document is checked before it is composed (or, for JSON, as it is
parsed) and refused past :data:`MAX_DEPTH` levels, with a
:class:`DocumentError` (a ``ValueError``, as the parsers' own errors are, so
the callers' handlers take it): never a RecursionError, never a crash. The
checks are cheap: a bound computed from counts comes first, and only a
document it cannot clear is read event by event. TOML (``Cargo.toml``, the
lock files, ``mzbuild-async.toml``) gets the same limit, as tomllib's own
error.
"""

from __future__ import annotations

import json
import tomllib
from typing import Any

import yaml

try:  # The C loader is several times faster; fall back to pure Python.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

#: The YAML loader every document is read with (safe types only).
YamlLoader = _Loader

#: Levels of nesting any document we read may have (ours need a dozen at most).
MAX_DEPTH = 64


class DocumentError(ValueError):
    """A document nested too deeply (or not the JSON it should be)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(message)
        #: Where (1-based; 0 when unknown).
        self.line = line
        self.column = column


def _depth(value: Any) -> int:
    """The nesting of a parsed value, without recursion."""
    deepest = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        current, level = todo.pop()
        if isinstance(current, dict):
            items: list[Any] = list(current.values())
        elif isinstance(current, list):
            items = current
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            break
        todo += [(item, level + 1) for item in items]
    return deepest


def parse_json(data: str | bytes | bytearray, **options: Any) -> Any:
    """``json.loads(data)``, refused past :data:`MAX_DEPTH` levels (DocumentError);
    bytes that are not UTF-8 are a DocumentError too."""
    brackets = (
        data.count("[") + data.count("{")
        if isinstance(data, str)
        else (data.count(b"[") + data.count(b"{"))
    )
    try:
        value = json.loads(data, **options)
    except RecursionError:
        raise DocumentError(f"nested more than {MAX_DEPTH} levels deep") from None
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 ({exc.reason})") from None
    if brackets > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise DocumentError(f"nested more than {MAX_DEPTH} levels deep")
    return value


def parse_toml(data: str | bytes) -> dict[str, Any]:
    """``tomllib.loads(data)``, refused past :data:`MAX_DEPTH` levels with a
    ``tomllib.TOMLDecodeError`` (tomllib recurses too, and its RecursionError is no
    answer); bytes that are not UTF-8 raise UnicodeDecodeError as reading them would."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    try:
        value = tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError(f"nested more than {MAX_DEPTH} levels deep") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise tomllib.TOMLDecodeError(f"nested more than {MAX_DEPTH} levels deep")
    return value


def _yaml_bound(text: str | bytes) -> int:
    """An upper bound of the nesting of YAML ``text``, cheap to compute: every level
    needs an indentation column, a bracket or brace, a ``-`` or a ``?``."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    indent = max((len(line) - len(line.lstrip(b" ")) for line in data.splitlines()), default=0)
    return 2 + indent + sum(data.count(c) for c in (b"[", b"{", b"-", b"?"))


def check_yaml_depth(text: str | bytes) -> None:
    """DocumentError (with its line and column) when ``text`` nests deeper than
    :data:`MAX_DEPTH`; nothing is composed. Malformed YAML passes: the parse
    proper reports it, with its place."""
    if _yaml_bound(text) <= MAX_DEPTH:
        return
    loader = YamlLoader(text)
    depth = 0
    try:
        while (event := loader.get_event()) is not None:
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    mark = event.start_mark
                    raise DocumentError(
                        f"nested more than {MAX_DEPTH} levels deep",
                        mark.line + 1 if mark else 0,
                        mark.column + 1 if mark else 0,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.StreamEndEvent):
                return
    except yaml.YAMLError:
        return
    finally:
        loader.dispose()


def parse_yaml(text: str | bytes) -> Any:
    """One YAML document (safe types only), refused past :data:`MAX_DEPTH` levels
    (DocumentError); malformed YAML raises ``yaml.YAMLError`` as usual."""
    check_yaml_depth(text)
    loader = YamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
