"""``[defaults]`` of ``mzbuild-async.toml``: the build options a team writes once.

Every command reads them, ``spec`` and ``fingerprint`` too (the registry is
part of a spec), so this reader is light: the file's text and one table. The
whole file is checked by :mod:`.config` for the commands that read the rest.
Precedence, for each option: the flag, then the environment, then this table,
then the original's default.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError, shorten
from ..model.options import CONFIG_NAME, Arch, Profile
from ..support.documents import parse_toml

#: The keys of ``[defaults]``, and what each sets.
DEFAULTS_KEYS = {
    "image-registry": "registry of image specs (``--image-registry``,"
    " ``MZBUILD_ASYNC_IMAGE_REGISTRY``); without it, Materialize's registry, with a warning"
    " from every command that talks to it",
    "image-prefix": "prefix of image names (``--image-prefix``, ``MZBUILD_ASYNC_IMAGE_PREFIX``)",
    "arch": "x86_64 or aarch64 (``--arch``, ``DOCKER_DEFAULT_PLATFORM``; else this machine's)",
    "profile": "dev, release or optimized (``--profile``, ``CI_LTO``; else optimized)",
}


@dataclass(frozen=True)
class Defaults:
    """What ``[defaults]`` says (None: it does not say)."""

    image_registry: str | None = None
    image_prefix: str | None = None
    arch: Arch | None = None
    profile: Profile | None = None


def read_file(root: Path) -> dict[str, Any]:
    """The parsed settings file at ``root`` (empty when there is none); whatever it
    holds that is not TOML is one line naming it."""
    try:
        return parse_toml((root / CONFIG_NAME).read_bytes())
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{CONFIG_NAME}: not UTF-8 (byte {exc.start}: {exc.reason}); TOML files are UTF-8"
        ) from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{CONFIG_NAME}: cannot read: {exc}") from None


def defaults_of(data: Mapping[str, Any]) -> Defaults:
    """The ``[defaults]`` table of a parsed file, checked: a key we do not know or a value
    of the wrong kind is one line naming it."""
    table = data.get("defaults", {})
    if not isinstance(table, dict):
        raise UsageError(f"{CONFIG_NAME}: [defaults] must be a table")
    unknown = sorted(set(table) - set(DEFAULTS_KEYS))
    if unknown:
        raise UsageError(
            f"{CONFIG_NAME}: [defaults] has no setting {shorten(unknown[0])!r}; known:"
            f" {', '.join(DEFAULTS_KEYS)}"
        )
    for key, value in table.items():
        if not isinstance(value, str) or (key != "image-prefix" and not value.strip()):
            raise UsageError(f"{CONFIG_NAME}: [defaults] {key} must be a non-empty string")
    try:
        arch = Arch.parse(table["arch"]) if "arch" in table else None
        profile = Profile.parse(table["profile"]) if "profile" in table else None
    except UsageError as exc:
        raise UsageError(f"{CONFIG_NAME}: [defaults]: {exc}") from None
    return Defaults(
        image_registry=table.get("image-registry"),
        image_prefix=table.get("image-prefix"),
        arch=arch,
        profile=profile,
    )


def read_defaults(root: Path) -> Defaults:
    """``[defaults]`` of the settings file at ``root``."""
    return defaults_of(read_file(root))
