"""The one exception tree of mzbuild_async.

Every error a user can cause (bad manifests, a directory that is not a git
repository, an unknown image name) is an ``MzbuildError`` whose ``str()`` is
one line saying what is wrong, where, and what to do. The CLI prints that
line and exits with status 2; it never shows a traceback for these.

::

    MzbuildError
    ├── UsageError          bad options or image names on the command line
    ├── ManifestError       an mzbuild.yml or Dockerfile that cannot be used
    ├── RepositoryError     the set of images: duplicates, unknown MZFROM, cycles
    ├── GitError            the git view of the working tree cannot be read
    ├── CargoError          the Cargo workspace or a crate cannot be resolved
    ├── InputError          an input file cannot be read or hashed
    ├── EngineError         the Docker engine is absent, refused or died
    └── BuildError          one image's work failed (its result records it)
        ├── CargoBuildError     ``cargo build`` failed (crate and first error)
        ├── DockerBuildError    ``docker build`` failed (step and last lines)
        └── TransferError       a pull, push or manifest write failed
            └── ManifestUnknown     the registry lacks a tag we were told it has

Third-party exceptions are translated at one boundary per external system,
from their types (status codes, exception classes), never elsewhere:
httpx in ``registry/client.py`` (a lookup answer is then a ``Status``, a
write a ``RegistryUnavailable``), aiodocker and aiohttp in
``engine/docker.py`` (``EngineError``, ``DockerBuildError``,
``TransferError`` with ``transient`` set there), subprocesses in
``builds/cargo.py`` and ``source/gitview.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class MzbuildError(Exception):
    """Base of every error mzbuild_async raises on purpose."""

    exit_status = 2


class UsageError(MzbuildError):
    """A command-line option, environment variable or image name is invalid."""


class ManifestError(MzbuildError):
    """An ``mzbuild.yml`` or its ``Dockerfile`` is malformed or invalid."""


class RepositoryError(MzbuildError):
    """The images do not form a valid set (duplicates, unknown MZFROM, cycle)."""


class GitError(MzbuildError):
    """The git view of the working tree could not be obtained."""


class CargoError(MzbuildError):
    """The Cargo workspace or one of its crates could not be resolved."""


class InputError(MzbuildError):
    """An input file of an image could not be read."""


class EngineError(MzbuildError):
    """The Docker engine is not running, refused a request, or went away."""


class BuildError(MzbuildError):
    """One image's pull, build or push failed; the run records it and goes on."""

    exit_status = 1


class CargoBuildError(BuildError):
    """``cargo build`` failed; the message names the crate and the first error."""


class DockerBuildError(BuildError):
    """``docker build`` failed; the message names the failing step."""

    def __init__(self, message: str, last_lines: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.last_lines = last_lines


class TransferError(BuildError):
    """A pull, push or manifest write failed.

    ``transient``: the engine's answer says another try may succeed (the
    engine's boundary decides; the worker retries only these). ``unreachable``:
    the engine could not connect to the registry at all (in a pool, another
    engine may).
    """

    def __init__(self, message: str, *, transient: bool = False, unreachable: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.unreachable = unreachable


class ManifestUnknown(TransferError):
    """The registry answered "manifest unknown" for a tag a lookup said it has
    (deleted since, or a registry whose ``HEAD`` and ``GET`` disagree)."""


def reason(exc: BaseException) -> str:
    """What went wrong, for a message: the exception's text, else its kind (a
    timeout or a closed connection often says nothing: never an empty reason)."""
    return str(exc).strip() or type(exc).__name__


def shown_path(path: str) -> str:
    """A path for a message: as is when it is text, else with its odd bytes escaped.

    Git's paths are bytes; ours keep non-UTF-8 bytes as surrogates, which
    must not reach a terminal raw.
    """
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return repr(path.encode("utf-8", "surrogateescape"))[2:-1]
    return path


#: Characters of a user's value a message quotes at most.
SHOWN_CHARS = 80


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with how much was left out): a message
    quotes a value to name it, never to reproduce a huge one."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found += _leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc]
    return found


@contextlib.contextmanager
def single_error() -> Iterator[None]:
    """Re-raise a task group's :class:`MzbuildError` alone, not in an ExceptionGroup.

    Task groups wrap what their tasks raise; a user should see the one
    line of the first error, not a group. Other exceptions pass through.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        errors = [e for e in leaves if isinstance(e, MzbuildError)]
        if errors and len(errors) == len(leaves):
            raise errors[0] from None
        raise
