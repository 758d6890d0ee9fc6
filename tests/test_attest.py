"""ensure --attest --sign-key: signed provenance attached to every published image,
read back and checked without our code (skopeo, httpx, cryptography, the schemas)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.demo import Cli
from tests.support.skopeo import digest_of, raw_manifest
from tests.test_statement import validate

pytestmark = [pytest.mark.slow, pytest.mark.real]
NAMES = ("demo-base", "demo-lib")


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "sign.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path, private


def _statement_of(spec: str) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """The attached envelope of ``spec``'s image (through the fallback tag, by hand)."""
    repository = spec.rsplit(":", 1)[0]
    digest = digest_of(spec)
    assert digest is not None
    index = json.loads(raw_manifest(f"{repository}:{digest.replace(':', '-')}"))
    (entry,) = index["manifests"]
    artifact = json.loads(raw_manifest(f"{repository}@{entry['digest']}"))
    assert artifact["subject"]["digest"] == digest
    host, _, path = repository.partition("/")
    layer = artifact["layers"][0]["digest"]
    envelope = httpx.get(f"http://{host}/v2/{path}/blobs/{layer}", timeout=10).json()
    payload = base64.b64decode(envelope["payload"])
    return json.loads(payload), payload, envelope


def test_ensure_attests_and_signs_every_image_it_publishes(
    demo_cli: Cli, key: tuple[Path, ec.EllipticCurvePrivateKey]
) -> None:
    cli = demo_cli
    path, private = key
    result = cli.run("ensure", *NAMES, "--sign-key", str(path), "--json")
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    for name in NAMES:
        assert images[name]["attestation"]["provenance"] == "attached", images[name]
        statement, payload, envelope = _statement_of(images[name]["spec"])
        validate(statement)
        assert statement["subject"][0]["digest"]["sha256"] == images[name]["digest"][7:]
        # The signature, checked with cryptography alone over DSSE's PAE.
        kind = envelope["payloadType"].encode()
        message = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
        (signature,) = envelope["signatures"]
        private.public_key().verify(
            base64.b64decode(signature["sig"]), message, ec.ECDSA(hashes.SHA256())
        )
    lib, _, _ = _statement_of(images["demo-lib"]["spec"])
    deps = lib["predicate"]["buildDefinition"]["resolvedDependencies"]
    lib_txt = next(d for d in deps if d.get("name") == "images/lib/lib.txt")
    content = (cli.repo / "images" / "lib" / "lib.txt").read_bytes()
    assert lib_txt["digest"] == {"sha1": hashlib.sha1(content).hexdigest()}
    parent = next(d for d in deps if d.get("name") == "demo-base")
    assert parent["digest"] == {"sha256": images["demo-base"]["digest"][7:]}

    # Found images that already have one are left alone.
    again = cli.run("ensure", *NAMES, "--attest", "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["images"]
    assert {second[n]["attestation"]["provenance"] for n in NAMES} == {"present"}


def test_a_bad_key_is_one_line_before_any_work(demo_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("junk")
    result = demo_cli.run("ensure", "demo-base", "--sign-key", str(tmp_path / "junk.pem"))
    assert result.returncode == 2
    assert "--sign-key" in result.stderr
    assert "not an unencrypted PEM private key" in result.stderr
    assert "Traceback" not in result.stderr
    assert "build start" not in result.stderr
