"""After an ``ensure --attest``: a signed provenance statement attached to each image.

For every image the run pushed (and every image it found published without
one), an in-toto statement with the SLSA provenance of the build
(:mod:`..attest.statement`) is signed with the run's keys as a DSSE
envelope (:mod:`..attest.dsse`) and attached to the image's manifest as an
OCI 1.1 artifact (:mod:`..registry.referrers`). ``verify`` reads them back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio

from ..attest.dsse import ENVELOPE_TYPE, IN_TOTO_TYPE, Signer, envelope
from ..attest.keyless import BUNDLE_TYPE, BundleSigner
from ..attest.sbom import CYCLONEDX_TYPE, SbomError, sbom
from ..attest.statement import (
    PROVENANCE_TYPE,
    Base,
    Build,
    Input,
    Parent,
    Subject,
    in_toto,
)
from ..attest.statement import provenance as provenance_statement
from ..ci import build_url
from ..errors import CargoError, TransferError, UsageError
from ..model.status import Status
from ..registry.client import RegistryClient
from ..registry.cosign import attach_cosign, cosign_layers
from ..registry.names import parse_reference
from ..registry.referrers import Descriptor, attach, referrers
from ..registry.writer import RegistryWriter
from ..source.lockfile import Lockfile, Package, load_lockfile
from ..source.pins import external_bases, read_lock
from ..source.repository import Repository
from ..support.version import VERSION
from .results import ImageResult

#: The annotation that says which predicate an attached statement carries.
PREDICATE_ANNOTATION = "in-toto.io/predicate-type"
#: Who signed a keyless bundle (the OIDC identity).
SIGNER_ANNOTATION = "dev.sigstore.bundle.identity"
#: Whether image ``name``'s attached provenance holds (signed, about it, this checkout's).
Holds = Callable[[str], Awaitable[bool]]
#: Images attested at once.
CONCURRENCY = 8
#: ``--attest-layout``: OCI 1.1 artifacts (referrers), cosign's ``.att`` tag, or both.
OCI_LAYOUT, COSIGN_LAYOUT, BOTH_LAYOUTS = "oci", "cosign", "both"
LAYOUTS = (OCI_LAYOUT, COSIGN_LAYOUT, BOTH_LAYOUTS)


@dataclass(frozen=True)
class Attested:
    """What became of one image's provenance: ``attached``, ``present`` (it had one),
    or ``failed`` (with why)."""

    state: str
    digest: str = ""
    error: str = ""
    #: The SBOM statement attached with it.
    sbom: str = ""
    #: The manifest at cosign's ``sha256-<hex>.att`` tag (``--attest-layout``).
    cosign: str = ""

    def to_json(self) -> dict[str, Any]:
        """The record in ``--json``."""
        record: dict[str, Any] = {"provenance": self.state}
        if self.digest:
            record["digest"] = self.digest
        if self.sbom:
            record["sbom"] = self.sbom
        if self.cosign:
            record["cosign"] = self.cosign
        if self.error:
            record["error"] = self.error
        return record


def build_of(
    repo: Repository,
    name: str,
    result: ImageResult,
    parents: Sequence[Parent],
    inputs: Sequence[Input],
    labels: Mapping[str, str],
    environ: Mapping[str, str],
    window: tuple[float, float] | None,
) -> Build:
    """What the statement of ``name`` records."""
    options = repo.options
    return Build(
        name=name,
        fingerprint=result.spec.rsplit("-", 1)[1],
        options={
            "profile": options.profile.value,
            "arch": str(options.arch),
            "coverage": options.coverage,
            "sanitizer": options.sanitizer.value,
        },
        inputs=inputs,
        parents=parents,
        source=labels.get("org.opencontainers.image.source", ""),
        revision=labels.get("org.opencontainers.image.revision", ""),
        engine=result.engine or "local",
        platform=options.arch.platform,
        invocation=build_url(environ),
        started=window[0] if window else None,
        finished=window[1] if window else None,
        version=VERSION,
    )


def packages_of(repo: Repository, name: str, lock: Lockfile | None) -> list[Package]:
    """The cargo packages in the closure of every binary and example ``name``'s
    ``cargo-build`` pre-images put in (none without a ``Cargo.lock``)."""
    builds = repo.image(name).manifest.cargo_builds
    if lock is None or not builds:
        return []
    crates = set()
    for build in builds:
        crates |= {repo.workspace().crate_for_bin(b, name).name for b in build.bins}
        crates |= {repo.workspace().crate_for_example(e, name).name for e in build.examples}
    return lock.closure(crates)


async def inputs_of(repo: Repository, name: str) -> list[Input]:
    """Every input file of ``name`` with the SHA-1 of its content, as the fingerprint
    hashed it."""
    described = await repo.describe(name)
    return [Input(f.path, f.sha1.hex()) for f in described.inputs]


#: The ID (config digest) of an image in one of the run's engines: (engine name, spec)
#: -> the ID, None when that engine lacks it.
ImageIds = Callable[[str, str], Awaitable[str | None]]


async def attest_images(
    client: RegistryClient,
    repo: Repository,
    results: Mapping[str, ImageResult],
    signers: Sequence[Signer],
    environ: Mapping[str, str],
    *,
    found_too: bool,
    windows: Mapping[str, tuple[float, float]],
    holds: Holds | None = None,
    keyless: BundleSigner | None = None,
    image_id: ImageIds | None = None,
    layout: str = OCI_LAYOUT,
) -> dict[str, Attested]:
    """Attach a signed provenance statement to each image pushed (and, with
    ``found_too``, each found published without one; with ``holds``, without one
    that holds); per image, what was done. ``layout``: as OCI 1.1 artifacts
    (``oci``), at cosign's ``.att`` tag (``cosign``), or ``both``."""
    writer = RegistryWriter(client)
    labels = await repo.source_labels()
    lock = load_lockfile(repo.root)
    chosen = [
        name
        for name, r in results.items()
        if r.digest and repo.image(name).manifest.publish and (r.pushed or found_too)
        and r.action not in ("failed", "skipped")
    ]  # fmt: skip
    done: dict[str, Attested] = {}
    limit = anyio.CapacityLimiter(CONCURRENCY)

    async def one(name: str) -> None:
        result = results[name]
        ref = parse_reference(result.spec)
        repository = parse_reference(result.spec.rsplit(":", 1)[0])
        async with limit:
            try:
                if not result.pushed and await _has_one(writer, result, holds, layout):
                    done[name] = Attested("present")
                    return
                manifest = await writer.manifest(ref)
                if manifest is None or manifest.digest != result.digest:
                    raise TransferError(f"{result.spec} is not the image this run published")
                parents = [
                    await _parent(writer, repo, dep, results, result.engine, image_id)
                    for dep in repo.image(name).dependencies
                ]
                build = replace(
                    build_of(
                        repo, name, result, parents, await inputs_of(repo, name), labels,
                        environ, windows.get(name),
                    ),
                    bases=await bases_of(writer, repo, name),
                )  # fmt: skip
                subject = Subject(result.spec.rsplit(":", 1)[0], result.digest)
                statements = {
                    PROVENANCE_TYPE: provenance_statement(subject, build),
                    CYCLONEDX_TYPE: in_toto(
                        subject,
                        CYCLONEDX_TYPE,
                        sbom(
                            name, result.spec, result.digest, packages_of(repo, name, lock),
                            parents, bases=build.bases, version=VERSION,
                            created=build.finished,
                        ),
                    ),
                }  # fmt: skip
                subject_manifest = Descriptor.of(manifest)
                digests, signed = [], []
                for predicate, statement in statements.items():
                    payload = json.dumps(statement, sort_keys=True).encode()
                    signed.append(
                        (predicate, json.dumps(envelope(payload, IN_TOTO_TYPE, signers)).encode())
                    )
                    if layout != COSIGN_LAYOUT:
                        attached = await attach(
                            writer, repository, subject_manifest, IN_TOTO_TYPE,
                            ENVELOPE_TYPE, signed[-1][1], {PREDICATE_ANNOTATION: predicate},
                        )  # fmt: skip
                        digests.append(attached.digest)
                    if keyless is not None:  # (the same statement, as a sigstore bundle)
                        bundle = await anyio.to_thread.run_sync(keyless.sign_statement, payload)
                        await attach(
                            writer, repository, subject_manifest, IN_TOTO_TYPE,
                            BUNDLE_TYPE, bundle.encode(),
                            {PREDICATE_ANNOTATION: predicate, SIGNER_ANNOTATION: keyless.identity},
                        )  # fmt: skip
                cosign = ""
                if layout != OCI_LAYOUT:
                    cosign = await attach_cosign(writer, repository, result.digest, signed)
                provenance, sbom_digest = digests if digests else (cosign, cosign)
                done[name] = Attested("attached", provenance, sbom=sbom_digest, cosign=cosign)
            except (TransferError, SbomError, CargoError) as exc:
                done[name] = Attested("failed", error=str(exc))

    async with anyio.create_task_group() as tg:
        for name in chosen:
            tg.start_soon(one, name)
    return done


