"""Which files are the inputs of an image (fingerprint spec §3).

An image's inputs are its context (visible files under its directory, minus
those of deeper images), plus for each ``cargo-build`` pre-image the shared
builder files and every file of the crates it compiles, plus for each
``copy`` pre-image the files it copies.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Callable, Iterable

from ..model.manifest import CargoBuild, Copy, PreImage
from .cargo import EXCLUDED_CRATE_FILES, Crate, Workspace
from .gitview import GitView

#: Shared inputs of every ``cargo-build`` pre-image, besides ``ci/builder/``.
CARGO_SHARED_FILES = ("Cargo.toml", "Cargo.lock", ".cargo/config")
CARGO_BUILDER_DIR = "ci/builder"


def context_files(view: GitView, directory: str, nested: Iterable[str]) -> list[str]:
    """Visible files under ``directory`` that no deeper image directory owns."""
    files = view.under(directory)
    prefixes = tuple(d + "/" for d in nested)
    if not prefixes:
        return list(files)
    return [f for f in files if not f.startswith(prefixes)]


def crate_files(view: GitView, crate: Crate) -> list[str]:
    """Visible files of a crate, without ``mzcompose``/``mzcompose.py`` at its top."""
    top = "" if crate.path == "." else crate.path
    excluded = {posixpath.join(top, name) for name in EXCLUDED_CRATE_FILES}
    return [f for f in view.under(crate.path) if f not in excluded]


def cargo_shared_files(view: GitView) -> list[str]:
    """Inputs every cargo-build pre-image shares: the builder and workspace files."""
    return [*view.under(CARGO_BUILDER_DIR), *(f for f in CARGO_SHARED_FILES if f in view)]


def cargo_crates(pre_image: CargoBuild, workspace: Workspace, where: str) -> set[Crate]:
    """The crates a ``cargo-build`` pre-image compiles (path-dependency closures)."""
    crates: set[Crate] = set()
    for name in pre_image.bins:
        crates.update(workspace.closure(workspace.crate_for_bin(name, where)))
    for name in pre_image.examples:
        crates.update(workspace.closure(workspace.crate_for_example(name, where), dev=True))
    return crates


def _pathspec_glob(pattern: str) -> str:
    """A git pathspec glob as an fnmatch pattern: no ``./`` prefix, ``[^...]`` is ``[!...]``."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return re.sub(r"\[\^", "[!", pattern)


def copy_files(view: GitView, pre_image: Copy) -> list[str]:
    """Visible files under the copy's source that match its glob.

    The glob is matched like a git pathspec against the path relative to
    the source: ``*`` also matches ``/``, and a literal pattern matches a
    directory and everything under it.
    """
    source = pre_image.source
    pattern = _pathspec_glob(pre_image.matching)
    offset = len(source) + 1 if source else 0
    found = []
    for path in view.under(source):
        rel = path[offset:]
        if fnmatch.fnmatchcase(rel, pattern) or rel.startswith(pattern.rstrip("/") + "/"):
            found.append(path)
    return found


def image_inputs(
    view: GitView,
    directory: str,
    nested: Iterable[str],
    pre_images: Iterable[PreImage],
    workspace: Callable[[], Workspace],
    where: str,
) -> tuple[str, ...]:
    """The sorted, distinct input paths of one image.

    ``workspace`` is called only if a pre-image needs Cargo, so repositories
    without Rust never read a ``Cargo.toml``; ``where`` names the manifest
    for error messages.
    """
    inputs = set(context_files(view, directory, nested))
    for pre_image in pre_images:
        if isinstance(pre_image, CargoBuild):
            inputs.update(cargo_shared_files(view))
            for crate in cargo_crates(pre_image, workspace(), where):
                inputs.update(crate_files(view, crate))
        else:
            inputs.update(copy_files(view, pre_image))
    return tuple(sorted(inputs))
