"""``verify``: each image's attached provenance, checked against this checkout.

For each image: its digest (a ``HEAD``), the in-toto artifacts attached to
it (the referrers API, else the fallback tag), each one's subject, its DSSE
signatures (with the ``--key`` public keys), and that the statement
describes the image this checkout computes (:mod:`..attest.verify`). One
verdict per image.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from ..attest.dsse import (
    IN_TOTO_TYPE,
    BadEnvelope,
    KeySigner,
    PublicKey,
    key_id,
    load_public_key,
    open_envelope,
    statement_of,
)
from ..attest.sbom import CYCLONEDX_TYPE
from ..attest.verify import Mismatch, check_statement, check_subject
from ..errors import TransferError, UsageError
from ..model.status import Status
from ..registry.cosign import cosign_layers
from ..registry.names import Reference, parse_reference
from ..registry.referrers import Descriptor, referrers
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from ..support.documents import parse_json
from .attest import PREDICATE_ANNOTATION, SIGNER_ANNOTATION, inputs_of
from .settings import RegistrySettings

#: Images verified at once.
CONCURRENCY = 16


def load_keys(paths: Sequence[str]) -> list[PublicKey]:
    """The PEM public keys ``verify --key`` names (one line naming a bad file)."""
    return [load_public_key(path) for path in paths]


@dataclass(frozen=True)
class KeyPair:
    """What ``keygen`` wrote."""

    private: Path
    public: Path
    keyid: str


def public_path(private: Path) -> Path:
    """Where ``keygen`` puts the public half of ``private``: ``sign.pem`` -> ``sign.pub.pem``."""
    return private.with_name(f"{private.stem}.pub{private.suffix or '.pem'}")


def write_keypair(path: str, kind: str = "ecdsa", *, force: bool = False) -> KeyPair:
    """``keygen``: a new signing key at ``path`` (mode 0600, never over an existing file
    unless ``force``) and its public half beside it; one line for a path we cannot use."""
    private = Path(path)
    public = public_path(private)
    signer = KeySigner.generate(kind)
    if not force:
        for existing in (private, public):
            if existing.exists():
                raise UsageError(
                    f"keygen: {existing} exists; keep it, or pass --force to replace it"
                )
    staged = private.with_name(f".{private.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(signer.private_pem())
        os.replace(staged, private)  # (the key is never readable by others, not even briefly)
        public.write_text(signer.public_pem())
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise UsageError(f"keygen: cannot write {private} ({exc.strerror or exc})") from None
    return KeyPair(private, public, signer.keyid)


def public_key_pem(signing_key: str) -> str:
    """The public half of a ``--sign-key`` as PEM: what ``verify --key`` takes."""
    return KeySigner.load(signing_key).public_pem()


@dataclass(frozen=True)
class Verdict:
    """One image: verified or not, and why."""

    ok: bool
    spec: str
    detail: str


async def verify_images(
    repo: Repository,
    targets: Sequence[str],
    keys: Sequence[PublicKey],
    *,
    cache_dir: Path,
    settings: RegistrySettings,
) -> dict[str, Verdict]:
    """A verdict for each target's attached provenance."""
    specs = await repo.specs(list(targets))
    verdicts: dict[str, Verdict] = {}
    limit = anyio.CapacityLimiter(CONCURRENCY)
    async with settings.session(cache_dir) as client:
        writer = RegistryWriter(client)

        async def one(name: str) -> None:
            async with limit:
                try:
                    detail = await _verify(repo, writer, name, specs, keys)
                    verdicts[name] = Verdict(True, specs[name], detail)
                except (TransferError, Mismatch, BadEnvelope) as exc:
                    verdicts[name] = Verdict(False, specs[name], str(exc))

        async with anyio.create_task_group() as tg:
            for name in targets:
                tg.start_soon(one, name)
    return {name: verdicts[name] for name in targets}


