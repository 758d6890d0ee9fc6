"""The run's one cargo build, and each image's outputs staged as its artifacts land.

The moment cargo has reported every artifact an image takes, that image's
files are copied, stripped and extracted (from the paths in cargo's
messages) into its own folder and ``landed(name)`` lets its build start,
while cargo goes on. What was staged stays until the run ends (a build
re-queued to another engine takes it again).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from ..errors import CargoBuildError
from ..model.manifest import CargoBuild
from ..source.repository import Repository
from .cargo import (
    CargoArtifacts,
    cargo_build,
    cargo_request,
    check_profile_and_target,
    needs_landed,
)
from .cargo import stage_outputs as stage_cargo_outputs


@dataclass
class CargoStage:
    """The cargo build of one run and what it staged (see the module docstring)."""

    repo: Repository
    #: The environment cargo and rustc run with.
    environ: Mapping[str, str]
    #: Where cargo's lines go.
    on_line: Callable[[str], None]
    #: Every artifact cargo reported (None: it has not run).
    artifacts: CargoArtifacts | None = None
    #: Each image's staged outputs, and the images whose staging failed (why).
    staged: dict[str, Path] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: The run's directory of staged outputs, one folder per image.
    directory: Path | None = None

    async def build(self, names: Sequence[str], landed: Callable[[str], None]) -> None:
        """One ``cargo build`` for every cargo-build pre-image of ``names``; a cargo
        failure is raised after the images that landed are staged."""
        pre_images = {n: self.repo.image(n).manifest.cargo_builds for n in names}
        request = cargo_request(
            [(self.repo.image(n).manifest.path, p) for n, ps in pre_images.items() for p in ps],
            self.repo.workspace(),
        )
        await check_profile_and_target(self.repo.root, self.repo.options, self.environ)
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="mzbuild-cargo-"))
        waiting = {n: ps for n, ps in pre_images.items() if ps}
        failure: CargoBuildError | None = None
        async with anyio.create_task_group() as tg:

            def arrived(artifacts: CargoArtifacts) -> None:
                for name, pres in list(waiting.items()):
                    if needs_landed(pres, artifacts):
                        del waiting[name]
                        now = CargoArtifacts(dict(artifacts.executables), dict(artifacts.out_dirs))
                        tg.start_soon(self._stage, name, pres, now, landed)

            try:
                self.artifacts = await cargo_build(
                    self.repo.root,
                    request,
                    self.repo.options,
                    environ=self.environ,
                    on_line=self.on_line,
                    on_artifact=arrived,
                )
            except CargoBuildError as exc:
                failure = exc  # (raised once what landed is staged)
        if failure is not None:
            raise failure

    async def _stage(
        self,
        name: str,
        pre_images: Sequence[CargoBuild],
        artifacts: CargoArtifacts,
        landed: Callable[[str], None],
    ) -> None:
        """Stage the cargo outputs of an image whose artifacts all landed; release it."""
        assert self.directory is not None
        directory = self.directory / name
        directory.mkdir()
        where = self.repo.image(name).manifest.path
        try:
            for pre_image in pre_images:
                await stage_cargo_outputs(
                    pre_image, artifacts, directory, where=where, arch=self.repo.options.arch
                )
        except CargoBuildError as exc:
            self.errors[name] = str(exc)  # (its build reports it)
        else:
            self.staged[name] = directory
        landed(name)

    async def aclose(self) -> None:
        """Remove what the run staged (also when it was cancelled)."""
        if self.directory is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(shutil.rmtree, self.directory, True)
            self.directory = None
