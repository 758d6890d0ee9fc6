"""A repository opened for one run: images, inputs, fingerprints and specs.

:class:`Repository` is the façade the CLI, the scheduler and scripts use. It
reads the git view once, parses every image, loads the Cargo workspace only
if some image needs it, and hashes each distinct input file once however
many images share it.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import stat
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from ..errors import CargoError, ManifestError, RepositoryError, shown_path, single_error
from ..model.graph import DOCKERFILE_NAME, Image, ImageGraph, nested_directories
from ..model.manifest import parse_dockerfile, parse_manifest
from ..model.options import BuildOptions
from ..store.digests import DigestCache
from ..store.layout import default_cache_dir
from ..support import logs
from .cargo import Workspace, load_workspace
from .fingerprint import Fingerprint, fingerprint, finish_self_digest, input_record
from .gitview import GitView, find_toplevel, load_git_view, source_labels
from .hashing import DEFAULT_HASH_WORKERS, FileDigest, FileHasher, Hasher
from .inputs import context_files, image_inputs

MANIFEST_NAME = "mzbuild.yml"
#: Manifests under this directory are not images (the original skips it).
IGNORED_PREFIX = "misc/python/"


#: The largest manifest or Dockerfile we read (Materialize's largest is a few KiB).
MAX_DEFINITION_BYTES = 1 << 20


def _read(root: Path, path: str) -> bytes:
    """A manifest or Dockerfile: a regular file (after symlinks) of bounded size."""
    shown = shown_path(path)
    try:
        # Non-blocking, so that a FIFO cannot hold the open.
        fd = os.open(root / path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        raise ManifestError(f"{shown}: cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(
                f"{shown}: not a regular file (a device, FIFO, socket or directory,"
                " maybe through a symlink); make it a file"
            )
        # Sized by the stat, read to the end, but never past the cap.
        chunks: list[bytes] = []
        want = min(st.st_size, MAX_DEFINITION_BYTES) + 1
        got = 0
        while got <= MAX_DEFINITION_BYTES and (chunk := os.read(fd, want)):
            chunks.append(chunk)
            got += len(chunk)
            want = MAX_DEFINITION_BYTES + 1 - got
        data = b"".join(chunks)
    except OSError as exc:
        raise ManifestError(f"{shown}: cannot read: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_DEFINITION_BYTES:
        raise ManifestError(
            f"{shown}: larger than {MAX_DEFINITION_BYTES // 1024} KiB; is this really"
            " a manifest or Dockerfile?"
        )
    return data


def discover(view: GitView) -> list[str]:
    """Repository-relative paths of every image manifest, sorted."""
    return sorted(p for p in view.named(MANIFEST_NAME) if not p.startswith(IGNORED_PREFIX))


def load_images(
    root: Path, view: GitView, *, strict: bool = False, warnings: list[str] | None = None
) -> dict[str, Image]:
    """Parse every image in the view into a dict keyed and sorted by name.

    Unknown manifest keys are logged as warnings (or collected in ``warnings``),
    or raised with ``strict``.
    """
    images: dict[str, Image] = {}
    for manifest_path in discover(view):
        manifest = parse_manifest(_read(root, manifest_path), manifest_path)
        for warning in manifest.warnings:
            if strict:
                raise ManifestError(warning.replace("; --strict makes it an error", ""))
            if warnings is None:
                logs.warning(warning)
            else:
                warnings.append(warning)
        directory = posixpath.dirname(manifest_path)
        dockerfile = posixpath.join(directory, DOCKERFILE_NAME)
        if dockerfile not in view:
            raise ManifestError(
                f"{dockerfile}: missing; every image directory needs a Dockerfile"
                f" next to its {MANIFEST_NAME}"
            )
        image = Image(manifest, directory, parse_dockerfile(_read(root, dockerfile), dockerfile))
        other = images.get(image.name)
        if other is not None:
            raise RepositoryError(
                f"duplicate image name {image.name!r} in {other.manifest.path} and"
                f" {manifest_path}; image names must be unique"
            )
        images[image.name] = image
    return dict(sorted(images.items()))


async def _toplevel_of(path: Path) -> Path:
    """The git top level of a ``--repo`` that is not one itself, with a note.

    Paths in fingerprints are relative to the top level, as the original
    computes them: a subdirectory as root would give other fingerprints.
    """
    top = await find_toplevel(path)
    if top.resolve() != path.resolve():
        logs.warning(
            f"{path} is inside the git repository at {top}; using its top level"
            " (fingerprints are computed from there)"
        )
        return top
    return path


@dataclass(frozen=True)
class InputFile:
    """One input file of an image, as the fingerprint saw it."""

    path: str
    mode: int
    sha1: bytes
    size: int


@dataclass(frozen=True)
class ImageDescription:
    """Everything that decides one image's fingerprint."""

    image: Image
    fingerprint: Fingerprint
    spec: str
    inputs: tuple[InputFile, ...]
    #: Direct dependencies' fingerprints, by name.
    dependencies: Mapping[str, Fingerprint]