async def _verify(
    repo: Repository,
    writer: RegistryWriter,
    name: str,
    specs: Mapping[str, str],
    keys: Sequence[PublicKey],
) -> str:
    spec = specs[name]
    probe = await writer.client.lookup(parse_reference(spec))
    if probe.status is not Status.PRESENT or not probe.digest:
        raise TransferError(f"{spec} is not published ({probe.detail or probe.status})")
    repository = parse_reference(spec.rsplit(":", 1)[0])
    attached = await referrers(writer, repository, probe.digest, IN_TOTO_TYPE)
    bundles = [d for d in attached if SIGNER_ANNOTATION in dict(d.annotations)]
    statements: list[tuple[str, Opener]] = [
        (dict(d.annotations).get(PREDICATE_ANNOTATION, ""), _artifact_opener(writer, repository, d))
        for d in attached
        if d not in bundles
    ]
    if not statements:  # (none as OCI artifacts: at cosign's .att tag, if anywhere)
        statements = [
            (layer.predicate_type, _layer_opener(writer, repository, layer.digest, layer.size))
            for layer in await cosign_layers(writer, repository, probe.digest) or []
        ]
    if not statements:
        raise Mismatch("no provenance attached")
    expected_inputs = {i.path: i.sha1 for i in await inputs_of(repo, name)}
    parents = {dep: await repo.spec(dep) for dep in repo.image(name).dependencies}
    problems: list[str] = []
    verified = ""
    sboms = 0
    for predicate, opener in sorted(statements, key=lambda s: s[0] == CYCLONEDX_TYPE):
        sbom = predicate == CYCLONEDX_TYPE  # (provenance first)
        if sbom and not verified:
            break
        try:
            statement, signer = _statement(await opener(probe.digest), keys)
            if sbom:
                check_subject(statement, probe.digest)
                sboms += 1
            elif not verified:
                check_statement(statement, probe.digest, expected_inputs, parents)
                verified = f"provenance {signer}, {len(expected_inputs)} inputs match"
        except (BadEnvelope, Mismatch) as exc:
            if not sbom:
                problems.append(str(exc))
            else:
                raise Mismatch(f"SBOM: {exc}") from None
    if not verified:
        raise Mismatch("; ".join(dict.fromkeys(problems)) or "no provenance attached")
    keyless = (
        f"; {len(bundles)} sigstore bundles (checked by sigstore's verifier)" if bundles else ""
    )
    return verified + (f"; SBOM {'signed' if keys else 'attached'}" if sboms else "") + keyless


#: Reads one attached statement's envelope, given the image's digest (its subject).
Opener = Callable[[str], Awaitable[Any]]


def _artifact_opener(
    writer: RegistryWriter, repository: Reference, descriptor: Descriptor
) -> Opener:
    """The envelope of an OCI 1.1 artifact, its subject checked. Every descriptor on
    the way must tell the truth about its size: what the registry holds is read by
    digest, and a size that differs is a tampered index."""

    async def opened(image_digest: str) -> Any:
        artifact = await writer.manifest(
            Reference(repository.domain, repository.repository, tag=descriptor.digest)
        )
        if artifact is None:
            raise Mismatch(f"artifact {descriptor.digest[:19]} is gone")
        if artifact.size != descriptor.size:
            raise Mismatch(
                f"artifact {descriptor.digest[:19]} is {artifact.size} bytes, but the index"
                f" listing it says {descriptor.size}"
            )
        document = artifact.json()
        subject = document.get("subject")
        if not isinstance(subject, dict) or subject.get("digest") != image_digest:
            raise Mismatch("an artifact whose subject is another image")
        layers = document.get("layers")
        if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
            raise Mismatch("an artifact without its envelope")
        layer = layers[0]
        return await _envelope(writer, repository, str(layer.get("digest")), layer.get("size"))

    return opened


def _layer_opener(writer: RegistryWriter, repository: Reference, digest: str, size: int) -> Opener:
    """The envelope of a layer at cosign's ``.att`` tag (its statement names the image)."""

    async def opened(image_digest: str) -> Any:
        return await _envelope(writer, repository, digest, size)

    return opened


async def _envelope(
    writer: RegistryWriter, repository: Reference, digest: str, size: Any
) -> object:
    """The DSSE envelope in blob ``digest``, which must be ``size`` bytes."""
    blob = await writer.blob(repository, digest)
    if blob.size != size:
        raise Mismatch(
            f"the envelope {digest[:19]} is {blob.size} bytes, but its manifest says {size}"
        )
    try:
        return parse_json(blob.body)
    except ValueError:
        raise BadEnvelope("not a DSSE envelope") from None


def _statement(envelope: Any, keys: Sequence[PublicKey]) -> tuple[dict[str, Any], str]:
    """An envelope's statement, opened with ``keys`` (not checked without keys); and who
    signed it."""
    if keys:
        payload_type, payload = open_envelope(envelope, keys)
        signer = f"signed by {key_id(keys[0])[:19]}" if len(keys) == 1 else "signed"
    else:
        payload_type, payload = _unsigned(envelope)
        signer = "signatures not checked (no --key)"
    return statement_of(payload_type, payload), signer


def _unsigned(envelope: object) -> tuple[str, bytes]:
    """The payload of an envelope whose signatures are not checked."""
    import base64

    if not isinstance(envelope, dict):
        raise BadEnvelope("not a DSSE envelope")
    try:
        return str(envelope["payloadType"]), base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise BadEnvelope("not a DSSE envelope") from None


def holding(
    repo: Repository, writer: RegistryWriter, keys: Sequence[PublicKey]
) -> Callable[[str], Awaitable[bool]]:
    """Whether an image's attached provenance holds, as ``verify`` would say
    (``ensure --require-attested``)."""

    async def holds(name: str) -> bool:
        specs = {name: await repo.spec(name)}
        try:
            await _verify(repo, writer, name, specs, keys)
        except (TransferError, Mismatch, BadEnvelope):
            return False
        return True

    return holds
