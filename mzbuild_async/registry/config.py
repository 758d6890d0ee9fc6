"""Registry settings: per-host limits, insecure hosts, manifest GETs.

Read from ``mzbuild-async.toml`` at the repository root, then overridden by
flags::

    [lookup]
    tiers = ["memory", "disk", "registry"]   # default: all five
    retries = 5            # attempts per request for transient failures
    deadline = 90.0        # seconds one lookup may take, retries included
    trust-cache = false    # ensure/CI steps: take the disk tier's "present" unconfirmed
                           # (only for registries that never delete a tag)

    [registry."localhost:5000"]
    concurrency = 8        # requests in flight
    rate = 50.0            # requests per second, sustained
    burst = 50             # requests at once after an idle spell
    insecure = true        # no certificate check; plain HTTP if it speaks that
    manifest-get = true    # allow the GET tier (Docker Hub: off by default)
    ca = "certs/ca.pem"    # trust this CA too (besides Docker's certs.d/HOST/*.crt)
    client-cert = "certs/client.pem"   # mutual TLS (with client-key)
    client-key = "certs/client-key.pem"

Loopback hosts are asked over HTTPS first, then plain HTTP if that is what
they speak, as the Docker engine does. Relative paths are from the file's
directory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError, shorten
from ..model.options import CONFIG_NAME
from ..model.status import parse_tiers
from ..support.ratelimit import Limiters, Limits
from .tls import TlsFiles

#: The keys of a ``[registry."HOST"]`` table, and what each means (the reference in docs/).
HOST_KEYS = {
    "concurrency": "requests in flight to the host at most",
    "rate": "requests per second, sustained",
    "burst": "requests at once after an idle spell",
    "insecure": "no certificate check; plain HTTP if the host speaks that",
    "manifest-get": "allow the manifest ``GET`` tier (Docker Hub: off by default, a GET is a pull)",
    "ca": "trust this CA too, besides Docker's ``certs.d/HOST/*.crt`` (path from the file)",
    "client-cert": "mutual TLS: the client certificate (with ``client-key``)",
    "client-key": "mutual TLS: the client certificate's key",
}
#: The keys of the ``[lookup]`` table, and what each means.
LOOKUP_KEYS = {
    "tiers": "the tiers to consult, in order (default: all five: memory, disk, daemon,"
    " registry, manifest)",
    "retries": "attempts per request on transient failures (default: 5)",
    "deadline": "seconds one lookup may take, retries included (default: 90)",
    "trust-cache": "``ensure`` and CI steps take the disk tier's 'present' unconfirmed"
    " (only for registries that never delete a tag; default: false)",
}


@dataclass(frozen=True)
class RegistryConfig:
    """Registry settings for one run."""

    limits: Mapping[str, Limits] = field(default_factory=dict)
    insecure: frozenset[str] = frozenset()
    manifest_on_docker_hub: bool = False
    #: Tiers to consult (None: all, or what --tiers says).
    tiers: tuple[str, ...] | None = None
    retries: int | None = None
    deadline: float | None = None
    #: ``[lookup] trust-cache``: ensure and CI steps take the disk tier's "present".
    trust_cache: bool = False
    #: CA and client certificates per host.
    tls: Mapping[str, TlsFiles] = field(default_factory=dict)

    def limiters(self) -> Limiters:
        """Fresh per-host limiters with these limits."""
        return Limiters(configured=dict(self.limits))


def _limits(where: str, host: str, table: Mapping[str, Any], base: Limits) -> Limits:
    values: dict[str, Any] = {}
    for key, kind in (("concurrency", int), ("rate", float), ("burst", int)):
        if key in table:
            value = table[key]
            number = not isinstance(value, bool) and isinstance(value, int | float)
            if not number or not math.isfinite(value) or value <= 0:
                raise UsageError(
                    f"{where}: {host}: {key} must be a positive, finite number, got {value!r}"
                )
            if kind is int and value != int(value):
                raise UsageError(f"{where}: {host}: {key} must be a whole number, got {value!r}")
            values[key] = kind(value)
    return replace(base, **values)


def registry_config(data: Mapping[str, Any], root: Path) -> RegistryConfig:
    """The ``[lookup]`` and ``[registry."HOST"]`` tables of the parsed file, checked
    (TLS paths from ``root``)."""
    if not data:
        return RegistryConfig()
    return replace(_hosts(data.get("registry", {}), root), **_lookup(data.get("lookup", {})))


def _lookup(lookup: object) -> dict[str, Any]:
    """The ``[lookup]`` table, checked: ``tiers``, ``retries`` and ``deadline``."""
    if not isinstance(lookup, dict):
        raise UsageError(f"{CONFIG_NAME}: [lookup] must be a table")
    unknown_lookup = set(lookup) - set(LOOKUP_KEYS)
    if unknown_lookup:
        raise UsageError(
            f"{CONFIG_NAME}: [lookup]: unknown setting {sorted(unknown_lookup)[0]!r};"
            f" known: {', '.join(sorted(LOOKUP_KEYS))}"
        )
    trust = lookup.get("trust-cache", False)
    if not isinstance(trust, bool):
        raise UsageError(
            f"{CONFIG_NAME}: [lookup] trust-cache must be true or false, got {trust!r}"
        )
    tiers = lookup.get("tiers")
    if tiers is not None and (
        not isinstance(tiers, list) or not all(isinstance(t, str) for t in tiers)
    ):
        raise UsageError(f"{CONFIG_NAME}: [lookup] tiers must be a list of tier names")
    retries = lookup.get("retries")
    if retries is not None and (
        isinstance(retries, bool) or not isinstance(retries, int) or retries < 1
    ):
        raise UsageError(f"{CONFIG_NAME}: [lookup] retries must be a positive integer")
    deadline = lookup.get("deadline")
    if deadline is not None and (
        isinstance(deadline, bool)
        or not isinstance(deadline, int | float)
        or not math.isfinite(deadline)
        or deadline <= 0
    ):
        raise UsageError(f"{CONFIG_NAME}: [lookup] deadline must be a positive number of seconds")
    return {
        "tiers": parse_tiers(",".join(tiers)) if tiers is not None else None,
        "retries": retries,
        "deadline": float(deadline) if deadline is not None else None,
        "trust_cache": trust,
    }


def _hosts(hosts: object, base: Path) -> RegistryConfig:
    """The ``[registry."HOST"]`` tables, checked (TLS paths from ``base``)."""
    if not isinstance(hosts, dict):
        raise UsageError(f'{CONFIG_NAME}: [registry] must hold [registry."HOST"] tables')
    limits: dict[str, Limits] = {}
    insecure: set[str] = set()
    tls: dict[str, TlsFiles] = {}
    hub_get = False
    for host, table in hosts.items():
        if not isinstance(table, dict):
            raise UsageError(f'{CONFIG_NAME}: registry.{host} must be a table [registry."{host}"]')
        unknown = set(table) - set(HOST_KEYS)
        if unknown:
            raise UsageError(
                f"{CONFIG_NAME}: {host}: unknown setting {sorted(unknown)[0]!r};"
                f" known: {', '.join(sorted(HOST_KEYS))}"
            )
        limits[host] = _limits(CONFIG_NAME, host, table, Limiters().limits_for(host))
        for key in ("insecure", "manifest-get"):
            if key in table and not isinstance(table[key], bool):
                raise UsageError(
                    f"{CONFIG_NAME}: {host}: {key} must be true or false,"
                    f" got {shorten(repr(table[key]))}"
                )
        if table.get("insecure") is True:
            insecure.add(host)
        files = _tls_files(base, host, table)
        if not files.empty:
            tls[host] = files
        if host in ("docker.io", "registry-1.docker.io") and table.get("manifest-get") is True:
            hub_get = True
    return RegistryConfig(limits, frozenset(insecure), hub_get, tls=tls)


def _tls_files(base: Path, host: str, table: Mapping[str, Any]) -> TlsFiles:
    """The ``ca``/``client-cert``/``client-key`` of one host, checked to be files."""
    paths: dict[str, Path] = {}
    for key in ("ca", "client-cert", "client-key"):
        value = table.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise UsageError(f"{CONFIG_NAME}: {host}: {key} must be a file path, got {value!r}")
        file = base / value
        if not file.is_file():
            raise UsageError(f"{CONFIG_NAME}: {host}: {key} {file}: no such file")
        paths[key] = file
    if ("client-cert" in paths) != ("client-key" in paths):
        raise UsageError(f"{CONFIG_NAME}: {host}: client-cert and client-key go together; set both")
    cas = (paths["ca"],) if "ca" in paths else ()
    return TlsFiles(cas, paths.get("client-cert"), paths.get("client-key"))


def parse_limit_flag(text: str) -> tuple[str, Limits]:
    """``HOST=CONCURRENCY[,RATE[,BURST]]`` from ``--registry-limit``."""
    host, sep, spec = text.partition("=")
    parts = spec.split(",") if sep else []
    if not host or not 1 <= len(parts) <= 3:
        raise UsageError(
            f"--registry-limit {text!r}: use HOST=CONCURRENCY[,RATE[,BURST]], e.g. ghcr.io=16,50,50"
        )
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise UsageError(f"--registry-limit {text!r}: the limits must be numbers") from None
    table = dict(zip(("concurrency", "rate", "burst"), numbers, strict=False))
    return host, _limits("--registry-limit", host, table, Limiters().limits_for(host))


def with_flags(
    config: RegistryConfig,
    limits: Iterable[str],
    insecure: Iterable[str],
    manifest_on_docker_hub: bool,
) -> RegistryConfig:
    """``config`` with command-line settings applied on top."""
    merged = dict(config.limits)
    merged.update(parse_limit_flag(text) for text in limits)
    return replace(
        config,
        limits=merged,
        insecure=config.insecure | frozenset(insecure),
        manifest_on_docker_hub=config.manifest_on_docker_hub or manifest_on_docker_hub,
    )
