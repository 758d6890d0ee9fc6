"""JSON text of any nesting depth (``explain --json`` nests one level per changed dependency)."""

from __future__ import annotations

import json


def deep_json(value: object, indent: int = 2) -> str:
    """``json.dumps(value, indent=indent)`` for nesting of any depth.

    An account nests one level per changed dependency, so a long chain
    nests deeper than ``json``'s recursive encoder can go: this one keeps
    an explicit stack (same text as ``json.dumps`` for any depth it handles).
    """
    out: list[str] = []
    # Items: a value to write at a depth, or literal text.
    stack: list[tuple[object, int] | str] = [(value, 0)]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        node, depth = item
        inner = "\n" + " " * (indent * (depth + 1))
        if isinstance(node, dict) and node:
            out.append("{")
            parts: list[tuple[object, int] | str] = []
            for i, (key, child) in enumerate(node.items()):
                parts += [
                    ("," if i else "") + inner + json.dumps(str(key)) + ": ",
                    (child, depth + 1),
                ]
            parts.append("\n" + " " * (indent * depth) + "}")
            stack += reversed(parts)
        elif isinstance(node, list) and node:
            out.append("[")
            parts = []
            for i, child in enumerate(node):
                parts += [("," if i else "") + inner, (child, depth + 1)]
            parts.append("\n" + " " * (indent * depth) + "]")
            stack += reversed(parts)
        else:
            out.append(json.dumps(node))
    return "".join(out)
