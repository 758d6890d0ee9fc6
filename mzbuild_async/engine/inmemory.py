"""An engine in memory, shipped for tests and scripting (as ``httpx.MockTransport`` is).

:class:`MemoryEngine` is an :class:`~.protocol.Engine`: it builds (reading
the streamed tar context and its Dockerfile: every ``FROM`` must name an
image it has, or ``scratch``), tags, removes, runs, and pushes to and pulls
from a registry through a :class:`~..registry.client.RegistryClient`: a
real registry, or :class:`~..registry.inmemory.MemoryRegistry` behind its
transport. An image it pushes is an OCI manifest whose config blob carries
the image's ID and labels; a pull of one restores them.

On command it fails a build, stalls builds until released, freezes (every
call hangs, as a ``dockerd`` under ``kill -STOP``), or vanishes (every call
is an :class:`EngineError`, in-flight ones too). Named instances
(:meth:`MemoryEngine.register`) are what ``memory://NAME`` engine URLs open.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import AsyncIterable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import anyio

from ..errors import DockerBuildError, EngineError, ManifestUnknown, TransferError
from ..registry.auth import Credentials
from ..registry.client import RegistryClient
from ..registry.names import Reference, parse_reference
from ..registry.writer import RegistryWriter
from .answers import stream_error
from .listing import familiar, matches
from .protocol import BuildRequest, EngineInfo, LineSink, StepSink, drop, drop_step

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
_FROM = re.compile(r"^\s*FROM\s+(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class MemoryImage:
    """One image: its ID, labels, and the files of its build context."""

    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)
    #: What a pull or push of it moves (default: its files' bytes).
    size: int = -1

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", sum(len(data) for data in self.files.values()))


@dataclass
class MemoryEngine:
    """See the module docstring."""

    name: str = "memory"
    platform: str = "linux/amd64"
    cpus: int = 2
    #: Where pushes go and pulls come from (None: pushing and pulling fail).
    client: RegistryClient | None = None
    #: Seconds each build takes.
    build_seconds: float = 0.0
    images: dict[str, MemoryImage] = field(default_factory=dict)
    #: Tags whose builds fail (the message), e.g. to test what a failure skips.
    failing: dict[str, str] = field(default_factory=dict)
    #: Tags whose next build fails (the message), once; a second build succeeds.
    failing_once: dict[str, str] = field(default_factory=dict)
    #: Registry hosts this engine cannot reach (its pulls and pushes there fail as
    #: dockerd's do when its link to the registry is cut; it still answers us).
    cut_from: set[str] = field(default_factory=set)
    #: Bytes per second of its link to the registries: a pull or push of an image
    #: takes its size over this (None: no time).
    link_rate: float | None = None
    #: What ``run`` writes and returns, given the spec and the arguments.
    runner: Callable[[str, Sequence[str]], tuple[bytes, int]] | None = None
    #: Every call, in order: (method, spec or "").
    calls: list[tuple[str, str]] = field(default_factory=list)

    _named: ClassVar[dict[str, MemoryEngine]] = {}

    def __post_init__(self) -> None:
        self._gone: str | None = None
        self._thawed = anyio.Event()
        self._thawed.set()
        self._released = anyio.Event()
        self._released.set()
        self._moved: dict[str, int] = {}

    # -- named instances (memory://NAME) ------------------------------------------

    @classmethod
    def register(cls, engine: MemoryEngine) -> MemoryEngine:
        """Make ``memory://NAME`` open ``engine`` (its ``name``)."""
        cls._named[engine.name] = engine
        return engine

    @classmethod
    def named(cls, name: str) -> MemoryEngine:
        """The engine registered as ``name`` (a new one when there is none)."""
        return cls._named.get(name) or cls.register(cls(name=name))

    # -- what tests command ---------------------------------------------------------

    def vanish(self, why: str = "it vanished") -> None:
        """Every call from now on, in flight ones included, is an EngineError."""
        self._gone = why
        self._thawed.set()
        self._released.set()

    def freeze(self) -> None:
        """Every call from now on hangs until :meth:`thaw` (a ``kill -STOP``)."""
        self._thawed = anyio.Event()

    def thaw(self) -> None:
        """End :meth:`freeze`."""
        self._thawed.set()

    def stall(self) -> None:
        """Builds wait (after starting) until :meth:`release`."""
        self._released = anyio.Event()

    def release(self) -> None:
        """End :meth:`stall`."""
        self._released.set()

    async def _enter(self, method: str, spec: str = "") -> None:
        self.calls.append((method, spec))
        await self._thawed.wait()
        self._check()

    def _check(self) -> None:
        if self._gone is not None:
            raise EngineError(f"engine {self.name} could not be reached ({self._gone})")

    # -- the Engine protocol --------------------------------------------------------

    async def connect(self) -> None:
        """Nothing to connect."""
        await self._enter("connect")

    async def ping(self) -> str:
        """A version string."""
        await self._enter("ping")
        return "memory"

    async def info(self) -> EngineInfo:
        """Its platform and CPU count; its identity is its name."""
        await self._enter("info")
        return EngineInfo(self.platform, self.cpus, "memory", f"memory:{self.name}")

    async def exists(self, spec: str) -> bool:
        """Whether it has ``spec``."""
        await self._enter("exists", spec)
        return spec in self.images

    async def tags(self, patterns: Sequence[str]) -> set[str]:
        """Its tags the ``reference`` filter ``patterns`` takes in, as the engine
        writes them (one call: ``("tags", "")``)."""
        await self._enter("tags")
        tags = {familiar(spec) for spec in self.images}
        return {tag for tag in tags if any(matches(p, tag) for p in patterns)}

    async def imports_cache(self) -> bool:
        """No: like the classic builder, it builds from the images it has."""
        return False

    async def image_id(self, spec: str) -> str | None:
        """The ID of ``spec`` (None when it has none)."""
        await self._enter("exists", spec)
        found = self.images.get(spec)
        return found.id if found is not None else None

    async def build(
        self,
        request: BuildRequest,
        context: AsyncIterable[bytes],
        on_line: LineSink = drop,
        on_step: StepSink = drop_step,
    ) -> str:
        """Read the context, check its ``FROM``s, make the image (or fail as told)."""
        await self._enter("build", request.tag)
        buffer = b"".join([chunk async for chunk in context])
        files = _untar(buffer)
        dockerfile = files.get(request.dockerfile)
        if dockerfile is None:
            raise DockerBuildError(f"docker build of {request.tag} failed: no {request.dockerfile}")
        bases = _FROM.findall(dockerfile.decode(errors="replace"))
        inherited: dict[str, bytes] = {}
        for step, base in enumerate(bases, 1):
            on_line(f"Step {step}/{len(bases) + 1} : FROM {base}")
            if base != "scratch" and base not in self.images:
                raise DockerBuildError(
                    f"docker build of {request.tag} failed at Step {step}/{len(bases) + 1}:"
                    f" pull access denied for {base}, repository does not exist"
                )
            if base != "scratch":
                inherited.update(self.images[base].files)
        if self.build_seconds:
            await anyio.sleep(self.build_seconds)
        await self._released.wait()
        await self._thawed.wait()
        self._check()
        failure = self.failing.get(request.tag) or self.failing_once.pop(request.tag, None)
        if failure is not None:
            raise DockerBuildError(
                f"docker build of {request.tag} failed at Step {len(bases) + 1}: {failure}",
                (failure,),
            )
        digest = hashlib.sha256(buffer)
        digest.update(json.dumps([request.buildargs, request.labels], sort_keys=True).encode())
        for base in bases:
            digest.update(self.images[base].id.encode() if base in self.images else b"scratch")
        image = MemoryImage(
            f"sha256:{digest.hexdigest()}", dict(request.labels), {**inherited, **files}
        )
        for tag in (request.tag, *request.also_tag):
            self.images[tag] = image
        on_line(f"Successfully built {image.id[7:19]}")
        return image.id

    async def tag(self, source: str, target: str) -> None:
        """Tag ``source`` as ``target``."""
        await self._enter("tag", target)
        if source not in self.images:
            raise TransferError(f"could not tag {source} as {target}: no such image")
        self.images[target] = self.images[source]

    async def remove(self, spec: str) -> None:
        """Forget ``spec``."""
        await self._enter("remove", spec)
        self.images.pop(spec, None)

    async def push(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = drop
    ) -> str:
        """Write ``spec`` to its registry: its config blob, then its manifest."""
        await self._enter("push", spec)
        image = self.images.get(spec)
        if image is None:
            raise TransferError(f"push of {spec} failed: no such image")
        self._reach(f"push of {spec}", spec)
        await self._carry(spec, image.size)
        writer, ref = self._writer(spec)
        config = json.dumps(
            {"architecture": self.platform.split("/")[1], "os": "linux",
             "config": {"Labels": dict(image.labels)},
             "mzbuild-memory": {"id": image.id, "size": image.size},
             "rootfs": {"type": "layers", "diff_ids": []}},
            sort_keys=True,
        ).encode()  # fmt: skip
        digest = await writer.put_blob(ref, config)
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "layers": [],
             "config": {"mediaType": CONFIG_TYPE, "digest": digest, "size": len(config)}},
            sort_keys=True,
        ).encode()  # fmt: skip
        pushed = await writer.put_manifest(ref, MANIFEST_TYPE, manifest)
        self._check()
        on_line(f"{ref.reference}: digest: {pushed} size: {len(manifest)}")
        return pushed

    async def pull(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = drop
    ) -> None:
        """Read ``spec`` from its registry (ManifestUnknown when it is not there)."""
        await self._enter("pull", spec)
        self._reach(f"pull of {spec}", spec)
        writer, ref = self._writer(spec)
        document = await writer.manifest(ref)
        if document is None:
            raise ManifestUnknown(f"pull of {spec} failed: manifest unknown")
        image_id, labels, size = document.digest, {}, 0
        config = document.json().get("config")
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            data = (await writer.blob(ref, config["digest"])).json()
            image_id = str(data.get("mzbuild-memory", {}).get("id", image_id))
            size = int(data.get("mzbuild-memory", {}).get("size", 0))
            labels = dict(data.get("config", {}).get("Labels") or {})
        await self._carry(spec, size)
        self._check()
        self.images[spec] = MemoryImage(image_id, labels, size=size)
        on_line(f"Status: Downloaded newer image for {spec}")

    async def _carry(self, spec: str, size: int) -> None:
        """Move ``size`` bytes of ``spec`` over the link (taking ``link_rate``'s time)."""
        if self.link_rate:
            await anyio.sleep(size / self.link_rate)
        self._moved[spec] = size

    def moved(self, spec: str) -> int | None:
        """Bytes the last pull or push of ``spec`` moved (the image's size)."""
        return self._moved.get(spec)

    def _reach(self, what: str, spec: str) -> None:
        """Fail as dockerd does when it cannot connect to ``spec``'s registry."""
        host = parse_reference(spec).api_host
        if host in self.cut_from:
            said = f'Get "https://{host}/v2/": dial tcp {host}: connect: network is unreachable'
            raise stream_error(what, {"error": said})

    async def run(self, spec: str, args: Sequence[str], on_output: Callable[[bytes], None]) -> int:
        """What ``runner`` says (default: the spec and arguments echoed, status 0)."""
        await self._enter("run", spec)
        if spec not in self.images:
            raise EngineError(f"could not create a container from {spec}: no such image")
        output, status = (self.runner or _echo)(spec, args)
        on_output(output)
        return status

    async def aclose(self) -> None:
        """Nothing to close (the registry client belongs to whoever made it)."""

    def _writer(self, spec: str) -> tuple[RegistryWriter, Reference]:
        if self.client is None:
            raise TransferError(f"engine {self.name} has no registry to reach {spec}")
        return RegistryWriter(self.client), parse_reference(spec)


def _echo(spec: str, args: Sequence[str]) -> tuple[bytes, int]:
    return f"{spec} {' '.join(args)}\n".encode(), 0


def _untar(data: bytes) -> dict[str, bytes]:
    """The regular files of a tar archive, by name."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        for member in archive:
            if member.isfile():
                extracted = archive.extractfile(member)
                files[member.name] = extracted.read() if extracted is not None else b""
    return files
