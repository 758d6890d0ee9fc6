"""Image references parsed as Docker parses them.

``ubuntu`` is ``docker.io/library/ubuntu:latest``; a first component with a
``.`` or ``:`` or equal to ``localhost`` is a registry host
(``host:port/a/b:tag``). Docker Hub's API lives at ``registry-1.docker.io``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from ..errors import UsageError
from ..model.spec import PATH_COMPONENT, REGISTRY_HOST

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = PATH_COMPONENT
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_HOST = REGISTRY_HOST


@dataclass(frozen=True)
class Reference:
    """A parsed image reference."""

    #: The registry as written (``docker.io`` for Docker Hub).
    domain: str
    #: The repository path (``library/ubuntu``).
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def api_host(self) -> str:
        """Where the registry's HTTP API answers (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.domain == DOCKER_HUB else self.domain

    @property
    def reference(self) -> str:
        """The tag or digest to ask the registry for (``latest`` if neither)."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        text = f"{self.domain}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def is_tag(text: str) -> bool:
    """Whether ``text`` is a tag name the distribution spec allows."""
    return _TAG.fullmatch(text) is not None


def parse_reference(text: str) -> Reference:
    """Parse ``text`` like ``docker pull`` does, or raise a :class:`UsageError`."""
    original = text
    if not text or text != text.strip():
        raise UsageError(f"invalid image reference {original!r}: empty or padded with spaces")
    digest = None
    if "@" in text:
        text, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise UsageError(f"invalid image reference {original!r}: bad digest {digest!r}")
    tag = None
    last = text.rsplit("/", 1)[-1]
    if ":" in last:
        text, tag = text.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            raise UsageError(f"invalid image reference {original!r}: bad tag {tag!r}")
    first, sep, rest = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        domain, path = first, rest
        if not _HOST.fullmatch(domain):
            raise UsageError(f"invalid image reference {original!r}: bad registry {domain!r}")
    else:
        domain, path = DOCKER_HUB, text
    if domain == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    components = path.split("/")
    if not path or not all(_COMPONENT.fullmatch(c) for c in components):
        raise UsageError(
            f"invalid image reference {original!r}: repository {path!r} must be lowercase"
            " letters, digits and separators"
        )
    if len(str(Reference(domain, path))) > 255:
        raise UsageError(f"invalid image reference {original[:60]!r}...: longer than 255")
    return Reference(domain=domain, repository=path, tag=tag, digest=digest)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (with an optional port) names this machine."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
