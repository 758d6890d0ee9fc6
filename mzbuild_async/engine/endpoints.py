"""Where the engines of a pool are, written as Docker users write it.

An engine is named by a URL or a Docker context name:

- ``unix:///run/docker.sock``: a local socket;
- ``tcp://HOST:PORT`` (or ``https://``): TLS the way the Docker CLI does it
  when there is TLS material: the engine's ``tls-dir`` (a
  ``DOCKER_CERT_PATH``-style directory with ``ca.pem``, ``cert.pem`` and
  ``key.pem``) or its ``ca``/``cert``/``key`` paths, else
  ``DOCKER_CERT_PATH`` (with ``DOCKER_TLS_VERIFY``); plain TCP otherwise;
- ``ssh://[USER@]HOST[:PORT]``: the engine's own socket over SSH (keys and
  known hosts from ``~/.ssh``, as ``ssh`` uses them);
- a context name from ``~/.docker/contexts`` (``docker context create``):
  its endpoint and TLS files; ``default`` is ``DOCKER_HOST`` or the local
  socket.

``mzbuild-async.toml`` may list them::

    [[engine]]
    url = "tcp://build-2.internal:2376"
    name = "build-2"          # default: from the URL
    slots = 8                 # builds at once (default: its CPU count)
    platform = "linux/amd64"  # default: what its /info says
    tls-dir = "certs/build-2" # ca.pem, cert.pem, key.pem (or ca/cert/key)
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import UsageError
from ..support.documents import parse_json

#: The engine a Docker client reaches without DOCKER_HOST.
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
_SCHEMES = ("unix", "tcp", "https", "http", "ssh")
#: The keys of an ``[[engine]]`` table, and what each means (the reference in docs/).
ENGINE_KEYS = {
    "url": "the engine: ``unix://``, ``tcp://``/``https://``, ``ssh://``, or a Docker context"
    " name (required)",
    "name": "its name in output and reports (default: from the URL)",
    "slots": "builds at once on it (default: its CPU count; ``--jobs`` overrides it)",
    "platform": "what it builds, as ``linux/amd64`` (default: what its ``/info`` says)",
    "tls-dir": "a ``DOCKER_CERT_PATH``-style directory: ``ca.pem``, ``cert.pem``, ``key.pem``",
    "ca": "the CA that signed the engine's certificate (instead of ``tls-dir``)",
    "cert": "the client certificate (instead of ``tls-dir``)",
    "key": "the client certificate's key (instead of ``tls-dir``)",
    "tls-verify": "check the engine's certificate (default: true)",
}
_PLATFORM = re.compile(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$")


@dataclass(frozen=True)
class EngineConfig:
    """One engine as configured (a flag or an ``[[engine]]`` table)."""

    url: str
    name: str = ""
    slots: int | None = None
    platform: str | None = None
    tls_dir: Path | None = None
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    tls_verify: bool = True
    #: Where it was configured, for messages.
    origin: str = "--engine"


@dataclass(frozen=True)
class Endpoint:
    """How to reach one engine: a URL aiodocker understands and its TLS files."""

    name: str
    url: str
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    tls_verify: bool = True
    slots: int | None = None
    platform: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the engine is reached over TLS."""
        return self.url.startswith("https://")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The client TLS context, as the Docker CLI makes it (None: no TLS)."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ca) if self.ca else None)
            if self.cert and self.key:
                context.load_cert_chain(str(self.cert), str(self.key))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"engine {self.name}: cannot use its TLS files: {exc}") from None
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def parse_engine_flag(text: str) -> EngineConfig:
    """``--engine URL|CONTEXT`` (checked when resolved)."""
    if not text.strip():
        raise UsageError("--engine needs a URL (unix://, tcp://, ssh://) or a Docker context name")
    return EngineConfig(url=text.strip())


