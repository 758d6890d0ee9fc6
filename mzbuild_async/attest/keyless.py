"""Keyless signing through sigstore: an ephemeral key certified for the CI's OIDC identity.

Where the CI gives the job an OIDC token (``SIGSTORE_ID_TOKEN``), ``--keyless``
signs each statement with sigstore: Fulcio certifies a one-time key for the
token's identity, Rekor logs the signature, and the result is a sigstore
bundle (the DSSE envelope, the certificate, the log entry), attached as the
artifact's layer. ``sigstore`` is an optional extra (``mzbuild-async[sigstore]``),
imported only here; :class:`BundleSigner` is the seam (tests inject one:
nothing here reaches Fulcio or Rekor).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from ..errors import UsageError

#: The media type of a sigstore bundle (v0.3) as a blob.
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
TOKEN_VARIABLE = "SIGSTORE_ID_TOKEN"


class BundleSigner(Protocol):
    """Signs an in-toto statement into a sigstore bundle."""

    @property
    def identity(self) -> str:
        """Who signs (the OIDC identity the certificate is for)."""
        ...

    def sign_statement(self, statement: bytes) -> str:
        """The bundle (JSON) of ``statement`` signed."""
        ...


@dataclass(frozen=True)
class SigstoreSigner:
    """The sigstore public-good instance, with the job's OIDC token."""

    token: str

    @property
    def identity(self) -> str:
        """The token's identity (its ``sub``, as sigstore reads it)."""
        from sigstore.oidc import IdentityToken

        return str(IdentityToken(self.token).identity)

    def sign_statement(self, statement: bytes) -> str:
        """Sign with an ephemeral key Fulcio certifies; the bundle Rekor logged."""
        from sigstore import dsse
        from sigstore.models import ClientTrustConfig
        from sigstore.oidc import IdentityToken
        from sigstore.sign import SigningContext

        context = SigningContext.from_trust_config(ClientTrustConfig.production())
        with context.signer(IdentityToken(self.token)) as signer:
            return str(signer.sign_dsse(dsse.Statement(statement)).to_json())


def keyless_signer(environ: Mapping[str, str]) -> SigstoreSigner:
    """The keyless signer of this job (one line when it cannot be one)."""
    token = environ.get(TOKEN_VARIABLE, "")
    if not token:
        raise UsageError(f"--keyless: no OIDC token; the CI must provide one in {TOKEN_VARIABLE}")
    try:
        import sigstore  # noqa: F401
    except ImportError:
        raise UsageError(
            "--keyless needs sigstore: pip install 'mzbuild-async[sigstore]'"
        ) from None
    return SigstoreSigner(token)
