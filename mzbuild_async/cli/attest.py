"""The ``verify`` and ``lock`` commands: parse, call the workflow, render."""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import UsageError
from ..report.verify import lock_json, lock_text, verify_json, verify_text
from ..workflow.lock import lock_images
from ..workflow.resolve import Repository, Settings
from ..workflow.verify import load_keys, verify_images


async def run_verify(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """One verdict per image; exit 1 if any image failed. Without ``--key`` only with
    ``--allow-unsigned``: a gate (``verify && deploy``) must not pass unsigned statements."""
    if not args.key and not args.allow_unsigned:
        raise UsageError(
            "verify: give --key PEM (the public key the signatures must verify with), or"
            " --allow-unsigned to check the statements without their signatures"
        )
    keys = load_keys(args.key)
    verdicts = await verify_images(
        repo, targets, keys, cache_dir=settings.cache_dir, settings=settings.registries
    )
    if args.json:
        sys.stdout.write(json.dumps(verify_json(verdicts), indent=2) + "\n")
    else:
        sys.stdout.write(verify_text(verdicts))
    return 0 if all(v.ok for v in verdicts.values()) else 1


async def run_lock(
    args: argparse.Namespace, repo: Repository, targets: list[str], settings: Settings
) -> int:
    """Pin (or, with ``--check``, check) each image's external bases; exit 1 when a
    reference could not be resolved, or (``--check``) a lock is not what the registry says."""
    results = await lock_images(
        repo,
        targets,
        cache_dir=settings.cache_dir,
        settings=settings.registries,
        check=args.check,
        base_mirrors=settings.base_mirrors,
    )
    if args.json:
        sys.stdout.write(json.dumps(lock_json(results, check=args.check), indent=2) + "\n")
    else:
        sys.stdout.write(lock_text(results, check=args.check))
    bad = {"failed", "changed"} if args.check else {"failed"}
    return 1 if any(r.state in bad for r in results.values()) else 0
