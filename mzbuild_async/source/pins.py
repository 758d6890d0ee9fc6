"""``mzbuild.lock``: an image's external base images pinned to digests.

An external base is a ``FROM`` that is not ``scratch``, not an earlier
stage's name and not already pinned (``@sha256:``); ``MZFROM`` lines are our
own images and never locked. ``lock`` writes the file beside the image's
``mzbuild.yml``; being in the image's directory, it is an input of that
image only (images without one keep the original's fingerprints). Builds of
an image with a lock use the pinned digests (:func:`pinned_dockerfile`)::

    # mzbuild.lock: written by `mzbuild-async lock`
    [from]
    "ubuntu:22.04" = "sha256:..."
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError
from ..support.documents import parse_toml

LOCK_FILE = "mzbuild.lock"
_FROM = re.compile(rb"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE | re.DOTALL)
_STAGE = re.compile(rb"\s+AS\s+(\S+)", re.IGNORECASE)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def external_bases(dockerfile: bytes) -> list[str]:
    """The external base references of a Dockerfile, in order, each once."""
    stages: set[str] = set()
    found: list[str] = []
    for line in dockerfile.splitlines():
        match = _FROM.match(line)
        if not match:
            continue
        reference = match.group(3).decode()
        stage = _STAGE.match(match.group(4))
        if _external(reference, stages) and reference not in found:
            found.append(reference)
        if stage:
            stages.add(stage.group(1).decode().lower())
    return found


def _external(reference: str, stages: set[str]) -> bool:
    return (
        reference.lower() != "scratch"
        and reference.lower() not in stages
        and "@" not in reference
        and "$" not in reference
    )


def pinned_dockerfile(dockerfile: bytes, pins: Mapping[str, str]) -> bytes:
    """Each locked external ``FROM ref`` as ``FROM ref@digest``; the rest kept."""
    if not pins:
        return dockerfile
    out: list[bytes] = []
    for line in dockerfile.splitlines(keepends=True):
        match = _FROM.match(line)
        reference = match.group(3).decode() if match else ""
        if match and reference in pins:
            out.append(
                match.group(1) + match.group(2) + f"{reference}@{pins[reference]}".encode()
                + match.group(4)
            )  # fmt: skip
        else:
            out.append(line)
    return b"".join(out)


#: The names Docker Hub is known by in image references (all mean ``docker.io``).
DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def split_registry(reference: str) -> tuple[str, str]:
    """A base image reference's registry and the rest, as Docker reads it: the first
    component is a registry when it has a ``.`` or ``:`` or is ``localhost``; else the
    image is Docker Hub's, an official one under ``library/``."""
    first, sep, rest = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return ("docker.io" if first in DOCKER_HUB else first), rest
    return "docker.io", reference if sep else f"library/{reference}"


def mirrored(reference: str, mirrors: Mapping[str, str]) -> str:
    """``reference`` through the mirror (or pull-through cache) of its registry, if
    there is one (``docker.io`` -> ``HOST/PREFIX``: ``alpine:3`` is then
    ``HOST/PREFIX/library/alpine:3``)."""
    registry, rest = split_registry(reference)
    mirror = mirrors.get(registry)
    return f"{mirror.rstrip('/')}/{rest}" if mirror else reference


def mirrored_dockerfile(dockerfile: bytes, mirrors: Mapping[str, str]) -> bytes:
    """Each external base (``FROM``, pinned or not; never a stage or ``scratch``) through
    its registry's mirror; the rest kept. The fingerprint is the repository's Dockerfile
    and lock, so a mirror changes where bases are pulled from, never a spec."""
    if not mirrors:
        return dockerfile
    stages: set[str] = set()
    out: list[bytes] = []
    for line in dockerfile.splitlines(keepends=True):
        match = _FROM.match(line)
        if not match:
            out.append(line)
            continue
        reference = match.group(3).decode()
        stage = _STAGE.match(match.group(4))
        name = reference.lower()
        if name != "scratch" and name not in stages and "$" not in reference:
            reference = mirrored(reference, mirrors)
        if stage:
            stages.add(stage.group(1).decode().lower())
        out.append(match.group(1) + match.group(2) + reference.encode() + match.group(4))
    return b"".join(out)


def read_lock(directory: Path) -> dict[str, str]:
    """The pins of the image in ``directory`` (empty without a lock file); a bad file is
    one line naming it."""
    path = directory / LOCK_FILE
    try:
        data = parse_toml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputError(
            f"{path}: cannot read it ({exc}); run `mzbuild-async lock` again"
        ) from None
    pins = data.get("from", {})
    if not isinstance(pins, dict) or not all(
        isinstance(v, str) and _DIGEST.match(v) for v in pins.values()
    ):
        raise InputError(
            f"{path}: [from] must map references to sha256 digests; run `mzbuild-async lock` again"
        )
    return {str(k): v for k, v in pins.items()}


def lock_text(pins: Mapping[str, str]) -> str:
    """The lock file's text (sorted: the same pins give the same bytes)."""
    lines = ["# mzbuild.lock: written by `mzbuild-async lock`; base images pinned", "[from]"]
    lines += [f'"{ref}" = "{digest}"' for ref, digest in sorted(pins.items())]
    return "\n".join(lines) + "\n"
