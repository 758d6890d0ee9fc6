"""TLS for registries, set up as Docker users set it up.

Per registry host (``HOST`` or ``HOST:PORT``), as the Docker engine reads
them: ``/etc/docker/certs.d/HOST/`` (``$MZBUILD_ASYNC_CERTS_D`` moves the
root) holds CA certificates (``*.crt``) and client certificates
(``NAME.cert`` with ``NAME.key``). ``mzbuild-async.toml`` adds ``ca``,
``client-cert`` and ``client-key`` per host. Both add to the default trust
(``SSL_CERT_FILE``, or the bundled CA list) rather than replace it.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

#: Where Docker keeps per-registry certificates.
DEFAULT_CERTS_D = "/etc/docker/certs.d"


class TlsSetupError(Exception):
    """Certificates for a host that cannot be used (the message names the file)."""


@dataclass(frozen=True)
class TlsFiles:
    """Certificate files for one host."""

    cas: tuple[Path, ...] = ()
    client_cert: Path | None = None
    client_key: Path | None = None

    def __or__(self, other: TlsFiles) -> TlsFiles:
        """These files with ``other``'s added (its client certificate wins)."""
        return TlsFiles(
            (*self.cas, *other.cas),
            other.client_cert or self.client_cert,
            other.client_key or self.client_key,
        )

    @property
    def empty(self) -> bool:
        """Whether there is nothing beyond the default trust."""
        return not self.cas and self.client_cert is None


def certs_d_root(environ: Mapping[str, str]) -> Path:
    """The ``certs.d`` directory: ``$MZBUILD_ASYNC_CERTS_D`` or Docker's."""
    return Path(environ.get("MZBUILD_ASYNC_CERTS_D") or DEFAULT_CERTS_D)


def certs_d_files(root: Path, host: str) -> TlsFiles:
    """The files of ``root/host`` as the Docker engine reads them (none if it is absent)."""
    directory = root / host
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return TlsFiles()
    except OSError as exc:
        raise TlsSetupError(f"{directory}: cannot read ({exc.strerror})") from None
    cas = tuple(directory / n for n in names if n.endswith(".crt"))
    certs = [n for n in names if n.endswith(".cert")]
    keys = [n for n in names if n.endswith(".key")]
    for key in keys:
        if key[: -len(".key")] + ".cert" not in certs:
            raise TlsSetupError(
                f"{directory / key}: a client key without its certificate"
                f" {key[: -len('.key')]}.cert; add it or remove the key"
            )
    for cert in certs:
        if cert[: -len(".cert")] + ".key" not in keys:
            raise TlsSetupError(
                f"{directory / cert}: a client certificate without its key"
                f" {cert[: -len('.cert')]}.key; add it or remove the certificate"
            )
    if not certs:
        return TlsFiles(cas)
    # Docker tries each pair; one client identity per registry is what is used in practice.
    pair = directory / certs[0]
    return TlsFiles(cas, pair, pair.with_suffix(".key"))


def ssl_context(host: str, files: TlsFiles, *, verify: bool = True) -> ssl.SSLContext:
    """A client context for ``host``: the default trust plus ``files``."""
    context = httpx.create_ssl_context(verify=verify)
    for ca in files.cas:
        try:
            context.load_verify_locations(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"{ca}: not a usable CA certificate for {host} ({_reason(exc)}); fix or remove it"
            ) from None
    if files.client_cert is not None:
        try:
            context.load_cert_chain(files.client_cert, files.client_key)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"{files.client_cert}: not a usable client certificate and key for {host}"
                f" ({_reason(exc)}); fix or remove them"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # set by OpenSSL, absent on hand-made errors
    if isinstance(exc, ssl.SSLError) and reason:
        return str(reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


_DEFAULT_CONTEXT: list[ssl.SSLContext] = []
_DEFAULT_LOCK = threading.Lock()


def default_context() -> ssl.SSLContext:
    """httpx's default context (the system's and certifi's CAs), made once per process.

    Each client made with ``verify=True`` would load the CA bundle again (~50 ms
    here); every client shares this one instead. Loading releases the GIL, so
    :meth:`RegistryClient.warm_up` makes it in a worker thread while the
    fingerprints compute.
    """
    with _DEFAULT_LOCK:
        if not _DEFAULT_CONTEXT:
            _DEFAULT_CONTEXT.append(httpx.create_ssl_context())
        return _DEFAULT_CONTEXT[0]


@dataclass
class TlsSettings:
    """Where each host's certificates come from; contexts made once per host."""

    certs_d: Path | None = None
    #: Files configured per host in ``mzbuild-async.toml``.
    configured: Mapping[str, TlsFiles] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._contexts: dict[tuple[str, bool], ssl.SSLContext] = {}

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], configured: Mapping[str, TlsFiles] | None = None
    ) -> TlsSettings:
        """Docker's ``certs.d`` (or ``$MZBUILD_ASYNC_CERTS_D``) and configured files."""
        return cls(certs_d_root(environ), dict(configured or {}))

    def files(self, host: str) -> TlsFiles:
        """Every certificate file that applies to ``host``."""
        found = certs_d_files(self.certs_d, host) if self.certs_d is not None else TlsFiles()
        return found | self.configured.get(host, TlsFiles())

    def verify(self, host: str, *, insecure: bool = False) -> ssl.SSLContext:
        """What httpx's ``verify`` should be for ``host`` (raises :class:`TlsSetupError`)."""
        key = (host, insecure)
        known = self._contexts.get(key)
        if known is None:
            files = self.files(host)
            if files.empty and not insecure:
                known = default_context()
            else:
                known = ssl_context(host, files, verify=not insecure)
            self._contexts[key] = known
        return known


def describe_failure(host: str, error: ssl.SSLError, certs_d: Path | None = None) -> str:
    """One line for a TLS failure with ``host``: what, and what to do."""
    directory = certs_d or Path(DEFAULT_CERTS_D)
    if isinstance(error, ssl.SSLCertVerificationError):
        problem = error.verify_message or _reason(error)
        return (
            f"{host}: TLS certificate not trusted ({problem}); put the registry's CA in"
            f' {directory / host / "ca.crt"} or set ca in [registry."{host}"] of'
            " mzbuild-async.toml (or mark the host insecure)"
        )
    reason = _reason(error)
    if "certificate required" in reason or "bad certificate" in reason:
        return (
            f"{host}: the registry refused our TLS client certificate ({reason}); put"
            f" client.cert and client.key in {directory / host}/ or set client-cert"
            f' and client-key in [registry."{host}"] of mzbuild-async.toml'
        )
    return f"{host}: TLS handshake failed ({reason}); check the registry's TLS set-up"


def speaks_plain_http(error: ssl.SSLError) -> bool:
    """Whether a handshake failed because the server answered in plain HTTP."""
    reason = _reason(error)
    return any(sign in reason for sign in ("wrong version number", "http request", "record layer"))
