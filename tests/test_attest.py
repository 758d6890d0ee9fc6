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
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.demo import Cli
from tests.support.registry import PASSWORD, USER
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


def _statement_of(
    spec: str, predicate: str = "https://slsa.dev/provenance/v1"
) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """The attached envelope of ``spec``'s image with ``predicate`` (through the fallback
    tag, by hand)."""
    repository = spec.rsplit(":", 1)[0]
    digest = digest_of(spec)
    assert digest is not None
    index = json.loads(raw_manifest(f"{repository}:{digest.replace(':', '-')}"))
    (entry,) = [
        m
        for m in index["manifests"]
        if m.get("annotations", {}).get("in-toto.io/predicate-type") == predicate
    ]
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
    report, trace = path.parent / "report.json", path.parent / "trace.json"
    result = cli.run(
        "ensure", *NAMES, "--sign-key", str(path), "--json", "-v",
        "--report", str(report), "--trace", str(trace),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    # The key's secret is nowhere: not in the output, the log, the report or the trace.
    secret = [line for line in path.read_text().splitlines() if not line.startswith("-----")]
    written = result.stdout + result.stderr + report.read_text() + trace.read_text()
    assert not any(line in written for line in secret)
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

    # The SBOM: CycloneDX 1.6 (the library's validator), the cargo packages of demo-hello's
    # binary (Cargo.lock) and its parent, signed the same way.
    hello = cli.run("ensure", "demo-hello", "--sign-key", str(path), "--json")
    assert hello.returncode == 0, hello.stderr
    hello_spec = json.loads(hello.stdout)["images"]["demo-hello"]["spec"]
    statement, _, _ = _statement_of(hello_spec, "https://cyclonedx.org/bom")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    bom = statement["predicate"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    purls = {c.get("purl") for c in bom["components"]}
    assert {"pkg:cargo/hello@0.1.0", "pkg:cargo/greeting@0.1.0"} <= purls
    assert any(c["name"] == "demo-base" and c["type"] == "container" for c in bom["components"])
    assert statement["subject"][0]["digest"]["sha256"] == digest_of(hello_spec)[7:]  # type: ignore[index]

    # Found images that already have one are left alone.
    again = cli.run("ensure", *NAMES, "--attest", "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["images"]
    assert {second[n]["attestation"]["provenance"] for n in NAMES} == {"present"}


def test_a_publish_false_parent_is_named_by_fingerprint_and_config_digest(
    demo_cli: Cli, key: tuple[Path, ec.EllipticCurvePrivateKey]
) -> None:
    """demo-report is built MZFROM demo-scratchpad (`publish: false`: at no registry).
    Its statements name that parent by fingerprint and by the config digest the engine
    has, marked unpublished; the SBOM validates; verify accepts it; a second run
    finds it attested."""
    import subprocess

    cli = demo_cli
    path, _private = key
    result = cli.run("ensure", "demo-report", "--sign-key", str(path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    images = json.loads(result.stdout)["images"]
    assert images["demo-report"]["attestation"]["provenance"] == "attached", images
    scratchpad = images["demo-scratchpad"]["spec"]
    config = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", scratchpad],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    statement, _, _ = _statement_of(images["demo-report"]["spec"])
    validate(statement)
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    parent = next(d for d in deps if d.get("name") == "demo-scratchpad")
    assert parent["digest"] == {"sha256": config.removeprefix("sha256:")}
    assert parent["annotations"] == {
        "mzbuild.spec": scratchpad,
        "mzbuild.published": "false",
        "mzbuild.fingerprint": scratchpad.rsplit(":mzbuild-", 1)[1],
        "mzbuild.digest": "config",
    }
    bom_statement, _, _ = _statement_of(images["demo-report"]["spec"], "https://cyclonedx.org/bom")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    bom = bom_statement["predicate"]
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom)) is None
    [component] = [c for c in bom["components"] if c["name"] == "demo-scratchpad"]
    assert "purl" not in component  # (a purl names a manifest: there is none)
    assert {p["name"]: p["value"] for p in component["properties"]} == {
        "mzbuild:published": "false",
        "mzbuild:config-digest": config,
    }
    public = path.parent / "public.pem"
    public.write_bytes(
        _private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    checked = cli.run("verify", "demo-report", "--key", str(public))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    again = cli.run("ensure", "demo-report", "--attest", "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["images"]["demo-report"]["attestation"]["provenance"] == (
        "present"
    )


def test_a_bad_key_is_one_line_before_any_work(demo_cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "junk.pem").write_text("junk")
    result = demo_cli.run("ensure", "demo-base", "--sign-key", str(tmp_path / "junk.pem"))
    assert result.returncode == 2
    assert "--sign-key" in result.stderr
    assert "not an unencrypted PEM private key" in result.stderr
    assert "Traceback" not in result.stderr
    assert "build start" not in result.stderr


def _verify(cli: Cli, *args: str) -> tuple[int, dict[str, str]]:
    result = cli.run("verify", *args)
    assert "Traceback" not in result.stderr
    lines = {line.split("  ", 1)[0]: line for line in result.stdout.splitlines()}
    return result.returncode, lines


@pytest.fixture
def attested(
    demo_cli: Cli, key: tuple[Path, ec.EllipticCurvePrivateKey], tmp_path: Path
) -> tuple[Cli, dict[str, Any], Path]:
    """The demo's two images ensured with --sign-key, and the public key as printed."""
    path, _private = key
    result = demo_cli.run("ensure", *NAMES, "--sign-key", str(path), "--json")
    assert result.returncode == 0, result.stderr
    printed = demo_cli.run("public-key", "--sign-key", str(path))
    assert printed.returncode == 0, printed.stderr
    (tmp_path / "pub.pem").write_text(printed.stdout)
    return demo_cli, json.loads(result.stdout)["images"], tmp_path / "pub.pem"


def test_verify_checks_the_signatures(
    attested: tuple[Cli, dict[str, Any], Path], tmp_path: Path
) -> None:
    cli, _images, public = attested
    status, lines = _verify(cli, *NAMES, "--key", str(public))
    assert status == 0, lines
    assert all(" verified  provenance signed by sha256:" in lines[n] for n in NAMES)
    status, lines = _verify(cli, "demo-base", "--allow-unsigned")
    assert (status, "signatures not checked" in lines["demo-base"]) == (0, True)
    # Without a key, verify fails closed: `verify && deploy` passes nothing unsigned.
    closed = cli.run("verify", "demo-base")
    assert closed.returncode == 2, closed.stdout + closed.stderr
    assert closed.stdout == ""
    assert closed.stderr.count("\n") == 1
    assert "give --key PEM" in closed.stderr
    assert "--allow-unsigned" in closed.stderr
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    (tmp_path / "other.pem").write_bytes(
        other.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    status, lines = _verify(cli, "demo-base", "--key", str(tmp_path / "other.pem"))
    assert status == 1
    assert "demo-base  FAILED  no signature by the given key verifies" in lines["demo-base"]


def _drop_statements(spec: str, digest: str) -> None:
    """Delete the fallback index of the image at ``spec`` (its statements are gone)."""
    repository = spec.rsplit(":", 1)[0]
    host, _, path_in = repository.partition("/")
    head = httpx.head(
        f"http://{host}/v2/{path_in}/manifests/{digest.replace(':', '-')}",
        headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=10,
    )  # fmt: skip
    httpx.delete(
        f"http://{host}/v2/{path_in}/manifests/{head.headers['docker-content-digest']}", timeout=10
    ).raise_for_status()


def _attach(spec: str, envelope: dict[str, Any] | bytes, predicate: str | None = None) -> None:
    """Attach ``envelope`` (a document, or raw bytes) to the image at ``spec`` with our
    own code, as a forger would."""
    import anyio

    from mzbuild_async.registry.client import RegistryClient
    from mzbuild_async.registry.names import parse_reference
    from mzbuild_async.registry.referrers import Descriptor, attach
    from mzbuild_async.registry.writer import RegistryWriter

    async def run() -> None:
        async with RegistryClient() as client:
            writer = RegistryWriter(client)
            manifest = await writer.manifest(parse_reference(spec))
            assert manifest is not None
            await attach(
                writer, parse_reference(spec.rsplit(":", 1)[0]), Descriptor.of(manifest),
                "application/vnd.in-toto+json", "application/vnd.dsse.envelope.v1+json",
                envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode(),
                {"in-toto.io/predicate-type": predicate} if predicate else None,
            )  # fmt: skip

    anyio.run(run)


def test_verify_refuses_a_statement_of_another_image_or_a_tampered_one(
    attested: tuple[Cli, dict[str, Any], Path],
) -> None:
    cli, images, public = attested
    _, _, base_envelope = _statement_of(images["demo-base"]["spec"])
    _, lib_payload, lib_envelope = _statement_of(images["demo-lib"]["spec"])
    lib_spec = images["demo-lib"]["spec"]
    # demo-lib loses its own statements, and gets demo-base's: of another image.
    _drop_statements(lib_spec, images["demo-lib"]["digest"])
    _attach(lib_spec, base_envelope)
    status, lines = _verify(cli, "demo-lib", "--key", str(public))
    assert status == 1
    assert "its subject is another image" in lines["demo-lib"]
    # A copy of its own with one byte changed: the signature no longer verifies.
    flipped = lib_payload.replace(b'"demo-lib"', b'"demo-lIb"')
    assert flipped != lib_payload
    _attach(lib_spec, dict(lib_envelope, payload=base64.b64encode(flipped).decode()))
    status, lines = _verify(cli, "demo-lib", "--key", str(public))
    assert status == 1
    assert "no signature by the given key verifies" in lines["demo-lib"]


def test_verify_fails_when_an_input_changed_since_the_build(
    attested: tuple[Cli, dict[str, Any], Path],
) -> None:
    cli, _images, public = attested
    (cli.repo / "images" / "base" / "extra.txt").write_text("changed\n")
    status, lines = _verify(cli, "demo-base", "--key", str(public))
    assert status == 1
    assert "demo-base  FAILED" in lines["demo-base"]


def test_the_statements_travel_with_a_mirror_copy_and_verify_there(
    demo_cli: Cli,
    key: tuple[Path, ec.EllipticCurvePrivateKey],
    registries: dict[str, Any],
    tmp_path: Path,
) -> None:
    cli = demo_cli
    path, private = key
    mirror = f"{registries['token'].host}/{cli.registry.split('/', 1)[1]}"
    result = cli.run("ensure", *NAMES, "--sign-key", str(path), "--mirror-registry", mirror)
    assert result.returncode == 0, result.stderr
    (tmp_path / "pub.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    at_mirror = Cli(cli.repo, mirror, cli.cache_dir)
    status, lines = _verify(at_mirror, *NAMES, "--key", str(tmp_path / "pub.pem"))
    assert status == 0, lines
    assert all(" verified  " in lines[n] for n in NAMES)
    # promote --to another registry: the statements go with the images, and verify there.
    other = f"{registries['htpasswd'].host}/{cli.registry.split('/', 1)[1]}"
    cli.env.update(
        {"MZBUILD_ASYNC_REGISTRY_USERNAME": USER, "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD}
    )
    promoted = cli.run("promote", "v1.0.0", *NAMES, "--to", other, "--mirror-registry", mirror)
    assert promoted.returncode == 0, promoted.stderr
    at_other = Cli(cli.repo, other, cli.cache_dir, env=dict(cli.env))
    status, lines = _verify(at_other, *NAMES, "--key", str(tmp_path / "pub.pem"))
    assert status == 0, lines


def test_require_attested_attests_again_what_does_not_hold_never_rebuilding(
    attested: tuple[Cli, dict[str, Any], Path], key: tuple[Path, ec.EllipticCurvePrivateKey]
) -> None:
    cli, images, public = attested
    spec = images["demo-lib"]["spec"]
    _, payload, envelope = _statement_of(spec)
    _drop_statements(spec, images["demo-lib"]["digest"])
    flipped = payload.replace(b"demo-lib", b"demo-lIb")
    _attach(
        spec,
        dict(envelope, payload=base64.b64encode(flipped).decode()),
        "https://slsa.dev/provenance/v1",
    )
    present = cli.run("ensure", "demo-lib", "--attest", "--json")  # (it has one: enough here)
    assert (
        json.loads(present.stdout)["images"]["demo-lib"]["attestation"]["provenance"] == "present"
    )
    status, _ = _verify(cli, "demo-lib", "--key", str(public))
    assert status == 1
    path, _private = key
    again = cli.run("ensure", "demo-lib", "--require-attested", "--sign-key", str(path), "--json")
    assert again.returncode == 0, again.stderr
    lib = json.loads(again.stdout)["images"]["demo-lib"]
    assert (lib["action"], lib["attestation"]["provenance"]) == ("none", "attached")
    status, lines = _verify(cli, "demo-lib", "--key", str(public))
    assert status == 0, lines
    # And once it holds, it is left alone.
    third = cli.run("ensure", "demo-lib", "--require-attested", "--sign-key", str(path), "--json")
    assert json.loads(third.stdout)["images"]["demo-lib"]["attestation"]["provenance"] == "present"


DEEP = b"[" * 100_000 + b"]" * 100_000


UNSIGNED_DEEP = {
    "payloadType": "application/vnd.in-toto+json",
    "payload": base64.b64encode(DEEP).decode(),
    "signatures": [],
}


@pytest.mark.parametrize(
    ("envelope", "said", "said_unsigned"),
    [
        pytest.param(
            DEEP, "not a DSSE envelope", "not a DSSE envelope", id="an envelope nested 100k deep"
        ),
        pytest.param(
            b"<html>garbage</html>", "not a DSSE envelope", "not a DSSE envelope", id="not JSON"
        ),
        pytest.param(
            UNSIGNED_DEEP,
            "no signature by the given key verifies",
            "payload is not a JSON document",
            id="a payload nested 100k deep",
        ),
    ],
)
def test_a_hostile_attestation_is_one_line_and_attested_again(
    attested: tuple[Cli, dict[str, Any], Path],
    key: tuple[Path, ec.EllipticCurvePrivateKey],
    envelope: dict[str, Any] | bytes,
    said: str,
    said_unsigned: str,
) -> None:
    """Whoever can push can attach anything: verify says what is wrong in one line
    (never a RecursionError or a raw parser message), and --require-attested
    attaches a good statement again."""
    cli, images, public = attested
    spec = images["demo-lib"]["spec"]
    _drop_statements(spec, images["demo-lib"]["digest"])
    _attach(spec, envelope, "https://slsa.dev/provenance/v1")
    for flags, expected in ((("--key", str(public)), said), (("--allow-unsigned",), said_unsigned)):
        result = cli.run("verify", "demo-lib", *flags)
        assert result.returncode == 1, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert "Recursion" not in result.stdout
        [line] = [x for x in result.stdout.splitlines() if x.startswith("demo-lib")]
        assert line.startswith("demo-lib  FAILED  "), line
        assert expected in line, line
        assert "Expecting value" not in line
    path, _private = key
    again = cli.run("ensure", "demo-lib", "--require-attested", "--sign-key", str(path), "--json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["images"]["demo-lib"]["attestation"]["provenance"] == (
        "attached"
    )
    status, lines = _verify(cli, "demo-lib", "--key", str(public))
    assert status == 0, lines


def test_a_huge_envelope_is_refused_without_being_read_whole(
    attested: tuple[Cli, dict[str, Any], Path],
) -> None:
    """An attached envelope of 150 MB (anyone who can push can attach one): verify
    refuses it from its length, one line, and the process never holds it (its peak
    resident size stays far below the envelope's)."""
    import subprocess
    import sys

    cli, images, public = attested
    spec = images["demo-lib"]["spec"]
    _drop_statements(spec, images["demo-lib"]["digest"])
    huge = b'{"payload": "' + b"A" * (150 * 1024 * 1024) + b'"}'
    _attach(spec, huge, "https://slsa.dev/provenance/v1")
    del huge
    # (VmHWM: the peak of this process's own memory; ru_maxrss would carry the
    # parent's from before exec)
    measured = (
        "import re, sys;"
        "from mzbuild_async.cli.main import main;"
        "status = main(sys.argv[1:]);"
        "sys.stderr.write('maxrss=' + re.search("
        "r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1) + '\\n');"
        "sys.exit(status)"
    )
    argv = cli.args("verify", "demo-lib", "--key", str(public))
    result = subprocess.run(
        [sys.executable, "-c", measured, *argv[3:]],
        env=cli.environ(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = [x for x in result.stdout.splitlines() if x.startswith("demo-lib")]
    assert "is over 4194304 bytes (announced 157286" in line, line
    peak_kib = int(result.stderr.rsplit("maxrss=", 1)[1].split()[0])
    print(f"verify's peak resident size: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 120 * 1024, peak_kib


def test_a_descriptor_that_lies_about_its_size_does_not_verify(
    attested: tuple[Cli, dict[str, Any], Path],
) -> None:
    """The fallback index says an artifact is one byte bigger than it is: the artifact
    read by digest does not match its descriptor, and verify fails naming both."""
    cli, images, public = attested
    spec = images["demo-base"]["spec"]
    repository = spec.rsplit(":", 1)[0]
    host, _, path_in = repository.partition("/")
    tag = images["demo-base"]["digest"].replace(":", "-")
    index = json.loads(raw_manifest(f"{repository}:{tag}"))
    for entry in index["manifests"]:
        entry["size"] += 1
    httpx.put(
        f"http://{host}/v2/{path_in}/manifests/{tag}",
        content=json.dumps(index).encode(),
        headers={"Content-Type": index["mediaType"]},
        timeout=10,
    ).raise_for_status()
    status, lines = _verify(cli, "demo-base", "--key", str(public))
    assert status == 1, lines
    assert "bytes, but the index listing it says" in lines["demo-base"]


def test_keyless_without_a_token_or_sigstore_is_one_line(demo_cli: Cli) -> None:
    import importlib.util

    result = demo_cli.run("ensure", "demo-base", "--keyless")
    assert result.returncode == 2
    assert "--keyless: no OIDC token; the CI must provide one in SIGSTORE_ID_TOKEN" in result.stderr
    if importlib.util.find_spec("sigstore") is None:  # (CI: the extra is not installed)
        demo_cli.env["SIGSTORE_ID_TOKEN"] = "a.b.c"
        result = demo_cli.run("ensure", "demo-base", "--keyless")
        assert result.returncode == 2
        assert "--keyless needs sigstore: pip install 'mzbuild-async[sigstore]'" in result.stderr
        assert "a.b.c" not in result.stderr
    assert "Traceback" not in result.stderr


#: ``cosign verify-attestation --type NAME``: the predicate type each name selects.
COSIGN_TYPES = {
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
    "cyclonedx": "https://cyclonedx.org/bom",
}


def _cosign_verify_attestation(
    image: str, public: ec.EllipticCurvePublicKey, kind: str
) -> dict[str, Any]:
    """What ``cosign verify-attestation --key PUB --insecure-ignore-tlog --type KIND
    IMAGE`` does, by hand (skopeo, httpx, cryptography): the digest the image resolves
    to names the tag ``sha256-<hex>.att``; every layer carries the signature
    annotation; a layer verifies when its DSSE signature over PAE holds with the key
    and its statement names the image's digest; one whose predicate type is KIND's is
    returned (none: cosign fails)."""
    digest = digest_of(image)
    assert digest is not None
    repository = image.rsplit(":", 1)[0]
    manifest = json.loads(raw_manifest(f"{repository}:{digest.replace(':', '-')}.att"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    host, _, path = repository.partition("/")
    matched = []
    for layer in manifest["layers"]:
        assert "dev.cosignproject.cosign/signature" in layer["annotations"]
        blob = httpx.get(f"http://{host}/v2/{path}/blobs/{layer['digest']}", timeout=10)
        assert hashlib.sha256(blob.content).hexdigest() == layer["digest"][7:]
        envelope = blob.json()
        if envelope["payloadType"] != "application/vnd.in-toto+json":
            continue
        payload = base64.b64decode(envelope["payload"])
        kind_bytes = envelope["payloadType"].encode()
        message = b"DSSEv1 %d %s %d %s" % (len(kind_bytes), kind_bytes, len(payload), payload)
        if not any(_holds(public, sig["sig"], message) for sig in envelope["signatures"]):
            continue  # (cosign skips a layer that does not verify)
        statement: dict[str, Any] = json.loads(payload)
        if not any(s["digest"].get("sha256") == digest[7:] for s in statement["subject"]):
            continue
        if statement["predicateType"] == COSIGN_TYPES[kind]:
            matched.append(statement)
    assert matched, f"cosign: none of the attestations of {image} matched {kind}"
    return matched[0]


def _holds(public: ec.EllipticCurvePublicKey, signature: str, message: bytes) -> bool:
    try:
        public.verify(base64.b64decode(signature), message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def _add_foreign_layer(image: str) -> None:
    """Another tool's attestation at the ``.att`` tag (it must survive ours)."""
    digest = digest_of(image)
    assert digest is not None
    repository = image.rsplit(":", 1)[0]
    tag = f"{digest.replace(':', '-')}.att"
    manifest = json.loads(raw_manifest(f"{repository}:{tag}"))
    host, _, path = repository.partition("/")
    body = b'{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}'
    blob = f"sha256:{hashlib.sha256(body).hexdigest()}"
    started = httpx.post(f"http://{host}/v2/{path}/blobs/uploads/", timeout=10)
    location = started.headers["location"]
    location = location if location.startswith("http") else f"http://{host}{location}"
    joined = f"{location}{'&' if '?' in location else '?'}digest={blob}"
    httpx.put(joined, content=body, timeout=10).raise_for_status()
    manifest["layers"].append(
        {
            "mediaType": "application/vnd.dsse.envelope.v1+json", "digest": blob,
            "size": len(body),
            "annotations": {
                "dev.cosignproject.cosign/signature": "",
                "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
            },
        }
    )  # fmt: skip
    httpx.put(
        f"http://{host}/v2/{path}/manifests/{tag}", content=json.dumps(manifest).encode(),
        headers={"Content-Type": manifest["mediaType"]}, timeout=10,
    ).raise_for_status()  # fmt: skip


def test_the_cosign_layout_is_what_cosign_verify_attestation_finds(
    demo_cli: Cli,
    key: tuple[Path, ec.EllipticCurvePrivateKey],
    registries: dict[str, Any],
    tmp_path: Path,
) -> None:
    """``--attest-layout cosign``: the statements at cosign's ``sha256-<hex>.att`` tag
    (and not as OCI artifacts), found and verified as cosign does, read by ``verify``,
    copied to a mirror; ``both`` later adds the OCI artifacts and replaces our layers,
    keeping another tool's."""
    cli = demo_cli
    path, private = key
    (tmp_path / "pub.pem").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    mirror = f"{registries['token'].host}/{cli.registry.split('/', 1)[1]}"
    result = cli.run(
        "ensure", *NAMES, "--sign-key", str(path), "--attest-layout", "cosign", "--json",
        "--mirror-registry", mirror,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    for name in NAMES:
        spec, digest = images[name]["spec"], images[name]["digest"]
        repository = spec.rsplit(":", 1)[0]
        assert images[name]["attestation"]["cosign"] == digest_of(
            f"{repository}:{digest.replace(':', '-')}.att"
        )
        assert digest_of(f"{repository}:{digest.replace(':', '-')}") is None  # no OCI artifacts
        provenance = _cosign_verify_attestation(spec, private.public_key(), "slsaprovenance1")
        validate(provenance)
        sbom = _cosign_verify_attestation(spec, private.public_key(), "cyclonedx")
        assert sbom["predicate"]["bomFormat"] == "CycloneDX"
    status, lines = _verify(cli, *NAMES, "--key", str(tmp_path / "pub.pem"))
    assert status == 0, lines
    assert all(" verified  provenance signed by sha256:" in lines[n] for n in NAMES)
    at_mirror = Cli(cli.repo, mirror, cli.cache_dir)
    status, lines = _verify(at_mirror, *NAMES, "--key", str(tmp_path / "pub.pem"))
    assert status == 0, lines

    base = images["demo-base"]["spec"]
    _add_foreign_layer(base)
    both = cli.run(
        "ensure", "demo-base", "--sign-key", str(path), "--attest-layout", "both", "--json"
    )
    assert both.returncode == 0, both.stderr
    assert json.loads(both.stdout)["images"]["demo-base"]["attestation"]["provenance"] == (
        "attached"  # (found without its OCI artifacts)
    )
    _statement_of(base)  # now an OCI artifact too
    digest = images["demo-base"]["digest"]
    manifest = json.loads(raw_manifest(f"{base.rsplit(':', 1)[0]}:{digest.replace(':', '-')}.att"))
    kinds = [layer["annotations"]["predicateType"] for layer in manifest["layers"]]
    assert sorted(kinds) == sorted(
        [
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            "https://slsa.dev/provenance/v1",
            "https://cyclonedx.org/bom",
        ]
    )
    _cosign_verify_attestation(base, private.public_key(), "slsaprovenance1")
    again = cli.run(
        "ensure", "demo-base", "--sign-key", str(path), "--attest-layout", "both", "--json"
    )
    assert json.loads(again.stdout)["images"]["demo-base"]["attestation"]["provenance"] == (
        "present"
    )
