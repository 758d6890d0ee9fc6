"""mzbuild_async: an asyncio build-avoidance orchestrator for mzbuild images.

The scripting API::

    import anyio
    from mzbuild_async import BuildOptions, Profile, Repository

    async def main() -> None:
        repo = await Repository.open("path/to/repo", BuildOptions(profile=Profile.DEV))
        for image in repo.resolve(["environmentd"]):
            print(image.name, await repo.spec(image.name))

    anyio.run(main)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BuildError,
    CargoBuildError,
    CargoError,
    DockerBuildError,
    EngineError,
    GitError,
    InputError,
    ManifestError,
    MzbuildError,
    RepositoryError,
    TransferError,
    UsageError,
)
from .model.graph import Image
from .model.manifest import CargoBuild, Copy, Manifest
from .model.options import Arch, BuildOptions, Profile, Sanitizer
from .source.fingerprint import Fingerprint
from .source.repository import ImageDescription, InputFile, Repository
from .support.version import VERSION

if TYPE_CHECKING:
    from .builds.decisions import Workflow
    from .lookup.lookups import Answer, LookupEngine, Lookups
    from .model.status import Status
    from .registry.client import RegistryClient
    from .registry.names import Reference, parse_reference
    from .release.promote import IndexResult, Promotion, promote_images, publish_indexes
    from .workflow.options import RunOptions
    from .workflow.plan import plan_workflow
    from .workflow.results import ImageResult, RunPlan, RunResult
    from .workflow.run import run_workflow

__version__ = VERSION

#: Names imported on first use: the lookups pull in httpx, which the
#: fingerprinting commands do not need.
_LAZY = {
    "Answer": "lookup.lookups",
    "Lookups": "lookup.lookups",
    "LookupEngine": "lookup.lookups",  # (Lookups' earlier name)
    "RegistryClient": "registry.client",
    "Status": "model.status",
    "Reference": "registry.names",
    "parse_reference": "registry.names",
    "Workflow": "builds.decisions",
    "RunOptions": "workflow.options",
    "RunResult": "workflow.results",
    "ImageResult": "workflow.results",
    "run_workflow": "workflow.run",
    "plan_workflow": "workflow.plan",
    "RunPlan": "workflow.results",
    "IndexResult": "release.promote",
    "Promotion": "release.promote",
    "promote_images": "release.promote",
    "publish_indexes": "release.promote",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mzbuild_async' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "Answer",
    "Arch",
    "BuildError",
    "BuildOptions",
    "CargoBuild",
    "CargoBuildError",
    "CargoError",
    "Copy",
    "DockerBuildError",
    "EngineError",
    "Fingerprint",
    "GitError",
    "Image",
    "ImageDescription",
    "ImageResult",
    "IndexResult",
    "InputError",
    "InputFile",
    "LookupEngine",
    "Lookups",
    "Manifest",
    "ManifestError",
    "MzbuildError",
    "Profile",
    "Promotion",
    "Reference",
    "RegistryClient",
    "Repository",
    "RepositoryError",
    "RunOptions",
    "RunPlan",
    "RunResult",
    "Sanitizer",
    "Status",
    "TransferError",
    "UsageError",
    "Workflow",
    "__version__",
    "parse_reference",
    "plan_workflow",
    "promote_images",
    "publish_indexes",
    "run_workflow",
]
