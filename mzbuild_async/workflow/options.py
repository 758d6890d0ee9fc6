"""How a run goes about its work: :class:`RunOptions`, the settings every run and plan take."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..attest.dsse import Signer
from ..attest.keyless import BundleSigner
from ..builds.decisions import Workflow
from ..engine.endpoints import Endpoint
from ..model.options import DEFAULT_TRANSFERS, default_jobs
from ..model.publication import Destination
from ..model.status import TIER_ORDER


@dataclass(frozen=True)
class RunOptions:
    """How a run goes about its work."""

    jobs: int = field(default_factory=default_jobs)
    transfers: int = DEFAULT_TRANSFERS
    fail_fast: bool = False
    #: ``build --force``: build the targets even when found.
    force: bool = False
    #: ``--cache-registry``: where ``NAME:buildcache`` layer caches live.
    cache_registry: str | None = None
    #: ``auto``, ``buildkit`` or ``classic`` (through the engine API) or ``buildx`` (the
    #: ``docker buildx`` CLI).
    builder: str = "auto"
    #: Build secrets by id (``--secret``, ``[[secret]]``), for the images that mount them.
    secrets: Mapping[str, bytes] = field(default_factory=dict)
    #: SSH agents by id (``--ssh``): their sockets, for ``RUN --mount=type=ssh``.
    ssh: Mapping[str, str] = field(default_factory=dict)
    #: ``[mirrors]``: each registry's mirror its base images are pulled from.
    base_mirrors: Mapping[str, str] = field(default_factory=dict)
    #: Lookup tiers to consult (``[lookup] tiers``); only those that can say
    #: "published" are used for that (the engine is asked directly).
    tiers: tuple[str, ...] = TIER_ORDER
    #: The engines of a pool, home engine first (empty: the local engine alone).
    engines: tuple[Endpoint, ...] = ()
    #: ``--jobs`` given: builds at once on every engine of a pool.
    slots: int | None = None
    #: ``--transfer-registry``: where ``publish: false`` images travel between engines.
    transfer_registry: str | None = None
    #: A CI step (``--only``): the images this run may build, with the fingerprints
    #: the pipeline expects of them ("" when it does not say); others it would
    #: build are awaited in the registry. None: any image.
    only: Mapping[str, str] | None = None
    #: ``--wait``: seconds to await an image another step builds.
    wait: float = 3600.0
    #: ``--step``: the name of the CI step this run is.
    step: str | None = None
    #: The pipeline run of a CI step (:func:`~..ci.pipeline_run`).
    pipeline_run: str = ""
    #: ``[lookup] trust-cache``: take the disk tier's "present" without asking the
    #: registry, also in ``ensure`` and CI steps (for registries that never delete).
    trust_cache: bool = False
    #: The environment the run works in: the local engine's address, what cargo
    #: runs with. The command line passes its settings' environment; a script
    #: that passes none gets the process's.
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    #: ``ensure``: the registries images are published to besides the primary.
    mirrors: tuple[Destination, ...] = ()
    #: ``ensure --attest``: attach provenance to what is published, signed by these.
    attest: bool = False
    signers: tuple[Signer, ...] = ()
    #: ``--keyless``: each statement also signed through sigstore (attached as a bundle).
    keyless: BundleSigner | None = None
    #: ``--attest-layout``: statements as OCI 1.1 artifacts, at cosign's ``.att`` tag, or both.
    attest_layout: str = "oci"
    #: ``--require-attested``: a found image's provenance must hold, else it is attested.
    require_attested: bool = False

    def confirms(self, workflow: Workflow) -> bool:
        """Whether the run confirms cached "present" answers with the registry:
        ``ensure`` and CI steps guarantee publication, so they do (unless trusted)."""
        return (workflow is Workflow.ENSURE or self.only is not None) and not self.trust_cache
