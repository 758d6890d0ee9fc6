"""The command line: argument parsing, output, exit statuses.

Results go to stdout, logs to stderr. Exit status 0 on success, 2 for bad
input (one line on stderr, no traceback), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import json
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path

import anyio

from .. import ci
from ..errors import MzbuildError, UsageError
from ..support import logs
from ..workflow.resolve import (
    Repository,
    Settings,
    cache_dir_of,
    open_repository,
    published,
    targets,
)
from .exits import BROKEN_PIPE, INTERRUPTED, TERMINATED, WAIT_RAN_OUT
from .flags import flags
from .parser import PROG, build_parser, one_line

#: Every exit status, and what it means (docs/reference/exit-statuses.md is made from it).
EXIT_STATUSES = {
    0: "success: every image ended as wanted (``check``: every answer is present or absent)",
    1: "the command ran, but some image failed (a build, a pull, a push), ``check`` has an"
    " unknown answer, ``explain`` found no commit, ``gc`` could not read a repository or"
    " delete a tag, or stdout or a ``--report``/``--trace``/``--timeline`` file could not"
    " be written",
    2: "bad input: a flag, a manifest, the settings file, the repository, an engine or"
    " registry that cannot be used as given (one line on stderr names it)",
    WAIT_RAN_OUT: "a CI step's ``--wait`` ran out: an image another step builds never came"
    " and nothing of this step's own failed (the other step has not run or died without a"
    " failure marker, or the registry could not tell); a retry rule can tell it from a"
    " build failure (1)",
    INTERRUPTED: "interrupted (Ctrl-C): all work stopped, nothing half-pushed",
    BROKEN_PIPE: "the reader of stdout went away (``| head``)",
    TERMINATED: "terminated (SIGTERM, a CI system's cancel): stopped as on Ctrl-C",
}

#: Allocations between collections of the youngest generation (CPython: 700).
GC_THRESHOLD = 100_000


def _targets(args: argparse.Namespace, repo: Repository) -> list[str]:
    return targets(
        repo,
        args.command,
        args.images,
        every=getattr(args, "all", False),  # (`run` names one image and has no --all)
        only=getattr(args, "only", None),
    )


def _emit(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


#: Commands that hand what they produced to the CI system (its output files).
HANDS_OVER = frozenset({"acquire", "ensure", "build", "run", "promote", "publish-manifest"})


def check_output_paths(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Every file the command will write (``--report``, ``--trace``, ``--timeline``,
    ``--metadata-file``, the CI system's step summary and outputs) must be a
    writable file, checked before any work: a run that built and pushed for minutes
    must not fail on them."""
    paths = {
        f"--{flag.replace('_', '-')}": value
        for flag in ("report", "trace", "timeline", "metadata_file")
        if (value := getattr(args, flag, None))
    }
    if args.command in HANDS_OVER:
        from ..ci import detect

        system = detect(environ)
        if system is not None:
            paths.update(
                {f"${name}": value for name, value in system.output_files(environ).items()}
            )
    for what, value in paths.items():
        path = Path(value)
        parent = path.parent
        if path.is_dir():
            raise UsageError(f"{what} {value}: is a directory; name a file")
        if not parent.is_dir():
            raise UsageError(f"{what} {value}: there is no directory {parent}; create it first")
        if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
            raise UsageError(f"{what} {value}: cannot write there (permissions or read-only)")


