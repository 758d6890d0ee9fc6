"""``verify``: each image's attached provenance, checked against this checkout.

For each image: its digest (a ``HEAD``), the in-toto artifacts attached to
it (the referrers API, else the fallback tag), each one's subject, its DSSE
signatures (with the ``--key`` public keys), and that the statement
describes the image this checkout computes (:mod:`..attest.verify`). One
verdict per image.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..attest.dsse import IN_TOTO_TYPE, BadEnvelope, PublicKey, key_id, open_envelope, statement_of
from ..attest.verify import Mismatch, check_statement
from ..errors import TransferError
from ..model.status import Status
from ..registry.names import parse_reference
from ..registry.referrers import referrers
from ..registry.writer import RegistryWriter
from ..source.repository import Repository
from .attest import inputs_of
from .settings import RegistrySettings

#: Images verified at once.
CONCURRENCY = 16


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
    if not attached:
        raise Mismatch("no provenance attached")
    expected_inputs = {i.path: i.sha1 for i in await inputs_of(repo, name)}
    parents = {dep: await repo.spec(dep) for dep in repo.image(name).dependencies}
    problems: list[str] = []
    for descriptor in attached:
        artifact = await writer.manifest(
            parse_reference(f"{spec.rsplit(':', 1)[0]}@{descriptor.digest}")
        )
        if artifact is None:
            problems.append(f"artifact {descriptor.digest[:19]} is gone")
            continue
        document = artifact.json()
        if document.get("subject", {}).get("digest") != probe.digest:
            problems.append("an artifact whose subject is another image")
            continue
        layers = document.get("layers")
        if not isinstance(layers, list) or not layers or not isinstance(layers[0], dict):
            problems.append("an artifact without its envelope")
            continue
        blob = await writer.blob(repository, str(layers[0].get("digest")))
        try:
            envelope = json.loads(blob.body)
            if keys:
                payload_type, payload = open_envelope(envelope, keys)
                signer = f"signed by {key_id(keys[0])[:19]}" if len(keys) == 1 else "signed"
            else:
                payload_type, payload = _unsigned(envelope)
                signer = "signatures not checked (no --key)"
            statement = statement_of(payload_type, payload)
            check_statement(statement, probe.digest, expected_inputs, parents)
        except (BadEnvelope, Mismatch, json.JSONDecodeError) as exc:
            problems.append(str(exc))
            continue
        return f"provenance {signer}, {len(expected_inputs)} inputs match"
    raise Mismatch("; ".join(dict.fromkeys(problems)))


def _unsigned(envelope: object) -> tuple[str, bytes]:
    """The payload of an envelope whose signatures are not checked."""
    import base64

    if not isinstance(envelope, dict):
        raise BadEnvelope("not a DSSE envelope")
    try:
        return str(envelope["payloadType"]), base64.b64decode(envelope["payload"], validate=True)
    except (KeyError, TypeError, ValueError):
        raise BadEnvelope("not a DSSE envelope") from None
