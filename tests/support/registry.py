"""A real registry for tests: Debian's docker-registry on a free loopback port.

Three set-ups: no auth, htpasswd Basic auth, and token auth with a small
token issuer of ours that signs RS256 JWTs for the registry's cert bundle.
Manifests are pushed straight over the registry API (no Docker engine).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from tests.support.tls import TlsMaterial

USER, PASSWORD = "ci-user", "s3cret-Passw0rd"
SERVICE = "mzbuild-test-registry"
ISSUER = "mzbuild-test-issuer"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require(program: str) -> str:
    """The path of ``program``; fails under CI=true, skips elsewhere, when it is missing."""
    path = shutil.which(program)
    if path is None:
        message = f"{program} is not installed; run scripts/setup-system"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _libtrust_key_id(der: bytes) -> str:
    # docker/libtrust's key ID: base32 of the first 30 bytes of SHA-256 of the
    # DER public key, in colon-separated groups of four characters.
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenIssuer:
    """Issues RS256 JWTs that the registry trusts; counts its requests."""

    def __init__(self, directory: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(self.key, hashes.SHA256())
        )
        self.bundle = directory / "bundle.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.kid = _libtrust_key_id(der)
        self.requests = 0
        self.scopes_seen: list[list[str]] = []
        self.expires_in: int | None = 300
        self.require_credentials = False
        self.garbage: bytes | None = None
        self._lock = threading.Lock()

    def sign(self, scopes: list[str]) -> str:
        """A token granting the pull ``scopes``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            repo, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": repo, "actions": actions.split(",")})
        header = {"typ": "JWT", "alg": "RS256", "kid": self.kid}
        claims = {
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + 600,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64(signature)}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        """Answer one token request."""
        with self._lock:
            self.requests += 1
        query = parse_qs(urlparse(handler.path).query)
        scopes = query.get("scope", [])
        self.scopes_seen.append(scopes)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if self.require_credentials and handler.headers.get("Authorization") != expected:
            handler.send_response(401)
            handler.end_headers()
            return
        if self.garbage is not None:
            body = self.garbage
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
        else:
            data: dict[str, object] = {"token": self.sign(scopes)}
            if self.expires_in is not None:
                data["expires_in"] = self.expires_in
            body = json.dumps(data).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


@dataclass
class Registry:
    """A running registry: where it is, how to push to it, its token issuer."""

    host: str
    auth: str
    issuer: TokenIssuer | None = None
    process: subprocess.Popen[bytes] | None = None
    pushed: list[str] = field(default_factory=list)
    #: The test PKI when the registry speaks TLS (with ``client_auth``: mutual TLS).
    tls: TlsMaterial | None = None
    client_auth: bool = False

    @property
    def url(self) -> str:
        """The registry's base URL."""
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def _tls_options(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        import ssl

        context = ssl.create_default_context(cafile=self.tls.ca)
        if self.client_auth:
            context.load_cert_chain(self.tls.client_cert, self.tls.client_key)
        return {"verify": context}

    def _client(self, repo: str) -> httpx.Client:
        headers: dict[str, str] = {}
        if self.auth == "htpasswd":
            basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        elif self.auth == "token":
            assert self.issuer is not None
            token = self.issuer.sign([f"repository:{repo}:pull,push,delete"])
            headers["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **self._tls_options())

    def push(
        self, repo: str, tag: str, *, architecture: str = "amd64", created: str | None = None
    ) -> str:
        """Push a minimal image manifest at ``repo:tag`` (its config dated ``created``
        when given); returns its digest."""
        fields: dict[str, Any] = {
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        }
        if created is not None:
            fields["created"] = created
        config = json.dumps(fields).encode()
        digest = "sha256:" + hashlib.sha256(config).hexdigest()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest,
                    "size": len(config),
                },
                "layers": [],
            }
        ).encode()
        with self._client(repo) as client:
            # Threads pushing the same config blob at once race in the registry's store
            # (one's commit can hide the blob from another's manifest check: 400
            # BLOB_UNKNOWN); the blob goes up again and the manifest is tried again.
            for attempt in range(3):
                if client.head(f"/v2/{repo}/blobs/{digest}").status_code != 200:
                    started = client.post(f"/v2/{repo}/blobs/uploads/")
                    started.raise_for_status()
                    location = httpx.URL(started.headers["location"])
                    client.put(location.copy_add_param("digest", digest), content=config)
                response = client.put(
                    f"/v2/{repo}/manifests/{tag}",
                    content=manifest,
                    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
                )
                if response.status_code != 400 or attempt == 2:
                    break
            response.raise_for_status()
        self.pushed.append(f"{repo}:{tag}")
        return response.headers["docker-content-digest"]

    def digest(self, repo: str, tag: str) -> str | None:
        """The manifest digest at ``repo:tag`` (None when the tag is not there)."""
        accept = (
            "application/vnd.docker.distribution.manifest.v2+json,"
            " application/vnd.oci.image.manifest.v1+json"
        )
        with self._client(repo) as client:
            response = client.head(f"/v2/{repo}/manifests/{tag}", headers={"Accept": accept})
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.headers["docker-content-digest"]

    def delete(self, repo: str, tag: str) -> None:
        """Delete the manifest at ``repo:tag`` (as a retention policy would)."""
        digest = self.digest(repo, tag)
        assert digest is not None, f"{repo}:{tag} is not there"
        with self._client(repo) as client:
            client.delete(f"/v2/{repo}/manifests/{digest}").raise_for_status()

    def push_many(
        self, count: int, present: int, *, host: str | None = None
    ) -> tuple[list[str], set[str]]:
        """``count`` specs in fresh repositories, the first ``present`` pushed (in threads).

        Specs name ``host`` (default: this registry; a proxy's host, say).
        Returns every spec and the set of those pushed.
        """
        run = uuid.uuid4().hex[:8]
        refs = [(f"r{run}/img{i}", f"mzbuild-{run.upper()}{i}") for i in range(count)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda ref: self.push(*ref), refs[:present]))
        prefix = host or self.host
        specs = [f"{prefix}/{repo}:{tag}" for repo, tag in refs]
        return specs, set(specs[:present])


