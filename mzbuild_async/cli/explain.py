"""The ``explain`` command: why an image's fingerprint is not the one compared with."""

from __future__ import annotations

import argparse
import json
import sys

from ..report.deepjson import deep_json
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


def _emit(args: argparse.Namespace, name: str, mine: str, wanted: str, label: str) -> int:
    if args.json:
        document = {"image": name, "fingerprint": mine, "other": wanted, "same": True}
        sys.stdout.write(json.dumps({"against": label, **document}, indent=2) + "\n")
    else:
        sys.stdout.write(f"{name}: {mine}, the same as {label}\n")
    return 0