def engine_tables(tables: object, base: Path, where: str) -> list[EngineConfig]:
    """The ``[[engine]]`` tables of ``mzbuild-async.toml``, checked (paths from ``base``)."""
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{where}: engine must be an array of tables: [[engine]]")
    configs: list[EngineConfig] = []
    for i, table in enumerate(tables, 1):
        label = f"{where}: engine #{i}"
        unknown = set(table) - set(ENGINE_KEYS)
        if unknown:
            raise UsageError(f"{label}: unknown setting {sorted(unknown)[0]!r}")
        url = table.get("url")
        if not isinstance(url, str) or not url.strip():
            raise UsageError(f"{label}: url must be a URL or a Docker context name")
        name = table.get("name", "")
        if not isinstance(name, str):
            raise UsageError(f"{label}: name must be a string")
        slots = table.get("slots")
        if slots is not None and (
            isinstance(slots, bool) or not isinstance(slots, int) or slots < 1
        ):
            raise UsageError(f"{label}: slots must be a positive integer, got {slots!r}")
        platform = table.get("platform")
        if platform is not None and (
            not isinstance(platform, str) or not _PLATFORM.match(platform)
        ):
            raise UsageError(f"{label}: platform must look like linux/amd64, got {platform!r}")
        verify = table.get("tls-verify", True)
        if not isinstance(verify, bool):
            raise UsageError(f"{label}: tls-verify must be true or false")
        paths = _table_paths(table, base, label)
        configs.append(
            EngineConfig(
                url=url.strip(),
                name=name,
                slots=slots,
                platform=platform,
                tls_dir=paths.get("tls-dir"),
                ca=paths.get("ca"),
                cert=paths.get("cert"),
                key=paths.get("key"),
                tls_verify=verify,
                origin=label,
            )
        )
    return configs


def _table_paths(table: Mapping[str, Any], base: Path, label: str) -> dict[str, Path]:
    """The TLS paths of one ``[[engine]]`` table, checked to exist."""
    paths: dict[str, Path] = {}
    for key in ("tls-dir", "ca", "cert", "key"):
        value = table.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise UsageError(f"{label}: {key} must be a path, got {value!r}")
        path = base / value
        if not (path.is_dir() if key == "tls-dir" else path.is_file()):
            raise UsageError(f"{label}: {key} {path}: not found")
        paths[key] = path
    if ("cert" in paths) != ("key" in paths):
        raise UsageError(f"{label}: cert and key go together; set both")
    return paths


def resolve_engines(
    configs: Sequence[EngineConfig], environ: Mapping[str, str], home: Path | None = None
) -> list[Endpoint]:
    """Endpoints for the configured engines, each with a unique name."""
    home = home or Path(environ.get("HOME") or Path.home())
    endpoints = [_resolve(config, environ, home) for config in configs]
    seen: dict[str, int] = {}
    unique: list[Endpoint] = []
    for endpoint in endpoints:
        count = seen[endpoint.name] = seen.get(endpoint.name, 0) + 1
        name = endpoint.name if count == 1 else f"{endpoint.name}-{count}"
        unique.append(replace(endpoint, name=name))
    urls = [e.url for e in unique]
    for url in urls:
        if urls.count(url) > 1:
            raise UsageError(f"engine {url} is listed twice; list each engine once")
    return unique


