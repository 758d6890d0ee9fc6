"""Registry and lookup settings: flags over ``mzbuild-async.toml`` over defaults, once.

:func:`engine_settings` is the pool of engines of the commands that build.
Every command that talks to registries (``check``, ``plan``, ``acquire``,
``ensure``, ``build``, ``run``, ``publish-manifest``) takes its client and
its lookup tiers from :func:`registry_settings`, so the file means the
same to all of them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ..engine.endpoints import Endpoint, engine_tables, parse_engine_flag, resolve_engines
from ..model.status import TIER_ORDER, parse_tiers
from ..registry.client import DEFAULT_DEADLINE
from ..registry.config import (
    CONFIG_NAME,
    load_registry_config,
    read_config_file,
    with_flags,
)
from ..support.retry import DEFAULT_RETRY
from ..workflow.settings import RegistrySettings


def registry_settings(
    args: argparse.Namespace, root: Path, environ: Mapping[str, str] | None = None
) -> RegistrySettings:
    """The settings of the repository at ``root`` with the command's flags applied."""
    config = with_flags(
        load_registry_config(root),
        getattr(args, "registry_limit", []),
        getattr(args, "insecure_registry", []),
        getattr(args, "manifest_get_docker_hub", False),
    )
    flag_tiers = getattr(args, "tiers", None)
    tiers = parse_tiers(flag_tiers) if flag_tiers else (config.tiers or TIER_ORDER)
    if getattr(args, "no_disk_cache", False):
        tiers = tuple(t for t in tiers if t != "disk")
    attempts = getattr(args, "retries", None) or config.retries
    retry = DEFAULT_RETRY if attempts is None else replace(DEFAULT_RETRY, attempts=attempts)
    return RegistrySettings(
        config=config,
        tiers=tiers,
        retry=retry,
        deadline=getattr(args, "deadline", None) or config.deadline or DEFAULT_DEADLINE,
        environ=dict(os.environ if environ is None else environ),
    )


def engine_settings(
    args: argparse.Namespace, root: Path, environ: Mapping[str, str] | None = None
) -> tuple[Endpoint, ...]:
    """The pool: ``--engine`` flags, else the ``[[engine]]`` tables (none: the local engine)."""
    flags = getattr(args, "engine", None) or []
    if flags:
        configs = [parse_engine_flag(flag) for flag in flags]
    else:
        configs = engine_tables(read_config_file(root).get("engine", []), root, CONFIG_NAME)
    return tuple(resolve_engines(configs, dict(os.environ if environ is None else environ)))