async def _parent(
    writer: RegistryWriter,
    repo: Repository,
    name: str,
    results: Mapping[str, ImageResult],
    engine: str,
    image_id: ImageIds | None,
) -> Parent:
    """A parent with its digest: from this run, else from the registry (a found
    image's parents are not looked up by the run). A ``publish: false`` parent is
    at no registry: it is named by its fingerprint and its config digest, as the
    engine that built the child (``engine``) has it, marked unpublished."""
    known = results.get(name)
    if not repo.image(name).manifest.publish:
        spec = known.spec if known is not None else await repo.spec(name)
        config = (await image_id(engine, spec) or "") if image_id is not None else ""
        return Parent(name, spec, config, published=False)
    if known is not None and known.digest:
        return Parent(name, known.spec, known.digest)
    spec = await repo.spec(name)
    probe = await writer.client.lookup(parse_reference(spec))
    if probe.status is not Status.PRESENT or not probe.digest:
        raise TransferError(f"parent {spec} is not published ({probe.detail or probe.status})")
    return Parent(name, spec, probe.digest)


async def bases_of(writer: RegistryWriter, repo: Repository, name: str) -> list[Base]:
    """The external base images of ``name`` with their digests: its ``mzbuild.lock``'s
    (what the build used), else what the registry says now."""
    image = repo.image(name)
    pins = read_lock(repo.root / image.directory)
    bases = []
    for reference in external_bases((repo.root / image.dockerfile).read_bytes()):
        digest = pins.get(reference, "")
        if not digest:
            try:
                probe = await writer.client.lookup(parse_reference(reference))
            except UsageError as exc:
                raise TransferError(f"base {reference}: {exc}") from None
            if probe.status is not Status.PRESENT or not probe.digest:
                raise TransferError(f"base {reference}: {probe.detail or probe.status}")
            digest = probe.digest
        bases.append(Base(reference, digest))
    return bases


async def _has_one(
    writer: RegistryWriter, result: ImageResult, holds: Holds | None, layout: str
) -> bool:
    """Whether a found image has its provenance in ``layout`` (with ``holds``: one that
    holds, as ``verify`` says)."""
    if holds is not None:
        return await holds(result.name)
    repository = parse_reference(result.spec.rsplit(":", 1)[0])
    if layout != COSIGN_LAYOUT:
        have = await referrers(writer, repository, result.digest, IN_TOTO_TYPE)
        if not any(dict(d.annotations).get(PREDICATE_ANNOTATION) == PROVENANCE_TYPE for d in have):
            return False
    if layout != OCI_LAYOUT:
        layers = await cosign_layers(writer, repository, result.digest) or []
        return any(layer.predicate_type == PROVENANCE_TYPE for layer in layers)
    return True


def build_windows(
    steps: Sequence[Any], seconds: float, now: float | None = None
) -> dict[str, tuple[float, float]]:
    """Each image's build as wall-clock times (UNIX), from the run's steps."""
    origin = (time.time() if now is None else now) - seconds
    return {
        s.track: (origin + s.start, origin + s.end)
        for s in steps
        if s.phase == "build" and s.status == "done"
    }
