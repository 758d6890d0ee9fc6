"""DSSE envelopes: signed with ECDSA P-256 and Ed25519 keys, checked with cryptography alone."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mzbuild_async.attest.dsse import (
    IN_TOTO_TYPE,
    BadEnvelope,
    KeySigner,
    envelope,
    load_public_key,
    open_envelope,
    pae,
)
from mzbuild_async.errors import UsageError


def _write_key(path: Path, key: object) -> Path:
    pem = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return path


@pytest.fixture(params=["ecdsa", "ed25519"])
def signer(request: pytest.FixtureRequest, tmp_path: Path) -> KeySigner:
    key = ec.generate_private_key(ec.SECP256R1()) if request.param == "ecdsa" else (
        ed25519.Ed25519PrivateKey.generate()
    )  # fmt: skip
    return KeySigner.load(_write_key(tmp_path / "key.pem", key))


def test_pae_is_the_specs() -> None:
    # The example of the DSSE specification (protocol.md).
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_an_envelope_verifies_with_cryptography_alone(signer: KeySigner) -> None:
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1"}).encode()
    document = envelope(payload, IN_TOTO_TYPE, [signer])
    (signature,) = document["signatures"]
    assert signature["keyid"] == signer.keyid
    message = b"DSSEv1 %d %s %d %s" % (
        len(IN_TOTO_TYPE),
        IN_TOTO_TYPE.encode(),
        len(payload),
        payload,
    )
    raw = base64.b64decode(signature["sig"])
    public = signer.public
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(raw, message)  # raises if it does not verify
    else:
        public.verify(raw, message, ec.ECDSA(hashes.SHA256()))
    assert open_envelope(document, [public]) == (IN_TOTO_TYPE, payload)


def test_a_flipped_byte_or_another_key_fails(signer: KeySigner, tmp_path: Path) -> None:
    payload = b'{"a": 1}'
    document = envelope(payload, IN_TOTO_TYPE, [signer])
    tampered = dict(document, payload=base64.b64encode(b'{"a": 2}').decode())
    with pytest.raises(BadEnvelope, match="no signature"):
        open_envelope(tampered, [signer.public])
    retyped = dict(document, payloadType="text/plain")
    with pytest.raises(BadEnvelope):
        open_envelope(retyped, [signer.public])
    other = KeySigner.load(_write_key(tmp_path / "other.pem", ed25519.Ed25519PrivateKey.generate()))
    with pytest.raises(BadEnvelope):
        open_envelope(document, [other.public])
    with pytest.raises(BadEnvelope, match="not a DSSE envelope"):
        open_envelope({"payload": "***"}, [signer.public])


def test_the_public_key_round_trips(signer: KeySigner, tmp_path: Path) -> None:
    (tmp_path / "pub.pem").write_text(signer.public_pem())
    public = load_public_key(tmp_path / "pub.pem")
    document = envelope(b"x", IN_TOTO_TYPE, [signer])
    assert open_envelope(document, [public])[1] == b"x"


def test_keys_we_do_not_sign_with_are_one_line(tmp_path: Path) -> None:
    rsa_key = _write_key(tmp_path / "rsa.pem", rsa.generate_private_key(65537, 2048))
    with pytest.raises(UsageError, match="ECDSA P-256 or Ed25519"):
        KeySigner.load(rsa_key)
    p384 = _write_key(tmp_path / "p384.pem", ec.generate_private_key(ec.SECP384R1()))
    with pytest.raises(UsageError, match="ECDSA P-256 or Ed25519"):
        KeySigner.load(p384)
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(UsageError, match="not an unencrypted PEM private key"):
        KeySigner.load(tmp_path / "junk.pem")
    with pytest.raises(UsageError, match="cannot read it"):
        KeySigner.load(tmp_path / "missing.pem")
