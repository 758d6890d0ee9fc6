"""Image specs: ``{registry}/{prefix}{name}:mzbuild-{fingerprint}``, parsed and formatted once."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The tag of a fingerprinted image is this followed by the fingerprint.
TAG_PREFIX = "mzbuild-"
_SEPARATOR = ":" + TAG_PREFIX
#: What the disk tier keeps: a repository path and an ``mzbuild-`` tag.
#: One path component of a repository name, as Docker's reference grammar has it.
PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
#: A registry host name or address, with an optional port.
REGISTRY_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)


def repository_problem(registry: str, prefix: str) -> str | None:
    """What keeps ``registry/{prefix}NAME`` from being a valid repository (None: nothing),
    checked on an example name, as Docker's reference grammar has it."""
    first, _, path = f"{registry}/{prefix}image".partition("/")
    if "." in first or ":" in first or first == "localhost" or first.startswith("["):
        if not REGISTRY_HOST.fullmatch(first):
            return f"{first!r} is not a host[:port]"
    else:  # (Docker Hub: the first component is part of the path)
        path = f"{first}/{path}"
    bad = next((c for c in path.split("/") if not PATH_COMPONENT.fullmatch(c)), None)
    if bad is not None:
        return (
            f"{bad!r} is not a repository name component"
            " (lower-case letters and digits, with '.', '_' or '-' between them)"
        )
    return None


SPEC_PATTERN = re.compile(r"[^\s:@]+(?::[0-9]+)?/[^\s:@]+:mzbuild-[A-Za-z0-9_.-]{1,119}")


@dataclass(frozen=True)
class Spec:
    """One image spec; ``str()`` is its text form."""

    #: Registry and path prefix (``ghcr.io/materializeinc/materialize``).
    registry: str
    #: The image prefix and name (``environmentd``, ``prefix-environmentd``).
    repository: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}{_SEPARATOR}{self.fingerprint}"

    @classmethod
    def parse(cls, text: str) -> Spec:
        """The spec ``text`` stands for (``ValueError`` when it is not one)."""
        head, sep, fingerprint = text.rpartition(_SEPARATOR)
        registry, slash, repository = head.rpartition("/")
        if not sep or not slash or not fingerprint or not registry:
            raise ValueError(f"not an mzbuild image spec: {text!r}")
        return cls(registry, repository, fingerprint)


def format_spec(registry: str, repository: str, fingerprint: str) -> str:
    """The text of the spec of ``repository`` at ``fingerprint`` under ``registry``."""
    return str(Spec(registry, repository, fingerprint))


def fingerprint_of(spec: str) -> str:
    """The fingerprint in ``spec`` (the text after ``:mzbuild-``; the whole text if none)."""
    return spec.rpartition(_SEPARATOR)[2]
