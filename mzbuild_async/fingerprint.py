"""Fingerprints and specs, bit for bit those of the original mzbuild (sections 4 to 6).

Pure functions over already-hashed inputs: no I/O happens here, so the
algorithm can be read (and tested) on its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import BuildOptions
from .hashing import FileDigest
from .manifest import CargoBuild, PreImage


@dataclass(frozen=True, order=True)
class Fingerprint:
    """A 20-byte image fingerprint; ``str()`` is its base32 text form."""

    digest: bytes

    def __str__(self) -> str:
        return base64.b32encode(self.digest).decode()

    @classmethod
    def parse(cls, text: str) -> Fingerprint:
        """The fingerprint whose text form is ``text`` (32 base32 characters)."""
        digest = base64.b32decode(text.upper())
        if len(digest) != 20:
            raise ValueError(f"not a fingerprint: {text!r}")
        return cls(digest)


def pre_image_extra(pre_image: PreImage, options: BuildOptions) -> str:
    """The ``extra`` string a pre-image feeds into its image's hash."""
    if isinstance(pre_image, CargoBuild):
        return options.cargo_extra()
    return ""


def self_digest(
    inputs: Mapping[str, FileDigest],
    pre_images: Iterable[PreImage],
    options: BuildOptions,
) -> bytes:
    """The image's own hash: its inputs, pre-images and options (§4)."""
    h = hashlib.sha1()
    for path in sorted(inputs):
        file = inputs[path]
        h.update(file.mode.to_bytes(2, "big"))
        h.update(path.encode("utf-8", "surrogateescape"))
        h.update(file.sha1)
        h.update(b"\0")
    for pre_image in pre_images:
        h.update(pre_image_extra(pre_image, options).encode())
        h.update(b"\0")
    h.update(options.fingerprint_suffix().encode())
    return h.digest()


def fingerprint(own: bytes, dependencies: Mapping[str, Fingerprint]) -> Fingerprint:
    """Combine an image's own hash with its direct dependencies' fingerprints (§5)."""
    h = hashlib.sha1(own)
    for name in sorted(dependencies):
        h.update(name.encode())
        h.update(dependencies[name].digest)
        h.update(b"\0")
    return Fingerprint(h.digest())