def _resolve(config: EngineConfig, environ: Mapping[str, str], home: Path) -> Endpoint:
    url = config.url
    if "://" not in url:
        return _from_context(config, environ, home)
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise UsageError(
            f"{config.origin}: engine {url}: unknown scheme {parts.scheme!r};"
            " use unix://, tcp://, ssh:// or a Docker context name"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise UsageError(f"{config.origin}: engine {url}: give the socket path (unix:///...)")
        name = Path(parts.path).name.removesuffix(".sock") or parts.path
        return Endpoint(config.name or name, url, slots=config.slots, platform=config.platform)
    if not parts.hostname:
        raise UsageError(f"{config.origin}: engine {url}: the URL names no host")
    try:
        port = parts.port
    except ValueError:
        raise UsageError(f"{config.origin}: engine {url}: bad port") from None
    if parts.scheme == "ssh":
        name = config.name or (parts.hostname + (f":{port}" if port else ""))
        return Endpoint(name, url, slots=config.slots, platform=config.platform)
    address = f"{parts.hostname}:{port or (2376 if parts.scheme == 'https' else 2375)}"
    if ":" in parts.hostname:
        address = f"[{parts.hostname}]:{port or 2376}"
    ca, cert, key, verify = _tls_files(config, environ, home)
    tls = parts.scheme == "https" or ca is not None or cert is not None or not verify
    return Endpoint(
        config.name or address,
        f"{'https' if tls else 'http'}://{address}",
        ca,
        cert,
        key,
        verify,
        config.slots,
        config.platform,
    )


def _tls_files(
    config: EngineConfig, environ: Mapping[str, str], home: Path
) -> tuple[Path | None, Path | None, Path | None, bool]:
    """CA, client certificate, key and whether to verify, for a tcp:// engine."""
    directory = config.tls_dir
    if directory is None and config.ca is None and config.cert is None:
        cert_path = environ.get("DOCKER_CERT_PATH")
        if cert_path or environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0"):
            directory = Path(cert_path) if cert_path else home / ".docker"
    ca, cert, key = config.ca, config.cert, config.key
    if directory is not None:
        ca = ca or _present(directory / "ca.pem")
        cert = cert or _present(directory / "cert.pem")
        key = key or _present(directory / "key.pem")
        if ca is None and cert is None:
            raise UsageError(
                f"{config.origin}: engine {config.url}: {directory} holds no ca.pem or cert.pem"
            )
    return ca, cert, key, config.tls_verify


def _present(path: Path) -> Path | None:
    return path if path.is_file() else None


def _from_context(config: EngineConfig, environ: Mapping[str, str], home: Path) -> Endpoint:
    """The endpoint of a Docker context (``docker context create NAME ...``)."""
    name = config.url
    if name == "default":
        url = environ.get("DOCKER_HOST") or DEFAULT_SOCKET
        return _resolve(replace(config, url=url, name=config.name or "default"), environ, home)
    digest = hashlib.sha256(name.encode()).hexdigest()
    contexts = Path(environ.get("DOCKER_CONFIG") or home / ".docker") / "contexts"
    meta = contexts / "meta" / digest / "meta.json"
    try:
        data: Any = parse_json(meta.read_bytes())
        endpoint = data["Endpoints"]["docker"]
        host = str(endpoint["Host"])
    except FileNotFoundError:
        raise UsageError(
            f"{config.origin}: engine {name!r} is not a URL (unix://, tcp://, ssh://) nor a"
            f" Docker context (no {meta})"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"Docker context {name}: cannot read {meta}: {exc}") from None
    tls = contexts / "tls" / digest / "docker"
    resolved = replace(
        config,
        url=host,
        name=config.name or name,
        tls_dir=config.tls_dir or (tls if tls.is_dir() else None),
        tls_verify=config.tls_verify and not endpoint.get("SkipTLSVerify", False),
    )
    if "://" not in host:
        raise UsageError(f"Docker context {name}: its Host {host!r} is not a URL")
    return _resolve(resolved, environ, home)


def _config_dir(environ: Mapping[str, str], home: Path) -> Path:
    return Path(environ.get("DOCKER_CONFIG") or home / ".docker")


def current_context(environ: Mapping[str, str], home: Path | None = None) -> str:
    """The ``currentContext`` of the Docker CLI's ``config.json`` ("" when none: no
    file, no key, or a file that is not JSON)."""
    home = home or Path(environ.get("HOME") or Path.home())
    try:
        config: Any = parse_json((_config_dir(environ, home) / "config.json").read_bytes())
    except (OSError, ValueError):
        return ""
    name = config.get("currentContext") if isinstance(config, dict) else None
    return name if isinstance(name, str) else ""


def local_endpoint(environ: Mapping[str, str], home: Path | None = None) -> Endpoint:
    """The engine the Docker CLI talks to without ``--host``/``--context``, in its
    order: ``DOCKER_HOST``, else ``DOCKER_CONTEXT``, else ``config.json``'s
    ``currentContext`` (``docker context use``), else the local socket. Contexts
    are read from ``$DOCKER_CONFIG`` (default ``~/.docker``); one that does not
    exist is one line naming it."""
    home = home or Path(environ.get("HOME") or Path.home())
    host = environ.get("DOCKER_HOST")
    if host:
        return _resolve(EngineConfig(host, name="local", origin="DOCKER_HOST"), environ, home)
    context, origin = environ.get("DOCKER_CONTEXT", ""), "DOCKER_CONTEXT"
    if not context:
        context = current_context(environ, home)
        origin = f"{_config_dir(environ, home) / 'config.json'} (currentContext)"
    if context and context != "default":
        meta = _config_dir(environ, home) / "contexts" / "meta"
        if not (meta / hashlib.sha256(context.encode()).hexdigest() / "meta.json").is_file():
            raise UsageError(
                f"{origin}: no Docker context {context!r} in {meta.parent}; `docker context ls`"
                " lists them (DOCKER_CONFIG says where they are)"
            )
        return _from_context(EngineConfig(context, origin=origin), environ, home)
    return _resolve(EngineConfig(DEFAULT_SOCKET, name="local"), environ, home)


def docker_platform(info: Mapping[str, Any]) -> str:
    """``os/arch`` of an engine from its ``/info`` (Docker's and Go's architecture names)."""
    arch = str(info.get("Architecture", "")).lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm/v7"}.get(arch, arch)
    return f"{str(info.get('OSType', 'linux')).lower() or 'linux'}/{arch or 'unknown'}"


def cpu_count(info: Mapping[str, Any]) -> int:
    """The engine's CPU count from its ``/info`` (at least 1)."""
    value = info.get("NCPU")
    return value if isinstance(value, int) and value > 0 else 1
