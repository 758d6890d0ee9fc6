"""Every flag of every command, in one parser that imports nothing heavy.

Building it must stay cheap: ``spec`` and ``fingerprint`` parse their
arguments with it and never load the registry client or the build code.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from ..ci import NAMES as CI_NAMES
from ..model.options import DEFAULT_SEARCH
from .argtypes import duration, positive_int
from .flags import (
    add_build_arguments,
    add_engine_arguments,
    add_registry_arguments,
    add_run_arguments,
)
from .steps import add_otlp_argument, add_pipeline_arguments, add_step_arguments

PROG = "mzbuild-async"
#: The workflows ``plan --workflow`` can plan.
WORKFLOW_NAMES = ("acquire", "build", "ensure")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {one_line(message)} (see `{self.prog} --help`)\n")


#: Characters of one message line at most (a value quoted whole must not flood a log).
MESSAGE_CHARS = 2000


def one_line(text: str) -> str:
    """``text`` with its lines joined: every message a user sees is one line (of at
    most :data:`MESSAGE_CHARS` characters)."""
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    if len(line) > MESSAGE_CHARS:
        line = f"{line[:MESSAGE_CHARS]}... ({len(line) - MESSAGE_CHARS} more characters)"
    return line


def _common_parser() -> _Parser:
    """Options every subcommand takes (they follow the subcommand)."""
    common = _Parser(add_help=False)
    add_build_arguments(common.add_argument_group("repository and build options"))
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print JSON on stdout")
    out.add_argument("-v", "--verbose", action="count", default=0, help="more logs")
    out.add_argument("-q", "--quiet", action="count", default=0, help="fewer logs")
    out.add_argument(
        "--log-format", choices=("auto", "console", "json"), default="auto", help="log format"
    )
    return common


def build_parser() -> _Parser:
    """The ``mzbuild-async`` argument parser."""
    common = _common_parser()
    parser = _Parser(
        prog=PROG,
        description="Fingerprint, find, build and publish mzbuild images.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_source_commands(sub, common)
    _add_check(sub, common)
    _add_run_commands(sub, common)
    _add_attest_commands(sub, common)
    p = sub.add_parser("cache", parents=[common], help="manage the local caches")
    p.add_argument(
        "action",
        choices=["clear"],
        help="clear: delete the digest, lookup and hosts caches (build history and locks stay)",
    )
    return parser


def _targets(p: argparse.ArgumentParser, every: str = "every image") -> None:
    p.add_argument(
        "images", nargs="*", metavar="IMAGE", help="the images (what they need comes along)"
    )
    p.add_argument("--all", action="store_true", help=every)


def _add_source_commands(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """The commands that only read the working tree: list, fingerprint, spec, describe,
    explain."""
    sub.add_parser("list", parents=[common], help="list image names, one per line")
    for name, what in (("fingerprint", "fingerprints"), ("spec", "image specs")):
        _targets(sub.add_parser(name, parents=[common], help=f"print {what}"))
    p = sub.add_parser(
        "describe", parents=[common], help="show what decides an image's fingerprint"
    )
    p.add_argument("images", nargs=1, metavar="IMAGE", help="the image to describe")
    p.add_argument("--transitive", action="store_true", help="describe its dependencies too")
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="why an image's fingerprint differs from another revision's or spec's",
    )
    p.add_argument("images", nargs=1, metavar="IMAGE", help="the image to explain")
    add_explain_arguments(p)
    p = sub.add_parser(
        "affected",
        parents=[common],
        help="the images whose fingerprints differ between two commits, and the CI steps"
        " that must run",
    )
    p.add_argument(
        "--base",
        required=True,
        metavar="REV",
        help="the commit compared with; auto: the CI job's own (a merge queue's base, a"
        " merge request's merge-base, or the merge-base with a pull request's target"
        " branch), else the last commit whose images are all published",
    )
    p.add_argument(
        "--head",
        metavar="REV",
        help="the other commit (default: the working tree, as ensure would build it)",
    )
    p.add_argument(
        "--steps",
        metavar="FILE",
        help="a steps file: CI steps, the images and paths each uses (docs: CI pipelines)",
    )
    p.add_argument(
        "--format",
        choices=("text", "json", *CI_NAMES),
        default="text",
        help="text, json, or a CI system's document of the steps to run and skip (needs"
        " --steps): a Buildkite pipeline with skip: reasons, a GitHub Actions matrix, a"
        " GitLab child pipeline, an Azure pipeline",
    )
    p.add_argument(
        "--search",
        type=positive_int,
        default=DEFAULT_SEARCH,
        metavar="N",
        help="--base auto outside a CI change: the last of N commits (first parents) whose"
        f" publishable images are all published (default: {DEFAULT_SEARCH})",
    )
    add_registry_arguments(p)


def _add_check(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "check", parents=[common], help="look images up: present, absent or unknown, and where"
    )
    _targets(p)
    p.add_argument("--trace", metavar="FILE", help="write a Chrome trace-event JSON of the lookups")
    add_otlp_argument(p)
    add_registry_arguments(p)
    p.add_argument(
        "--manifest-get-docker-hub",
        action="store_true",
        help="allow the GET tier on Docker Hub (each GET counts as a pull there)",
    )


def _add_attest_commands(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """verify, lock, public-key and keygen."""
    p = sub.add_parser(
        "verify",
        parents=[common],
        help="check each image's attached provenance: signatures, subject, and that it"
        " describes what this checkout builds",
    )
    _targets(p, "every publishable image")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PEM",
        help="a public key the signatures must verify with (repeatable; one is needed"
        " unless --allow-unsigned)",
    )
    p.add_argument(
        "--allow-unsigned",
        action="store_true",
        help="check the statements without any --key: their signatures are not checked,"
        " so anyone who can push could have made them",
    )
    add_registry_arguments(p)
    p = sub.add_parser(
        "lock",
        parents=[common],
        help="pin each image's external base images to digests in its mzbuild.lock",
    )
    _targets(p, "every image")
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a lock is missing, incomplete or has drifted",
    )
    add_registry_arguments(p)
    p = sub.add_parser(
        "public-key", parents=[common], help="print the public key of a --sign-key (PEM)"
    )
    p.add_argument("--sign-key", metavar="PEM", required=True, help="the private key")
    p = sub.add_parser(
        "keygen",
        parents=[common],
        help="write a new signing key (mode 0600) and its public half (for --sign-key and"
        " verify --key)",
    )
    p.add_argument(
        "--out",
        metavar="PEM",
        default="sign.pem",
        help="the private key's file; the public half goes beside it as NAME.pub.pem"
        " (default: sign.pem)",
    )
    p.add_argument(
        "--type",
        choices=("ecdsa", "ed25519"),
        default="ecdsa",
        help="ECDSA P-256 (default: what cosign and most verifiers take) or Ed25519",
    )
    p.add_argument("--force", action="store_true", help="replace the files if they exist")


def _add_run_commands(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """acquire, ensure, build, plan, run and promote."""
    for name, what in (
        ("acquire", "make images available in the local Docker engine (pull or build)"),
        ("ensure", "make images published (build and push what the registry lacks)"),
        ("build", "build images into the local Docker engine"),
    ):
        p = sub.add_parser(name, parents=[common], help=what)
        _targets(p)
        add_run_arguments(p)
        if name == "ensure":
            add_step_arguments(p)
        if name == "build":
            p.add_argument(
                "--force", action="store_true", help="rebuild the images even when found"
            )
    p = sub.add_parser(
        "plan",
        parents=[common],
        help="what a run would do and why (fingerprints, lookups, actions), doing nothing",
    )
    _targets(p)
    p.add_argument(
        "--workflow",
        choices=sorted(WORKFLOW_NAMES),
        default="ensure",
        help="the run to plan (default: ensure)",
    )
    p.add_argument("--force", action="store_true", help="plan `build --force`")
    add_step_arguments(p)
    p.add_argument(
        "--jobs", "-j", type=int, metavar="N", help="with --engine: builds at once per engine"
    )
    add_engine_arguments(p)
    add_registry_arguments(p)
    p = sub.add_parser(
        "pipeline",
        parents=[common],
        help="a CI pipeline (Buildkite, GitHub Actions, GitLab CI) whose steps build what is"
        " missing",
    )
    _targets(p, "every publishable image (and what their builds need)")
    add_pipeline_arguments(p)
    add_registry_arguments(p)
    p = sub.add_parser(
        "run",
        parents=[common],
        help="acquire an image, then run it (--rm)",
        usage="%(prog)s [options] IMAGE [-- ARGS...]",
    )
    p.add_argument("images", nargs=1, metavar="IMAGE", help="the image to acquire and run")
    add_run_arguments(p)
    p = sub.add_parser(
        "promote",
        aliases=["publish-manifest"],
        parents=[common],
        help="give published images a release tag: the same manifest for one --arch,"
        " an index over several (publish-manifest is another name for it)",
    )
    p.add_argument("tag", metavar="TAG", help="the tag to write (an OCI tag: v1.2.3, latest)")
    _targets(p, "every publishable image")
    p.add_argument(
        "--mainline",
        action="store_true",
        help="only images whose mzbuild.yml says mainline (the default: true)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="move TAG even where it names other content and is not a moving tag",
    )
    p.add_argument(
        "--to",
        action="append",
        default=[],
        metavar="REGISTRY",
        help="copy each image to REGISTRY first (registry to registry), then tag it there too"
        " (repeatable; the primary and the mirrors are always tagged)",
    )
    add_registry_arguments(p)
    _add_gc(sub, common)


def add_explain_arguments(p: argparse.ArgumentParser) -> None:
    """``explain``'s own options."""
    p.add_argument(
        "--against",
        metavar="REV|SPEC",
        default="HEAD~1",
        help="a git revision, or an image spec (or fingerprint) to find in recent commits"
        " (default: HEAD~1)",
    )
    p.add_argument(
        "--search",
        type=int,
        default=DEFAULT_SEARCH,
        metavar="N",
        help=f"commits searched for --against SPEC (default: {DEFAULT_SEARCH})",
    )