class Repository:
    """An mzbuild repository opened with fixed build options.

    Open one with :meth:`open`; it caches inputs, file digests and
    fingerprints for its lifetime, so it stands for one consistent view of
    the working tree. Open a new one after files change.
    """

    def __init__(
        self,
        root: Path,
        options: BuildOptions,
        view: GitView,
        graph: ImageGraph,
        *,
        hasher: Hasher | None = None,
    ) -> None:
        self.root = root
        self.options = options
        self.view = view
        self.graph = graph
        self._nested = nested_directories(graph.images)
        self._workspace: Workspace | CargoError | None = None
        self._inputs: dict[str, tuple[str, ...]] = {}
        self._fingerprints: dict[str, Fingerprint] = {}
        self._records: dict[str, bytes] = {}
        self._labels: dict[str, str] | None = None
        #: Each image's hash of its input records, before the options go in.
        self._record_hashes: dict[str, hashlib._Hash] = {}
        self.hasher: Hasher = hasher or FileHasher(root)

    def variant(self, options: BuildOptions) -> Repository:
        """The same tree under other build options: files, inputs, the Cargo
        workspace and the records' hashes are shared, so only the options are hashed
        again."""
        other = Repository(self.root, options, self.view, self.graph, hasher=self.hasher)
        other._nested = self._nested
        other._workspace = self._workspace
        other._inputs = self._inputs
        other._records = self._records
        other._record_hashes = self._record_hashes
        other._labels = self._labels
        return other

    @classmethod
    async def open(
        cls,
        root: str | os.PathLike[str] | None = None,
        options: BuildOptions | None = None,
        *,
        strict: bool = False,
        hash_workers: int = DEFAULT_HASH_WORKERS,
        cache_dir: str | os.PathLike[str] | None = None,
        digest_cache: bool | DigestCache = False,
        view: GitView | None = None,
    ) -> Repository:
        """Open the repository at ``root`` (default: git top level of the cwd).

        ``options`` default to :meth:`BuildOptions.from_environ`; ``strict``
        turns unknown manifest keys into errors. With ``digest_cache``, file
        digests persist across runs in ``cache_dir`` (default:
        :func:`default_cache_dir`), keyed by each file's stat. ``view``
        replaces the ``git ls-files`` listing (a tree at another revision).
        """
        if root is None:
            path = await find_toplevel(Path.cwd())
        else:
            path = Path(root).absolute()
            if view is None and not (path / ".git").exists():
                path = await _toplevel_of(path)
        if options is None:
            options = BuildOptions.from_environ(os.environ)
        cache = digest_cache if isinstance(digest_cache, DigestCache) else None
        if digest_cache is True:
            directory = Path(cache_dir) if cache_dir else default_cache_dir(os.environ)
            cache = DigestCache(directory, str(path))
        hasher = FileHasher(path, hash_workers, cache)
        workspace: list[Workspace | CargoError] = []

        async def read_workspace() -> None:
            # Read ahead: its result (or error) is used only if an image needs Cargo.
            try:
                workspace.append(await anyio.to_thread.run_sync(load_workspace, path))
            except CargoError as exc:
                workspace.append(exc)

        # While git lists the tree, worker threads read the digest cache and
        # the Cargo workspace, which need nothing from the listing.
        with single_error():
            async with anyio.create_task_group() as tg:
                if (path / "Cargo.toml").is_file():
                    tg.start_soon(read_workspace)
                tg.start_soon(hasher.preload)
                if view is None:
                    view = await load_git_view(path)
                graph = ImageGraph.build(load_images(path, view, strict=strict))
        assert view is not None
        repo = cls(path, options, view, graph, hasher=hasher)
        repo._workspace = workspace[0] if workspace else None
        return repo

    def edited(
        self, changed: Collection[str], hasher: Hasher, options: BuildOptions | None = None
    ) -> Repository:
        """The same tree with the contents or modes of the ``changed`` files
        different (no file added, removed or renamed, no manifest, Dockerfile or
        ``Cargo.toml`` changed): the images, inputs and Cargo workspace are kept; only
        the records of those files, and the hashes of the images that take them, are
        computed again."""
        other = Repository(self.root, options or self.options, self.view, self.graph, hasher=hasher)
        other._nested = self._nested
        other._workspace = self._workspace
        other._inputs = self._inputs
        other._records = {p: r for p, r in self._records.items() if p not in changed}
        other._record_hashes = {
            name: h
            for name, h in self._record_hashes.items()
            if not any(p in changed for p in self._inputs.get(name, ()))
        }
        return other

    async def source_labels(self) -> Mapping[str, str]:
        """``org.opencontainers.image.source`` and ``.revision`` for the images built
        here (asked of git once; not fingerprint inputs)."""
        if self._labels is None:
            self._labels = await source_labels(self.root)
        return self._labels

    @property
    def images(self) -> Mapping[str, Image]:
        """Every image, keyed and sorted by name."""
        return self.graph.images

    def image(self, name: str) -> Image:
        """The image called ``name`` (a clear error if there is none)."""
        return self.graph.image(name)

    def resolve(self, targets: Iterable[str]) -> tuple[Image, ...]:
        """The targets with their transitive dependencies, dependencies first."""
        return self.graph.resolve(targets)

    def workspace(self) -> Workspace:
        """The Cargo workspace, read on first use."""
        if self._workspace is None:
            self._workspace = load_workspace(self.root)
        if isinstance(self._workspace, CargoError):
            raise self._workspace
        return self._workspace

    def inputs(self, name: str) -> tuple[str, ...]:
        """The sorted input paths of image ``name``."""
        cached = self._inputs.get(name)
        if cached is None:
            image = self.image(name)
            cached = image_inputs(
                self.view,
                image.directory,
                self._nested[name],
                image.manifest.pre_images,
                self.workspace,
                image.manifest.path,
            )
            self._inputs[name] = cached
        return cached

    def context_files(self, name: str) -> list[str]:
        """The visible files of image ``name``'s directory (nested images' excluded)."""
        image = self.image(name)
        return context_files(self.view, image.directory, self._nested[name])

    async def fingerprints(self, targets: Iterable[str]) -> dict[str, Fingerprint]:
        """Fingerprints of the targets and their dependencies, by name.

        All the input files these images need are hashed in one concurrent
        round, each distinct file once.
        """
        images = self.resolve(targets)
        todo = [i.name for i in images if i.name not in self._fingerprints]
        unhashed = [name for name in todo if name not in self._record_hashes]
        if unhashed:
            await self._hash_inputs(unhashed)
        if todo:
            for name in todo:  # dependencies come first
                image = self.images[name]
                records = self._record_hashes.get(name)
                if records is None:
                    records = hashlib.sha1(b"".join(self._records[p] for p in self.inputs(name)))
                    self._record_hashes[name] = records
                own = finish_self_digest(records.copy(), image.manifest.pre_images, self.options)
                deps = {d: self._fingerprints[d] for d in image.dependencies}
                self._fingerprints[name] = fingerprint(own, deps)
        return {i.name: self._fingerprints[i.name] for i in images}

    async def _hash_inputs(self, names: list[str]) -> None:
        """Hash every input of ``names``, overlapping hashing with Cargo parsing.

        The context files need no Cargo workspace, so they are hashed while
        the workspace (a TOML parse per crate) loads in a worker thread.
        """
        needs_cargo = self._workspace is None and any(
            self.images[n].manifest.cargo_builds for n in names
        )
        with single_error():
            async with anyio.create_task_group() as tg:
                if needs_cargo:
                    contexts = {
                        path
                        for name in names
                        for path in context_files(
                            self.view, self.images[name].directory, self._nested[name]
                        )
                    }
                    tg.start_soon(self._hash_files, contexts)
                    await anyio.to_thread.run_sync(self.workspace)
                tg.start_soon(self._hash_files, {p for n in names for p in self.inputs(n)})

    async def _hash_files(self, paths: Iterable[str]) -> None:
        for path, digest in (await self.hasher.digests(paths)).items():
            if path not in self._records:
                self._records[path] = input_record(path, digest)

    async def fingerprint(self, name: str) -> Fingerprint:
        """The fingerprint of image ``name``."""
        known = self._fingerprints.get(name)
        if known is not None:  # no walk of its dependencies again
            return known
        return (await self.fingerprints([name]))[name]

    async def specs(self, targets: Iterable[str]) -> dict[str, str]:
        """Image specs (``registry/prefix+name:mzbuild-FP``) of the targets and deps."""
        fps = await self.fingerprints(targets)
        return {name: self.options.spec(name, str(fp)) for name, fp in fps.items()}

    async def spec(self, name: str) -> str:
        """The image spec of image ``name``."""
        return self.options.spec(name, str(await self.fingerprint(name)))

    async def describe(self, name: str) -> ImageDescription:
        """The fingerprint of ``name`` with every input and dependency behind it."""
        fp = await self.fingerprint(name)
        image = self.image(name)
        digests: Mapping[str, FileDigest] = await self.hasher.digests(self.inputs(name))
        inputs = tuple(
            InputFile(p, digests[p].mode, digests[p].sha1, digests[p].size)
            for p in self.inputs(name)
        )
        return ImageDescription(
            image=image,
            fingerprint=fp,
            spec=self.options.spec(name, str(fp)),
            inputs=inputs,
            dependencies={d: self._fingerprints[d] for d in image.dependencies},
        )
