"""Every flag of every command, in one parser that imports nothing heavy.

Building it must stay cheap: ``spec`` and ``fingerprint`` parse their
arguments with it and never load the registry client or the build code.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from ..ci import NAMES as CI_NAMES
from ..model.options import DEFAULT_SEARCH, DEFAULT_TRANSFERS, default_jobs
from ..model.status import TIER_ORDER

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


def positive_seconds(text: str) -> float:
    """A finite number of seconds above zero (``--deadline``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive, finite number of seconds")
    return value


def non_negative_seconds(text: str) -> float:
    """A finite number of seconds, zero or more (``pipeline --startup``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds >= 0")
    return value


def positive_int(text: str) -> int:
    """An integer of at least one (``--retries``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _common_parser() -> _Parser:
    """Options every subcommand takes (they follow the subcommand)."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("repository and build options")
    group.add_argument(
        "--repo", metavar="DIR", help="repository root (default: git top level of the cwd)"
    )
    group.add_argument(
        "--strict", action="store_true", help="treat unknown manifest keys as errors"
    )
    profile = group.add_mutually_exclusive_group()
    for name in ("dev", "release", "optimized"):
        profile.add_argument(
            f"--{name}",
            dest="profile",
            action="store_const",
            const=name,
            help=f"build Rust binaries with the {name} profile",
        )
    profile.add_argument(
        "--profile",
        metavar="NAME",
        help="profile by name (default: optimized, or release when CI_LTO is set)",
    )
    group.add_argument(
        "--arch",
        action="append",
        metavar="ARCH",
        help="x86_64 or aarch64 (default: this machine's; publish-manifest takes several)",
    )
    group.add_argument(
        "--coverage",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="build with coverage (default: CI_COVERAGE_ENABLED)",
    )
    group.add_argument(
        "--sanitizer", metavar="NAME", help="Rust sanitizer (default: CI_SANITIZER or none)"
    )
    group.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="cache directory (default: $MZBUILD_ASYNC_CACHE_DIR or ~/.cache/mzbuild-async)",
    )
    group.add_argument(
        "--no-digest-cache",
        dest="digest_cache",
        action="store_false",
        help="hash every input file instead of trusting unchanged stats from earlier runs",
    )
    group.add_argument("--image-registry", metavar="REGISTRY", help="registry of image specs")
    group.add_argument("--image-prefix", metavar="PREFIX", help="prefix of image names")
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
    p = sub.add_parser("cache", parents=[common], help="manage the local caches")
    p.add_argument("action", choices=["clear"], help="clear: delete the digest and lookup caches")
    return parser


def _targets(p: argparse.ArgumentParser, every: str = "every image") -> None:
    p.add_argument("images", nargs="*", metavar="IMAGE")
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
    p.add_argument("images", nargs=1, metavar="IMAGE")
    p.add_argument("--transitive", action="store_true", help="describe its dependencies too")
    p = sub.add_parser(
        "explain",
        parents=[common],
        help="why an image's fingerprint differs from another revision's or spec's",
    )
    p.add_argument("images", nargs=1, metavar="IMAGE")
    add_explain_arguments(p)


def _add_check(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    p = sub.add_parser(
        "check", parents=[common], help="look images up: present, absent or unknown, and where"
    )
    _targets(p)
    p.add_argument("--trace", metavar="FILE", help="write a Chrome trace-event JSON of the lookups")
    add_registry_arguments(p)
    p.add_argument(
        "--manifest-get-docker-hub",
        action="store_true",
        help="allow the GET tier on Docker Hub (each GET counts as a pull there)",
    )


def _add_run_commands(sub: argparse._SubParsersAction[_Parser], common: _Parser) -> None:
    """acquire, ensure, build, plan, run and publish-manifest."""
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
        help="a Buildkite or GitHub Actions pipeline whose steps build what is missing",
    )
    _targets(p, "every publishable image (and what their builds need)")
    p.add_argument(
        "--format",
        choices=CI_NAMES,
        default="buildkite",
        help="the CI system whose pipeline to print (default: buildkite)",
    )
    p.add_argument(
        "--agents",
        type=positive_int,
        metavar="N",
        help="agents to spread the steps over (default: 4)",
    )
    p.add_argument(
        "--max-step-seconds",
        type=positive_seconds,
        metavar="S",
        help="estimated build seconds one step may take at most",
    )
    p.add_argument(
        "--startup",
        type=non_negative_seconds,
        default=30.0,
        metavar="S",
        help="seconds a step costs before its first build (default: 30)",
    )
    p.add_argument(
        "--step-jobs",
        type=positive_int,
        default=4,
        metavar="N",
        help="builds at once within a step",
    )
    add_wait_argument(p, "how long a step awaits images other steps build")
    p.add_argument("--queue", default="builder", help="Buildkite agent queue (arch appended)")
    p.add_argument(
        "--runs-on", action="append", metavar="LABEL", help="GitHub Actions runner labels"
    )
    p.add_argument("--jobs-only", action="store_true", help="GitHub: only the jobs: mapping")
    p.add_argument(
        "--gitlab-tag", action="append", metavar="TAG", help="GitLab runner tags (repeatable)"
    )
    p.add_argument(
        "--any-commit",
        action="store_true",
        help="a pipeline kept in the repository: steps for every image, no fingerprints",
    )
    p.add_argument(
        "--program",
        default="mzbuild-async",
        help="how the steps start mzbuild-async (default: mzbuild-async)",
    )
    add_registry_arguments(p)
    p = sub.add_parser(
        "run",
        parents=[common],
        help="acquire an image, then run it (--rm)",
        usage="%(prog)s [options] IMAGE [-- ARGS...]",
    )
    p.add_argument("images", nargs=1, metavar="IMAGE")
    add_run_arguments(p)
    p = sub.add_parser(
        "publish-manifest",
        parents=[common],
        help="write a multi-arch image index at TAG for each image",
    )
    p.add_argument("tag", metavar="TAG")
    _targets(p, "every publishable image")
    add_registry_arguments(p)


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that pull, build or push."""
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        metavar="N",
        help=f"Docker builds at once (default: {default_jobs()} on this machine; with"
        " --engine: per engine, else each engine's CPU count)",
    )
    p.add_argument(
        "--transfers",
        type=int,
        default=DEFAULT_TRANSFERS,
        metavar="N",
        help=f"pulls and pushes at once per registry (default: {DEFAULT_TRANSFERS})",
    )
    p.add_argument(
        "--fail-fast", action="store_true", help="stop at the first failure (default: go on)"
    )
    p.add_argument(
        "--cache-registry",
        metavar="REF",
        help="layer cache: build from REF/NAME:buildcache and push it back after builds",
    )
    p.add_argument(
        "--report", metavar="FILE", help="write the run as JSON (plan, results, lookups)"
    )
    p.add_argument(
        "--trace", metavar="FILE", help="write a Chrome trace-event JSON of the run (Perfetto)"
    )
    p.add_argument(
        "--timeline", metavar="FILE", help="write a self-contained HTML Gantt chart of the run"
    )
    p.add_argument(
        "--trust-cache",
        action="store_true",
        help="ensure and CI steps: take the lookup cache's 'present' without asking the"
        " registry again (registries that never delete tags; also [lookup] trust-cache)",
    )
    p.add_argument(
        "--builder",
        choices=["engine", "buildx"],
        default="engine",
        help="build through the engine API (default) or `docker buildx` (BuildKit's cache)",
    )
    add_engine_arguments(p)
    add_registry_arguments(p)


def add_wait_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--wait SECONDS``: how long a CI step awaits images other steps build."""
    p.add_argument(
        "--wait",
        type=positive_seconds,
        default=3600.0,
        metavar="SECONDS",
        help=f"{what} (default: 3600)",
    )


def add_step_arguments(p: argparse.ArgumentParser) -> None:
    """A CI step's own images; what other steps build is awaited in the registry."""
    p.add_argument(
        "--only",
        action="append",
        metavar="IMAGE[=FINGERPRINT]",
        help="build only these images (a CI step; the targets when no IMAGE is named);"
        " others this run needs are awaited in the registry. With =FINGERPRINT, the"
        " checkout must fingerprint the image so (repeatable)",
    )
    add_wait_argument(p, "how long to await an image another step builds")
    p.add_argument("--step", metavar="KEY", help="the CI step this run is (in --json and --report)")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The pool of engines builds are spread over."""
    p.add_argument(
        "--engine",
        action="append",
        default=[],
        metavar="URL",
        help="build on this Docker engine too: unix://, tcp:// (TLS from DOCKER_CERT_PATH),"
        " ssh://, or a Docker context name; repeatable, the first is the home engine"
        " (default: [[engine]] tables of mzbuild-async.toml, else the local engine)",
    )
    p.add_argument(
        "--transfer-registry",
        metavar="REF",
        help="where publish: false images travel between engines (default: they stay on one)",
    )


def add_lookup_arguments(p: argparse.ArgumentParser) -> None:
    """How images are looked up: the same flags on every command that looks them up."""
    group = p.add_argument_group("lookups")
    group.add_argument(
        "--tiers",
        help=f"tiers to consult, in this order: {','.join(TIER_ORDER)}"
        " (default: [lookup] tiers of mzbuild-async.toml, else all)",
    )
    group.add_argument(
        "--retries",
        type=positive_int,
        metavar="N",
        help="attempts per request on transient failures (default 5)",
    )
    group.add_argument(
        "--deadline",
        type=positive_seconds,
        metavar="SECONDS",
        help="longest one lookup may take, retries included (default 90)",
    )
    group.add_argument(
        "--no-disk-cache", action="store_true", help="do not read or keep answers on disk"
    )


def add_registry_arguments(p: argparse.ArgumentParser) -> None:
    """Options of every command that talks to registries (the lookup flags among them)."""
    add_lookup_arguments(p)
    p.add_argument(
        "--registry-limit",
        action="append",
        default=[],
        metavar="HOST=CONC[,RATE[,BURST]]",
        help="limit requests to HOST (repeatable; also mzbuild-async.toml)",
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST",
        help="speak plain HTTP to HOST (loopback hosts always are)",
    )


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
