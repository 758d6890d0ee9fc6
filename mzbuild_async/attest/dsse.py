"""DSSE envelopes: a payload, its type, and signatures over both (the in-toto way).

The signature is over the pre-authentication encoding (PAE) of the payload
type and the payload, so neither can be swapped. Keys are PEM files: ECDSA
P-256 (signatures DER, SHA-256) or Ed25519. A key's id is the SHA-256 of
its public key (DER, SubjectPublicKeyInfo), so a verifier can tell which
key a signature claims without trusting the claim.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ..errors import UsageError
from ..support.documents import parse_json

#: The media type of an envelope as a blob.
ENVELOPE_TYPE = "application/vnd.dsse.envelope.v1+json"
#: The payload type of an in-toto statement.
IN_TOTO_TYPE = "application/vnd.in-toto+json"

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def pae(payload_type: str, payload: bytes) -> bytes:
    """The pre-authentication encoding DSSE signs: ``DSSEv1 len type len payload``."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


class Signer(Protocol):
    """Something that signs bytes: a key here, or a keyless signer (sigstore)."""

    @property
    def keyid(self) -> str:
        """Which key signs (the SHA-256 of its public key, for a key)."""
        ...

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data``."""
        ...


def key_id(public: PublicKey) -> str:
    """``sha256:`` of the public key's DER SubjectPublicKeyInfo."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"sha256:{hashlib.sha256(der).hexdigest()}"


@dataclass(frozen=True)
class KeySigner:
    """A private key from a PEM file (ECDSA P-256 or Ed25519)."""

    private: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

    @classmethod
    def load(cls, path: str | Path) -> KeySigner:
        """The key in ``path`` (one line naming the file when it is not one we sign with)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"--sign-key {path}: cannot read it ({exc.strerror or exc})") from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"--sign-key {path}: not an unencrypted PEM private key ({exc})"
            ) from None
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return cls(key)
        if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
            return cls(key)
        raise UsageError(f"--sign-key {path}: an ECDSA P-256 or Ed25519 key is needed")

    @classmethod
    def generate(cls, kind: str = "ecdsa") -> KeySigner:
        """A new key: ``ecdsa`` (P-256, what cosign and most verifiers take) or ``ed25519``."""
        if kind == "ed25519":
            return cls(ed25519.Ed25519PrivateKey.generate())
        if kind == "ecdsa":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        raise UsageError(f"keygen --type {kind}: use ecdsa or ed25519")

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (what ``--sign-key`` reads)."""
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def public(self) -> PublicKey:
        """The public half."""
        return self.private.public_key()

    @property
    def keyid(self) -> str:
        """The SHA-256 of the public key."""
        return key_id(self.public)

    def public_pem(self) -> str:
        """The public key as PEM (what ``verify --key`` takes)."""
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def sign(self, data: bytes) -> bytes:
        """The signature of ``data``."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(data)
        return self.private.sign(data, ec.ECDSA(hashes.SHA256()))


def load_public_key(path: str | Path) -> PublicKey:
    """A PEM public key (one line naming the file when it is not one we verify with)."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except OSError as exc:
        raise UsageError(f"--key {path}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--key {path}: not a PEM public key ({exc})") from None
    if isinstance(key, ed25519.Ed25519PublicKey) or (
        isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ):
        return key
    raise UsageError(f"--key {path}: an ECDSA P-256 or Ed25519 public key is needed")


def envelope(payload: bytes, payload_type: str, signers: Sequence[Signer]) -> dict[str, Any]:
    """The DSSE envelope of ``payload`` signed by each of ``signers``."""
    message = pae(payload_type, payload)
    return {
        "payloadType": payload_type,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {"keyid": s.keyid, "sig": base64.b64encode(s.sign(message)).decode()} for s in signers
        ],
    }


class BadEnvelope(Exception):
    """An envelope that is malformed or whose signature does not verify (says why)."""


def open_envelope(document: Mapping[str, Any], keys: Sequence[PublicKey]) -> tuple[str, bytes]:
    """The payload type and payload of an envelope at least one of ``keys`` signed;
    :class:`BadEnvelope` otherwise."""
    try:
        payload_type = document["payloadType"]
        payload = base64.b64decode(document["payload"], validate=True)
        signatures = document["signatures"]
        if not isinstance(payload_type, str) or not isinstance(signatures, list):
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise BadEnvelope("not a DSSE envelope") from None
    message = pae(payload_type, payload)
    for signature in signatures:
        try:
            raw = base64.b64decode(signature["sig"], validate=True)
        except (KeyError, TypeError, ValueError):
            continue
        for key in keys:
            if _verifies(key, raw, message):
                return payload_type, payload
    raise BadEnvelope("no signature by the given key verifies")


def _verifies(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def statement_of(payload_type: str, payload: bytes) -> dict[str, Any]:
    """An in-toto statement from an opened envelope (:class:`BadEnvelope` if it is not one)."""
    if payload_type != IN_TOTO_TYPE:
        raise BadEnvelope(f"payload type {payload_type!r}, not an in-toto statement")
    try:
        statement = parse_json(payload)
    except ValueError as exc:
        raise BadEnvelope(f"payload is not a JSON document we read ({exc})") from None
    if not isinstance(statement, dict):
        raise BadEnvelope("payload is not a JSON object")
    return statement