def _add_gc(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "gc",
        parents=[common],
        help="delete the registry tags no kept commit asks for (a dry run without --apply)",
    )
    keep = p.add_argument_group("what to keep (--arch and --profile may be given several times)")
    keep.add_argument(
        "--keep-branch",
        action="append",
        default=[],
        metavar="PATTERN",
        help="keep the images of the last --keep-last commits of each branch (local or"
        " remote-tracking) matching this glob (repeatable; default: the current branch)",
    )
    keep.add_argument(
        "--keep-tag",
        action="append",
        default=None,
        metavar="PATTERN",
        help="keep the images of each git tag matching this glob (repeatable; default: every tag)",
    )
    keep.add_argument(
        "--keep-last",
        type=positive_int,
        default=20,
        metavar="N",
        help="commits kept per branch (default 20)",
    )
    keep.add_argument(
        "--keep-younger",
        type=duration,
        default=86400.0,
        metavar="DURATION",
        help="keep anything made less than this long ago, e.g. 30m, 24h, 7d (default 24h;"
        " it is also what protects images a concurrent run is pushing)",
    )
    keep.add_argument(
        "--trust-local-refs",
        action="store_true",
        help="take this clone's branches and tags as they are, without asking its remotes"
        " whether it lacks any (a shallow clone is refused all the same)",
    )
    p.add_argument(
        "--apply",
        action="store_true",
        help="delete (by digest); without it nothing is deleted and the plan is printed",
    )
    add_registry_arguments(p)
