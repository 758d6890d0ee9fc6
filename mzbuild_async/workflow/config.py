"""``mzbuild-async.toml``: the one reader of the settings file.

The file is read once per command; each table goes to the module that owns
its meaning (``[defaults]``: :mod:`.defaults`; ``[lookup]`` and ``[registry."HOST"]``:
:mod:`..registry.config`; ``[[engine]]``: :mod:`..engine.endpoints`;
``[[publish]]`` and ``[promote]``: :mod:`..model.publication`). A table
or key it does not know, a value of the wrong kind, bytes that are not
UTF-8: one line naming the file, exit status 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.endpoints import ENGINE_KEYS, EngineConfig, engine_tables
from ..errors import UsageError, shorten
from ..model.options import CONFIG_NAME
from ..model.publication import PROMOTE_KEYS, PUBLISH_KEYS, PublishConfig, publish_config
from ..model.secrets import SECRET_KEYS, SecretSource, secret_tables
from ..registry.config import HOST_KEYS, LOOKUP_KEYS, RegistryConfig, registry_config
from ..source.pins import DOCKER_HUB
from .defaults import DEFAULTS_KEYS, Defaults, defaults_of, read_file


@dataclass(frozen=True)
class Table:
    """One kind of table the file may have: how it is written, what it is for, its keys."""

    header: str
    about: str
    keys: Mapping[str, str]


#: The tables the file may have, by top-level key (docs/reference/configuration.md
#: is made from these, and from nothing else).
TABLES = {
    "defaults": Table(
        "[defaults]",
        "The build options every command starts from (a flag or the environment wins).",
        DEFAULTS_KEYS,
    ),
    "lookup": Table(
        "[lookup]",
        "How images are looked up, for every command that looks them up (flags win).",
        LOOKUP_KEYS,
    ),
    "registry": Table(
        '[registry."HOST"]',
        "One registry host (``HOST`` as in image names, with its port): limits, TLS, HTTP.",
        HOST_KEYS,
    ),
    "engine": Table(
        "[[engine]]",
        "One engine of the pool builds are spread over, home engine first"
        " (``--engine`` flags replace them all).",
        ENGINE_KEYS,
    ),
    "publish": Table(
        "[[publish]]",
        "One mirror registry: every image is published there too, under the same tags.",
        PUBLISH_KEYS,
    ),
    "promote": Table("[promote]", "How ``promote`` treats tags that already exist.", PROMOTE_KEYS),
    "mirrors": Table(
        "[mirrors]",
        "Where external base images (``FROM``) are pulled from instead: a mirror or"
        ' pull-through cache per registry (``"docker.io" = "HOST/PREFIX"``); a spec'
        " never changes with it. Images are published to ``[[publish]]`` mirrors.",
        {
            "REGISTRY": "``HOST[:PORT][/PREFIX]`` to pull that registry's images from"
            " (``alpine:3`` through ``docker.io``'s is ``HOST/PREFIX/library/alpine:3``)",
        },
    ),
    "secret": Table(
        "[[secret]]",
        "One build secret, for ``RUN --mount=type=secret,id=ID`` (``--secret`` flags add to"
        " them); never a fingerprint input.",
        SECRET_KEYS,
    ),
}


@dataclass(frozen=True)
class ConfigFile:
    """What ``mzbuild-async.toml`` says (defaults when there is none)."""

    registry: RegistryConfig = field(default_factory=RegistryConfig)
    #: The ``[[engine]]`` tables: the pool, home engine first.
    engines: tuple[EngineConfig, ...] = ()
    #: The ``[[publish]]`` mirrors and ``[promote]`` settings.
    publish: PublishConfig = field(default_factory=PublishConfig)
    #: The ``[[secret]]`` tables (where each build secret's value comes from).
    secrets: tuple[SecretSource, ...] = ()
    #: ``[defaults]``: the build options every command starts from.
    defaults: Defaults = field(default_factory=Defaults)
    #: ``[mirrors]``: where each registry's base images are pulled from instead.
    base_mirrors: Mapping[str, str] = field(default_factory=dict)


def load_config(root: Path) -> ConfigFile:
    """The settings file at ``root``, read and checked."""
    data = read_config_file(root)
    return ConfigFile(
        registry=registry_config(data, root),
        engines=tuple(engine_tables(data.get("engine", []), root, CONFIG_NAME)),
        publish=publish_config(data),
        secrets=tuple(secret_tables(data.get("secret", []))),
        defaults=defaults_of(data),
        base_mirrors=base_mirrors(data.get("mirrors", {})),
    )


def base_mirrors(table: object) -> dict[str, str]:
    """``[mirrors]``, checked: each registry (Docker Hub's names as ``docker.io``) to the
    ``HOST[/PREFIX]`` its base images are pulled from."""
    if not isinstance(table, dict):
        raise UsageError(f'{CONFIG_NAME}: [mirrors] must be a table of registry = "HOST/PREFIX"')
    found: dict[str, str] = {}
    for registry, mirror in table.items():
        if not isinstance(mirror, str) or not mirror.strip("/ ") or "://" in mirror:
            raise UsageError(
                f"{CONFIG_NAME}: [mirrors] {shorten(registry)!r} must be HOST[:PORT][/PREFIX]"
                ' (no scheme), e.g. "mirror.example.com/dockerhub"'
            )
        found["docker.io" if registry in DOCKER_HUB else registry] = mirror.strip("/ ")
    return found


def read_config_file(root: Path) -> dict[str, Any]:
    """The parsed file at ``root`` (empty when there is none).

    Whatever the file holds (bytes that are not UTF-8, nesting deeper than
    the parser's recursion, a table we do not know) is one line naming it.
    """
    data = read_file(root)
    unknown = sorted(set(data) - set(TABLES))
    if unknown:
        raise UsageError(
            f"{CONFIG_NAME}: unknown setting {shorten(unknown[0])!r}; known:"
            f" {', '.join(f'[{k}]' for k in sorted(TABLES))}"
        )
    return data
