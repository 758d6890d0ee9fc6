"""Fingerprints and specs, bit for bit those of the original mzbuild (sections 4 to 6).

Pure functions over already-hashed inputs: no I/O happens here, so the
algorithm can be read (and tested) on its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import InputError, shown_path
from ..model.manifest import CargoBuild, PreImage
from ..model.options import BuildOptions
from .hashing import FileDigest


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


def input_record(path: str, file: FileDigest) -> bytes:
    """What one input file feeds into its image's hash: mode, path, SHA-1, NUL."""
    try:
        raw = path.encode("utf-8")
    except UnicodeEncodeError:
        # The original encodes paths as UTF-8 too, and fails on this one.
        raise InputError(
            f"{shown_path(path)}: file name is not valid UTF-8, so no fingerprint can"
            " include it (nor can the original mzbuild's); rename the file"
        ) from None
    return file.mode.to_bytes(2, "big") + raw + file.sha1 + b"\0"


def self_digest(
    records: Iterable[bytes],
    pre_images: Iterable[PreImage],
    options: BuildOptions,
) -> bytes:
    """The image's own hash (section 4).

    ``records`` are the :func:`input_record` of every input, in sorted path
    order (Python ``sorted()`` over the paths as ``str``).
    """
    return finish_self_digest(hashlib.sha1(b"".join(records)), pre_images, options)


def finish_self_digest(
    h: hashlib._Hash, pre_images: Iterable[PreImage], options: BuildOptions
) -> bytes:
    """:func:`self_digest` from a hash already fed the records (a copy of one hash
    serves every set of build options)."""
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
