"""The ``explain`` command: why an image's fingerprint is not the one compared with."""

from __future__ import annotations

import argparse
import json
import sys

from ..source.explain import (
    explain,
    find_revision,
    repository_at,
    resolve_revision,
    spec_fingerprint,
)
from ..source.repository import Repository


async def run_explain(args: argparse.Namespace, repo: Repository) -> int:
    """Explain one image against a revision or a spec; exit 1 if the spec is not found."""
    name = repo.image(args.images[0]).name
    wanted = spec_fingerprint(args.against)
    label = args.against
    if wanted is not None:
        mine = str(await repo.fingerprint(name))
        if mine == wanted:
            return _emit(args, name, mine, wanted, f"{args.against} (the working tree)")
        commit = await find_revision(repo, name, wanted, args.search)
        if commit is None:
            message = (
                f"{name}: no commit among the last {args.search} has fingerprint {wanted};"
                " raise --search or compare with a revision"
            )
            if args.json:
                sys.stdout.write(json.dumps({"image": name, "found": False, "error": message}))
                sys.stdout.write("\n")
            else:
                sys.stdout.write(message + "\n")
            return 1
        label = f"{args.against} (commit {commit[:12]})"
        rev = commit
    else:
        rev = await resolve_revision(repo.root, args.against)
        label = f"{args.against} ({rev[:12]})"
    async with repository_at(repo, rev) as old:
        explanation = await explain(repo, old, name)
    if args.json:
        document = {"against": label, **explanation.to_json()}
        sys.stdout.write(deep_json(document) + "\n")
    else:
        sys.stdout.write(explanation.text(label) + "\n")
    return 0


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


def _emit(args: argparse.Namespace, name: str, mine: str, wanted: str, label: str) -> int:
    if args.json:
        document = {"image": name, "fingerprint": mine, "other": wanted, "same": True}
        sys.stdout.write(json.dumps({"against": label, **document}, indent=2) + "\n")
    else:
        sys.stdout.write(f"{name}: {mine}, the same as {label}\n")
    return 0
