"""SBOMs: CycloneDX 1.6 JSON for one image, built and validated by cyclonedx-python-lib.

What the image is made of, as this tool knows it: the cargo packages in the
closure of each binary its ``cargo-build`` pre-images put in (name, version,
source, the ``Cargo.lock`` checksum, a ``pkg:cargo`` PURL), and the images it
is built ``MZFROM`` (spec and manifest digest). No scan of the image's
filesystem (OS packages): that needs a scanner this tool does not ship.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ..source.lockfile import Package
from .statement import Base, Parent

#: The predicate type of a CycloneDX SBOM in an in-toto statement.
CYCLONEDX_TYPE = "https://cyclonedx.org/bom"


class SbomError(Exception):
    """The SBOM the library built does not validate (the message says why)."""


def sbom(
    name: str,
    spec: str,
    digest: str,
    packages: Sequence[Package],
    parents: Sequence[Parent],
    *,
    bases: Sequence[Base] = (),
    version: str = "",
    created: float | None = None,
) -> dict[str, Any]:
    """The CycloneDX 1.6 document of one image, validated against the schema."""
    from cyclonedx.model import (
        ExternalReference,
        ExternalReferenceType,
        HashAlgorithm,
        HashType,
        Property,
        XsUri,
    )
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    from packageurl import PackageURL

    image = Component(
        name=name,
        type=ComponentType.CONTAINER,
        version=spec.rpartition(":")[2],
        bom_ref=f"image:{name}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=digest.partition(":")[2])],
        purl=_oci_purl(PackageURL, name, digest),
    )
    bom = Bom()
    bom.metadata.component = image
    if version:
        bom.metadata.properties.add(Property(name="mzbuild-async:version", value=version))
    if created is not None:
        bom.metadata.timestamp = datetime.fromtimestamp(created, UTC)
    for package in packages:
        references = []
        if package.source.startswith(("registry+", "git+")):
            url = package.source.split("+", 1)[1].split("#", 1)[0]
            references.append(
                ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(url))
            )
        component = Component(
            name=package.name,
            version=package.version,
            type=ComponentType.LIBRARY,
            bom_ref=package.purl,
            purl=PackageURL("cargo", name=package.name, version=package.version),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=package.checksum)]
            if package.checksum
            else [],
            external_references=references,
        )
        bom.components.add(component)
        bom.register_dependency(image, [component])
    # (name, version, bom-ref, purl name, manifest digest, config digest, published)
    containers = [
        (p.name, p.spec.rpartition(":")[2], f"image:{p.name}", p.name,
         p.digest if p.published else "", "" if p.published else p.digest, p.published)
        for p in parents
    ] + [
        (b.reference, None, f"base:{b.reference}",
         b.reference.rsplit("/", 1)[-1].split(":")[0], b.digest, "", True)
        for b in bases
    ]  # fmt: skip
    for name_, version_, ref, purl_name, digest_, config, published in containers:
        component = Component(
            name=name_,
            version=version_,
            type=ComponentType.CONTAINER,
            bom_ref=ref,
            hashes=[
                HashType(alg=HashAlgorithm.SHA_256, content=d.partition(":")[2])
                for d in (digest_ or config,)
                if d
            ],
            # (a purl names a manifest: an unpublished image has none)
            purl=_oci_purl(PackageURL, purl_name, digest_) if digest_ else None,
            properties=(
                []
                if published
                else [Property(name="mzbuild:published", value="false")]
                + ([Property(name="mzbuild:config-digest", value=config)] if config else [])
            ),
        )
        bom.components.add(component)
        bom.register_dependency(image, [component])
    text = JsonV1Dot6(bom).output_as_string()
    problem = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if problem is not None:
        raise SbomError(f"{name}: the SBOM does not validate: {problem}")
    document: dict[str, Any] = json.loads(text)
    document.pop("serialNumber", None)  # (random: the same image gives the same SBOM)
    return document


def _oci_purl(purl: Any, name: str, digest: str) -> Any:
    """``pkg:oci/NAME@sha256:...``: an image by digest, as the PURL spec writes it."""
    return purl("oci", name=name, version=digest)
