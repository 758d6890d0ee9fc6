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

from .config import Arch, BuildOptions, Profile, Sanitizer
from .errors import (
    CargoError,
    GitError,
    InputError,
    ManifestError,
    MzbuildError,
    RepositoryError,
    UsageError,
)
from .fingerprint import Fingerprint
from .graph import Image
from .manifest import CargoBuild, Copy, Manifest
from .repository import ImageDescription, InputFile, Repository

__version__ = "0.1.0"

__all__ = [
    "Arch",
    "BuildOptions",
    "CargoBuild",
    "CargoError",
    "Copy",
    "Fingerprint",
    "GitError",
    "Image",
    "ImageDescription",
    "InputError",
    "InputFile",
    "Manifest",
    "ManifestError",
    "MzbuildError",
    "Profile",
    "Repository",
    "RepositoryError",
    "Sanitizer",
    "UsageError",
    "__version__",
]
