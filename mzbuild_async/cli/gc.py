"""The ``gc`` command: parse the keep policy, call the workflow, render."""

from __future__ import annotations

import argparse
import json
import sys

from ..model.options import Arch, Profile, Sanitizer
from ..report.gc import failed, gc_json, gc_text
from ..workflow.gc import GcOptions, collect
from ..workflow.resolve import Repository, Settings


def gc_options(args: argparse.Namespace) -> GcOptions:
    """The keep policy from the flags (every arch, profile and coverage setting unless
    named; the configured sanitizer unless named)."""
    base = GcOptions()
    return GcOptions(
        keep_branches=tuple(args.keep_branch),
        keep_tags=None if args.keep_tag is None else tuple(args.keep_tag),
        keep_last=args.keep_last,
        keep_younger=args.keep_younger,
        arches=tuple(dict.fromkeys(Arch.parse(a) for a in args.arch)) if args.arch else base.arches,
        profiles=(
            tuple(dict.fromkeys(Profile.parse(p) for p in args.profile))
            if args.profile
            else base.profiles
        ),
        coverage=base.coverage if args.coverage is None else (args.coverage,),
        sanitizers=(
            tuple(dict.fromkeys(Sanitizer.parse(s) for s in args.sanitizer))
            if args.sanitizer
            else base.sanitizers
        ),
        apply=args.apply,
        trust_local_refs=args.trust_local_refs,
    )


async def run_gc(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    """The plan (and with ``--apply`` the deletions); exit 1 if a repository could not be
    read or a deletion failed."""
    result = await collect(
        repo, gc_options(args), cache_dir=settings.cache_dir, settings=settings.registries
    )
    if args.json:
        sys.stdout.write(json.dumps(gc_json(result), indent=2) + "\n")
    else:
        sys.stdout.write(gc_text(result, verbose=args.verbose > 0))
    return 1 if failed(result) else 0