class _IssuerHandler(BaseHTTPRequestHandler):
    issuer: TokenIssuer

    def do_GET(self) -> None:
        self.issuer.handle(self)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def run_registry(
    directory: Path,
    auth: str = "none",
    *,
    tls: TlsMaterial | None = None,
    client_auth: bool = False,
    stranger: bool = False,
    readonly: bool = False,
    deletion: bool = True,
) -> Iterator[Registry]:
    """Start docker-registry with ``auth`` (none, htpasswd, token) until the block ends.

    Its files are under ``directory`` (``config.yml``, the storage in ``data``);
    ``deletion=False`` makes it refuse ``DELETE`` as registries do by default.

    With ``tls`` it serves HTTPS (and HTTP/2) with the test PKI's server
    certificate (``stranger``: one from a CA nobody trusts), and with
    ``client_auth`` it wants a client certificate from that PKI.
    """
    program = require("docker-registry")
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = [
        "version: 0.1",
        "log:",
        "  level: error",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {directory / 'data'}",
        "  delete:",  # (tests delete tags, as a retention policy would)
        f"    enabled: {'true' if deletion else 'false'}",
        *(["  maintenance:", "    readonly:", "      enabled: true"] if readonly else []),
        "http:",
        f"  addr: 127.0.0.1:{port}",
    ]
    if tls is not None:
        cert, key = (
            (tls.stranger_cert, tls.stranger_key) if stranger else (tls.server_cert, tls.server_key)
        )
        config += ["  tls:", f"    certificate: {cert}", f"    key: {key}"]
        if client_auth:
            config += ["    clientcas:", f"      - {tls.ca}"]
    issuer = None
    server = None
    if auth == "htpasswd":
        import bcrypt

        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (directory / "htpasswd").write_text(f"{USER}:{hashed}\n")
        config += ["auth:", "  htpasswd:", "    realm: test", f"    path: {directory / 'htpasswd'}"]
    elif auth == "token":
        issuer = TokenIssuer(directory)
        handler = type("Handler", (_IssuerHandler,), {"issuer": issuer})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        realm = f"http://127.0.0.1:{server.server_address[1]}/token"
        config += [
            "auth:",
            "  token:",
            f"    realm: {realm}",
            f"    service: {SERVICE}",
            f"    issuer: {ISSUER}",
            f"    rootcertbundle: {issuer.bundle}",
        ]
    (directory / "config.yml").write_text("\n".join(config) + "\n")
    log = open(directory / "registry.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [program, "serve", str(directory / "config.yml")], stdout=log, stderr=log
    )
    registry = Registry(
        f"127.0.0.1:{port}", auth, issuer, process, tls=tls, client_auth=client_auth
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"docker-registry did not start: {(directory / 'registry.log').read_text()}"
                )
            time.sleep(0.05)
        yield registry
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        if server is not None:
            server.shutdown()
            server.server_close()
