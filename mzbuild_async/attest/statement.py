"""in-toto statements about an image: SLSA provenance, exact to the input file.

The subject is the image's manifest digest in its repository. The
predicate (SLSA Provenance v1) records what decided the image: the
options (profile, arch, coverage, sanitizer) as external parameters; as
resolved dependencies every external base image (reference and digest),
every input file (path and the SHA-1 of its content,
as the fingerprint hashed it), every ``MZFROM`` parent (spec and digest) and the
source revision; as run details the engine it was built on, the CI build
where one is known, and when it started and finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PROVENANCE_TYPE = "https://slsa.dev/provenance/v1"
#: What this build type means is this module's docstring.
BUILD_TYPE = "urn:mzbuild-async:build:v1"
#: A builder id names the engine: ``urn:mzbuild-async:engine:NAME``.
BUILDER_PREFIX = "urn:mzbuild-async:engine:"


@dataclass(frozen=True)
class Subject:
    """The image a statement is about: its repository and manifest digest."""

    repository: str
    digest: str

    def to_json(self) -> dict[str, Any]:
        """The in-toto ResourceDescriptor."""
        algorithm, _, value = self.digest.partition(":")
        return {"name": self.repository, "digest": {algorithm: value}}


@dataclass(frozen=True)
class Input:
    """One input file: its path in the repository and the SHA-1 of its content (hex)."""

    path: str
    sha1: str


@dataclass(frozen=True)
class Parent:
    """An image this one is built ``MZFROM``: its spec and manifest digest.

    A ``publish: false`` parent has no manifest at any registry: ``published`` is
    False and ``digest`` is the built image's config digest (its ID in the engine
    that built this image), or "" where no engine has it any more; its
    fingerprint (the spec's tag) names it all the same.
    """

    name: str
    spec: str
    digest: str
    published: bool = True


@dataclass(frozen=True)
class Base:
    """An external base image: its reference and the manifest digest built from."""

    reference: str
    digest: str


@dataclass(frozen=True)
class Build:
    """What a provenance statement records of one build."""

    name: str
    fingerprint: str
    options: Mapping[str, Any]
    inputs: Sequence[Input]
    parents: Sequence[Parent]
    #: The external base images (``FROM``), each with the digest it was built from.
    bases: Sequence[Base] = ()
    #: The source: ``org.opencontainers.image.source`` and ``.revision`` ("" unknown).
    source: str = ""
    revision: str = ""
    #: The engine that built it, and its platform.
    engine: str = "local"
    platform: str = ""
    #: The CI build this ran in (a URL), when one is known.
    invocation: str = ""
    started: float | None = None
    finished: float | None = None
    version: str = ""


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC, to the second (``2026-12-01T12:00:00Z``)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def in_toto(subject: Subject, predicate_type: str, predicate: dict[str, Any]) -> dict[str, Any]:
    """An in-toto statement about ``subject``."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [subject.to_json()],
        "predicateType": predicate_type,
        "predicate": predicate,
    }


def _parent(parent: Parent) -> dict[str, Any]:
    """A parent as a resolved dependency: by manifest digest where it is published;
    else by fingerprint and (where known) config digest, marked unpublished."""
    found: dict[str, Any] = {
        "name": parent.name,
        "uri": f"oci://{parent.spec}",
        "annotations": {"mzbuild.spec": parent.spec},
    }
    if parent.digest:
        found["digest"] = {parent.digest.partition(":")[0]: parent.digest.partition(":")[2]}
    if not parent.published:
        found["annotations"].update(
            {
                "mzbuild.published": "false",
                "mzbuild.fingerprint": parent.spec.rpartition(":")[2].removeprefix("mzbuild-"),
            }
        )
        if parent.digest:
            found["annotations"]["mzbuild.digest"] = "config"
    return found


def provenance(subject: Subject, build: Build) -> dict[str, Any]:
    """The in-toto statement with the SLSA Provenance v1 predicate of ``build``."""
    dependencies: list[dict[str, Any]] = [
        {"name": i.path, "digest": {"sha1": i.sha1}} for i in build.inputs
    ]
    dependencies += [_parent(p) for p in build.parents]
    if build.revision:  # (the source's URI where a remote names it)
        revision: dict[str, Any] = {"name": "source", "digest": {"gitCommit": build.revision}}
        if build.source:
            revision["uri"] = f"git+{build.source}"
        dependencies.append(revision)
    dependencies += [
        {"name": b.reference, "uri": f"oci://{b.reference}", "digest": {"sha256": b.digest[7:]}}
        for b in build.bases
    ]
    metadata: dict[str, Any] = {}
    if build.invocation:
        metadata["invocationId"] = build.invocation
    if build.started is not None:
        metadata["startedOn"] = timestamp(build.started)
    if build.finished is not None:
        metadata["finishedOn"] = timestamp(build.finished)
    builder: dict[str, Any] = {"id": BUILDER_PREFIX + build.engine}
    if build.version:
        builder["version"] = {"mzbuild-async": build.version}
    return in_toto(
        subject,
        PROVENANCE_TYPE,
        {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "image": build.name,
                    "options": dict(build.options),
                },
                "internalParameters": {
                    "fingerprint": build.fingerprint,
                    "platform": build.platform,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {"builder": builder, "metadata": metadata},
        },
    )