async def run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; returns the exit status."""
    environ = dict(os.environ)
    check_output_paths(args, environ)
    given = flags(args)
    cache_dir = cache_dir_of(given, environ)
    if args.command == "cache":
        from ..workflow.caches import clear_caches

        clear_caches(cache_dir)
        _emit(f"cleared the caches in {cache_dir}")
        return 0
    if args.command == "keygen":  # (needs no repository)
        from ..workflow.verify import write_keypair

        pair = write_keypair(args.out, args.type, force=args.force)
        _emit(
            f"wrote {pair.private} (the signing key, mode 0600: keep it secret; --sign-key)"
            f" and {pair.public} (verify --key); key id {pair.keyid}"
        )
        return 0
    if args.command == "public-key":  # (needs no repository)
        from ..workflow.verify import public_key_pem

        _emit(public_key_pem(args.sign_key).rstrip("\n"))
        return 0
    with contextlib.ExitStack() as stack:
        if args.command in WRITES_CACHE:
            from ..workflow.caches import usable_cache_dir

            cache_dir = usable_cache_dir(cache_dir, stack)
        repo, settings = await open_repository(given, environ, cache_dir)
        return await COMMANDS[args.command](args, repo, settings)


#: Commands that keep state in the cache directory besides the digest cache
#: (which copes with an unwritable directory on its own).
WRITES_CACHE = frozenset(
    {
        "check",
        "plan",
        "pipeline",
        "acquire",
        "ensure",
        "build",
        "run",
        "promote",
        "publish-manifest",
        "verify",
        "lock",
    }
)


async def _list(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    if not args.json:
        _emit("\n".join(repo.images))
        return 0
    from ..workflow.inspect import listing

    _emit(json.dumps(listing(repo), indent=2))
    return 0


async def _fingerprints(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    """``fingerprint`` and ``spec``."""
    from ..workflow.inspect import fingerprints

    values = await fingerprints(repo, _targets(args, repo), spec=args.command == "spec")
    if args.json:
        _emit(json.dumps(values, indent=2))
    elif args.command == "spec" or len(args.images) == 1:
        _emit("\n".join(values.values()))
    else:
        _emit("\n".join(f"{name} {value}" for name, value in values.items()))
    return 0


async def _describe(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from ..report.describe import describe_json, describe_text
    from ..workflow.inspect import describe

    descriptions = await describe(repo, args.images[0], transitive=args.transitive)

    if args.json:
        _emit(json.dumps({d.image.name: describe_json(d) for d in descriptions}, indent=2))
    else:
        _emit("\n\n".join(describe_text(d) for d in descriptions))
    return 0


# The commands that talk to registries and engines import their modules
# (httpx, aiodocker, the build code) only when they run.


async def _check(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .check import run_check

    return await run_check(args, repo, _targets(args, repo), settings)


async def _build(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    """``acquire``, ``ensure``, ``build`` and ``run``."""
    from .build import run_build_command

    return await run_build_command(args, repo, _targets(args, repo), settings)


async def _explain(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .explain import run_explain

    return await run_explain(args, repo)


async def _plan(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .build import run_plan_command

    return await run_plan_command(args, repo, _targets(args, repo), settings)


async def _pipeline(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .pipeline import run_pipeline_command

    names = _targets(args, repo)
    if args.all:  # a publish: false image is built in a step only where a build needs it
        names = published(repo, names)
    return await run_pipeline_command(args, repo, names, settings)


async def _verify(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .attest import run_verify

    names = _targets(args, repo)
    return await run_verify(args, repo, published(repo, names) if args.all else names, settings)


async def _lock(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .attest import run_lock

    return await run_lock(args, repo, _targets(args, repo), settings)


async def _promote(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .build import run_promote

    names = _targets(args, repo)
    return await run_promote(args, repo, published(repo, names) if args.all else names, settings)


async def _affected(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .affected import run_affected

    return await run_affected(args, repo, settings)


async def _gc(args: argparse.Namespace, repo: Repository, settings: Settings) -> int:
    from .gc import run_gc

    return await run_gc(args, repo, settings)


Command = Callable[[argparse.Namespace, Repository, Settings], Awaitable[int]]
#: Each command (but ``cache``, which needs no repository) and what runs it.
COMMANDS: dict[str, Command] = {
    "list": _list,
    "fingerprint": _fingerprints,
    "spec": _fingerprints,
    "describe": _describe,
    "check": _check,
    "acquire": _build,
    "ensure": _build,
    "build": _build,
    "run": _build,
    "explain": _explain,
    "plan": _plan,
    "pipeline": _pipeline,
    "promote": _promote,
    "verify": _verify,
    "lock": _lock,
    "publish-manifest": _promote,
    "gc": _gc,
    "affected": _affected,
}


async def _run_until_terminated(args: argparse.Namespace, terminated: list[int]) -> int:
    """Run the command; SIGTERM (a CI system's cancel) cancels it as Ctrl-C does.

    Cancellation is what stops cargo's process group, Docker builds and
    pushes and removes staging directories, so SIGTERM gets all of it. A
    handler is also what makes SIGTERM work at all as PID 1 of a container.
    ``terminated`` receives the signal number.
    """
    loop = asyncio.get_running_loop()
    scope = anyio.CancelScope()

    def on_signal() -> None:
        terminated.append(signal.SIGTERM)
        scope.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_signal)
    try:
        with scope:
            return await run_command(args)
        return TERMINATED
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` goes to the container of `run`, verbatim.
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills a `*` positional from the first run of words only: image
    # names after options (`publish-manifest TAG --arch a IMAGE`) come back here.
    unknown = [word for word in extra if word.startswith("-")]
    takes_many = isinstance(getattr(args, "images", None), list) and args.command not in (
        "run",
        "describe",
        "explain",
    )
    if unknown or (extra and not takes_many):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.images = [*args.images, *extra]
    if passthrough and args.command != "run":
        parser.error(f"{args.command}: arguments after `--` are only for `run`")
    args.args = passthrough
    annotator = ci.annotator(os.environ)
    logs.configure(
        args.verbose - args.quiet,
        fmt=args.log_format,
        colors=logs.wants_color(sys.stderr, os.environ),
        annotate=annotator,
    )
    terminated: list[int] = []
    try:
        status = anyio.run(_run_until_terminated, args, terminated)
    except MzbuildError as exc:
        if not terminated:
            message = one_line(logs.redact_text(str(exc)))
            print(f"{PROG}: error: {message}", file=sys.stderr)
            shown = annotator("error", message) if annotator is not None else None
            if shown is not None:  # (the runner reads commands on stderr too)
                print(shown, file=sys.stderr, flush=True)
            return exc.exit_status
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; stopped all work, pushed nothing unfinished", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); nothing left to say.
        _drop_stdout()
        return BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        return _output_failed(exc)
    if terminated:
        print(
            f"{PROG}: terminated (SIGTERM); stopped all work, pushed nothing unfinished",
            file=sys.stderr,
        )
        return TERMINATED
    return status


#: What a write to stdout fails with when its file cannot take more (``> /dev/full``).
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT})


def _drop_stdout() -> None:
    """Point stdout at /dev/null, so nothing flushes into a broken one at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def _output_failed(exc: OSError) -> int:
    """One line for output that stdout could not take; exit status 1."""
    _drop_stdout()
    print(f"{PROG}: error: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
    return 1


def entry() -> None:
    """The ``mzbuild-async`` console script and ``python -m mzbuild_async``.

    A short command allocates many small objects that the cyclic garbage
    collector scans for nothing, and then spends ~20 ms tearing down the
    interpreter. Both are skipped: collection runs rarely (nothing we keep
    is cyclic garbage), and once the results are flushed and no thread but
    idle daemon threads are left, the process exits at once.

    Two imports that nothing here uses are kept out of the process: trio (the
    command line runs on asyncio only, but httpcore imports trio whenever it is
    installed, a test dependency here: ~75 ms) and httpx's own command line
    (``httpx._main``, which httpx imports with click, rich and pygments when
    they are installed: ~25 ms). Each costs every command that talks to a
    registry; both imports fail quietly in their importers, as intended.
    """
    gc.set_threshold(GC_THRESHOLD)
    for unused in ("trio", "httpx._main"):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]
    try:
        status = main()
    except KeyboardInterrupt:  # (before the run: parsing, the settings; nothing started)
        print(f"{PROG}: interrupted while starting; nothing was done", file=sys.stderr)
        status = INTERRUPTED
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
        status = status or BROKEN_PIPE
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        status = max(status, _output_failed(exc))
    sys.stderr.flush()
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if all(t.daemon for t in others):  # anyio's idle worker threads are daemons
        os._exit(status)
    sys.exit(status)
