"""The Docker engine, through aiodocker: exists, build, pull, push, tag, run.

Every aiodocker/aiohttp failure is mapped here to :class:`EngineError` (the
engine is absent or went away) or to a :class:`BuildError` subclass (this
image's work failed). Progress streams are read line by line and handed to
``on_line``; a stream that ends without the engine's success marker is a
failure, never a silent success (aiodocker ends the stream quietly when the
connection drops).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import anyio
import anyio.abc

from ..errors import DockerBuildError, EngineError, ManifestUnknown, TransferError, reason
from ..registry.auth import Credentials
from ..registry.names import parse_reference
from ..support import logs
from ..support.lines import strip_ansi
from . import protocol
from .answers import (
    AUTO,
    BUILDKIT,
    CLASSIC,
    MANIFEST_UNKNOWN,
    PUSHED_DIGEST,
    build_params,
    builder_for,
    identity,
    is_connection_error,
    moved_bytes,
    registry_auth,
    stream_error,
)
from .buildkit import Progress
from .endpoints import Endpoint, cpu_count, docker_platform
from .listing import image_tags
from .protocol import TAIL_LINES, BuildRequest, EngineInfo, LineSink, StepSink, drop_step
from .protocol import drop as _drop
from .session import SessionServer, api_connection, build_session

T = TypeVar("T")

BUILDER_NAMES = {BUILDKIT: "BuildKit (the engine API, version 2)", CLASSIC: "the classic builder"}
#: The build argument that makes BuildKit write its cache metadata into the image.
INLINE_CACHE = "BUILDKIT_INLINE_CACHE"
#: The ids of the BuildKit stream's lines: a status message, the image built.


class DockerEngine:
    """One connection to a Docker engine: the local one (``DOCKER_HOST``
    honoured), or the one at ``endpoint`` (a pool member)."""

    def __init__(
        self,
        endpoint: Endpoint | None = None,
        *,
        request_seconds: float = protocol.REQUEST_SECONDS,
        local: Endpoint | None = None,
        builder: str = AUTO,
    ) -> None:
        self.endpoint = endpoint
        #: ``auto`` (BuildKit where the engine has it), ``buildkit`` or ``classic``.
        self.builder = builder
        self._chosen: str | None = None
        #: Where the local engine is (:func:`~.endpoints.local_endpoint`; None: where
        #: aiodocker finds one).
        self.local = local
        self.request_seconds = request_seconds
        self._docker: Any = None
        self._lock = anyio.Lock()
        #: Inspections in flight at once (see :data:`~.protocol.INSPECTIONS`).
        self.inspections = anyio.CapacityLimiter(protocol.INSPECTIONS)
        self._moved: dict[str, dict[str, int]] = {}

    def moved(self, spec: str) -> int | None:
        """Bytes the last pull or push of ``spec`` moved (its layers the other side lacked)."""
        layers = self._moved.get(spec)
        return None if layers is None else sum(layers.values())

    def _moving(self, spec: str) -> dict[str, int]:
        layers: dict[str, int] = {}
        self._moved[spec] = layers
        return layers

    async def bounded(self, doing: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, or EngineError when the engine gives no answer in time."""
        with anyio.move_on_after(self.request_seconds):
            return await call()
        raise EngineError(
            f"{self.label} gave no answer in {self.request_seconds:g} s while {doing};"
            " is it frozen or overloaded?"
        )

    async def _ask(self, doing: str, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` within the request bound; failures as :class:`EngineError`."""
        try:
            return await self.bounded(doing, call)
        except EngineError:
            raise
        except Exception as exc:
            if is_connection_error(exc) or getattr(exc, "status", 0) == 900:
                raise self.engine_error(exc, doing) from None
            raise EngineError(f"{self.label} refused {what}: {exc}") from None

    @property
    def label(self) -> str:
        """How messages name this engine."""
        if self.endpoint is None:
            return "the Docker engine"
        return f"engine {self.endpoint.name} ({self.endpoint.url})"

    async def client(self) -> Any:
        """The aiodocker client, created (and aiodocker imported) on first use."""
        async with self._lock:
            if self._docker is None:
                module = await anyio.to_thread.run_sync(importlib.import_module, "aiodocker")
                target = self.endpoint or self.local
                if target is None:
                    self._docker = module.Docker()
                else:
                    context = target.ssl_context()
                    try:
                        self._docker = module.Docker(url=target.url, ssl_context=context)
                    except Exception as exc:  # e.g. ssh://: no known_hosts entry, no key
                        message = getattr(exc, "message", None) or str(exc)
                        raise EngineError(f"{self.label}: cannot connect: {message}") from None
        return self._docker

    async def connect(self) -> None:
        """Import aiodocker and create the client now (a worker thread does the import)."""
        await self.client()

    async def aclose(self) -> None:
        """Close the connection."""
        if self._docker is not None:
            await self._docker.close()
            self._docker = None

    def engine_error(self, exc: BaseException, doing: str) -> EngineError:
        if self.endpoint is not None:
            return EngineError(f"{self.label} could not be reached while {doing} ({reason(exc)})")
        return EngineError(
            f"the Docker engine could not be reached while {doing} ({reason(exc)}); start dockerd"
            " (scripts/setup-system) or set DOCKER_HOST"
        )

    async def _version(self) -> dict[str, Any]:
        """``GET /version``; EngineError when the engine is absent or refuses it."""
        docker = await self.client()
        try:
            version = await self.bounded("connecting", docker.version)
        except EngineError:
            raise
        except Exception as exc:
            if is_connection_error(exc) or getattr(exc, "status", 0) == 900:
                raise self.engine_error(exc, "connecting") from None
            raise EngineError(f"{self.label} refused a version request: {exc}") from None
        return version if isinstance(version, dict) else {}

    async def ping(self) -> str:
        """The engine's version; EngineError if there is no engine."""
        return str((await self._version()).get("Version", "?"))

    async def info(self) -> EngineInfo:
        """Platform, CPU count and version, from ``GET /info``."""
        docker = await self.client()
        info = await self._ask("connecting", docker.system.info, "an info request")
        return EngineInfo(
            docker_platform(info),
            cpu_count(info),
            str(info.get("ServerVersion", "")),
            identity(info),
        )

    async def exists(self, spec: str) -> bool:
        """Whether the engine has an image tagged ``spec``."""
        return await self.image_id(spec) is not None

    async def tags(self, patterns: Sequence[str]) -> set[str]:
        """The engine's tags matching ``patterns`` (one ``GET /images/json``)."""
        docker = await self.client()
        filters = {"reference": list(patterns)}
        async with self.inspections:
            listed = await self._ask(
                "listing images", lambda: docker.images.list(filters=filters), "a listing"
            )
        return image_tags(listed if isinstance(listed, list) else [])

    async def image_id(self, spec: str) -> str | None:
        """The ID (config digest) of the image tagged ``spec``; None when there is none."""
        docker = await self.client()
        import aiodocker

        try:
            async with self.inspections:  # (the wait here is not the request's time)
                found = await self.bounded(
                    f"looking for {spec}", lambda: docker.images.inspect(spec)
                )
        except aiodocker.exceptions.DockerError as exc:
            if exc.status == 404:
                return None
            if exc.status == 900:
                raise self.engine_error(exc, f"looking for {spec}") from None
            raise EngineError(
                f"{self.label} answered {exc.status} for {spec}: {exc.message}"
            ) from None
        except Exception as exc:
            if is_connection_error(exc):
                raise self.engine_error(exc, f"looking for {spec}") from None
            raise
        return str(found.get("Id") or "") if isinstance(found, dict) else ""

    async def _stream(
        self,
        path: str,
        *,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        data: Any = None,
        doing: str,
    ) -> Any:
        """Yield the JSON lines of a progress stream; connection failures are EngineError."""
        docker = await self.client()
        from aiodocker.jsonstream import json_stream_stream

        try:
            async with docker._query(
                path,
                "POST",
                params=params,
                headers=headers,
                data=data,
                timeout=docker._resolve_long_running_timeout(None),
            ) as response:
                async for item in json_stream_stream(response, raise_on_error=False):
                    yield item
        except EngineError:
            raise
        except Exception as exc:
            import aiodocker

            if isinstance(exc, aiodocker.exceptions.DockerError) and exc.status != 900:
                kind = (
                    ManifestUnknown if MANIFEST_UNKNOWN.search(str(exc.message)) else TransferError
                )
                raise kind(
                    f"{doing}: the engine answered {exc.status}: {exc.message}",
                    transient=exc.status >= 500,
                ) from None
            if is_connection_error(exc) or isinstance(exc, aiodocker.exceptions.DockerError):
                raise self.engine_error(exc, doing) from None
            raise

    async def chosen_builder(self) -> str:
        """``buildkit`` or ``classic``: what this engine builds with (asked once: its
        ``/version`` says an API of 1.39 or later, on Linux, and is not podman's). One
        line at ``-v`` says which, per engine."""
        if self._chosen is None:
            self._chosen = self.builder if self.builder != AUTO else await self._detect()
            how = BUILDER_NAMES[self._chosen]
            logs.get_logger().info(f"{self.label}: builds with {how}")
        return self._chosen

    async def _detect(self) -> str:
        return builder_for(await self._version())

    async def imports_cache(self) -> bool:
        """BuildKit reads a ``cachefrom`` image from its registry; the classic builder
        needs it pulled first."""
        return await self.chosen_builder() == BUILDKIT

    async def build(
        self,
        request: BuildRequest,
        context: AsyncIterable[bytes],
        on_line: LineSink = _drop,
        on_step: StepSink = drop_step,
    ) -> str:
        """Build ``request.tag`` from a streamed tar context; returns the image ID
        (BuildKit's steps go to ``on_step`` as they finish; the classic builder's are
        only lines)."""
        if await self.chosen_builder() == BUILDKIT:
            progress = Progress(on_step)
            needs = request.secrets or request.ssh or request.session
            if not (needs or (request.logins and self._sessions_reach())):
                # (registry logins only where a session can be opened; else anonymous)
                return await self._build_buildkit(request, context, on_line, progress)
            server = SessionServer(request.secrets, request.ssh, request.logins)
            async with build_session(self._raw_stream, server, self.label) as session:
                return await self._build_buildkit(request, context, on_line, progress, session)
        if request.secrets or request.ssh or request.session:
            raise DockerBuildError(
                f"docker build of {request.tag}: secret and SSH mounts need BuildKit, and"
                f" {self.label} builds the classic way (--builder classic, or an engine"
                " without BuildKit)"
            )
        return await self._build_classic(request, context, on_line)

    async def _build_classic(
        self, request: BuildRequest, context: AsyncIterable[bytes], on_line: LineSink
    ) -> str:
        """The classic builder's build: its ``Step N/M`` lines, its last lines on failure."""
        params = {**build_params(request, request.buildargs), "rm": "1", "forcerm": "1"}
        tail: list[str] = []
        step = ""
        image_id = ""
        pending = ""
        async for item in self._stream(
            "build",
            params=params,
            headers={"content-type": "application/x-tar"},
            data=context,
            doing=f"building {request.tag}",
        ):
            if "error" in item or "errorDetail" in item:
                message = str(item.get("error") or item.get("errorDetail", {}).get("message"))
                where = f" at {step}" if step else ""
                raise DockerBuildError(
                    f"docker build of {request.tag} failed{where}: {message.strip()}",
                    tuple(tail[-TAIL_LINES:]),
                )
            aux = item.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = str(aux["ID"])
            text = pending + str(item.get("stream", ""))
            *lines, pending = text.split("\n")
            for raw in lines:
                line = strip_ansi(raw.rstrip("\r"))
                if line.startswith("Step "):
                    step = line
                tail.append(line)
                del tail[: -TAIL_LINES * 2]
                on_line(line)
                if line.startswith("Successfully built ") and not image_id:
                    image_id = line.split()[-1]
        if pending:
            on_line(pending)
        return await self._built(request, image_id)

    async def _built(self, request: BuildRequest, image_id: str) -> str:
        """A build's end: its image ID (none: the stream broke off), its extra tags."""
        if not image_id:
            raise self.engine_error(
                ConnectionError("the build stream ended without a result"),
                f"building {request.tag}",
            )
        for extra in request.also_tag:
            await self.tag(request.tag, extra)
        return image_id

    def _api_url(self) -> str:
        """Where the engine's API is (the local socket when nothing says otherwise)."""
        target = self.endpoint or self.local
        return target.url if target is not None else "unix:///var/run/docker.sock"

    def _sessions_reach(self) -> bool:
        """Whether a session connection of our own can be opened (not over ssh://)."""
        return self._api_url().startswith(("unix://", "tcp://", "http://", "https://"))

    async def _raw_stream(self) -> anyio.abc.ByteStream:
        """A connection of our own to the engine's API (what a session is upgraded on)."""
        return await api_connection(self._api_url(), self.endpoint or self.local, self.label)

    async def _build_buildkit(
        self,
        request: BuildRequest,
        context: AsyncIterable[bytes],
        on_line: LineSink,
        progress: Progress,
        session: str = "",
    ) -> str:
        """The build through the engine's own BuildKit (``version=2``): its status
        stream read as steps, lines and, for a failure, the failing step and its last
        lines (:mod:`.buildkit`)."""
        buildargs = dict(request.buildargs)
        if request.inline_cache:
            buildargs[INLINE_CACHE] = "1"
        params = {**build_params(request, buildargs), "version": "2"}
        if session:
            params["session"] = session
        async for item in self._stream(
            "build",
            params=params,
            headers={"content-type": "application/x-tar"},
            data=context,
            doing=f"building {request.tag}",
        ):
            for line in progress.take(item):
                on_line(line)
        progress.check(request.tag)
        return await self._built(request, progress.image_id)

    async def tag(self, source: str, target: str) -> None:
        """Tag image ``source`` as ``target`` (``repo:tag``)."""
        docker = await self.client()
        repo, _, tag = target.rpartition(":")
        if "/" in tag or not repo:
            repo, tag = target, "latest"
        try:
            await self.bounded(
                f"tagging {target}", lambda: docker.images.tag(source, repo, tag=tag)
            )
        except EngineError:
            raise
        except Exception as exc:
            if is_connection_error(exc):
                raise self.engine_error(exc, f"tagging {target}") from None
            raise TransferError(f"could not tag {source} as {target}: {exc}") from None

    async def pull(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = _drop
    ) -> None:
        """Pull ``spec`` (``repo:tag``) into the engine."""
        auth = registry_auth(parse_reference(spec).api_host, credentials)
        repo, _, tag = spec.rpartition(":")
        done, layers = False, self._moving(spec)
        async for item in self._stream(
            "images/create",
            params={"fromImage": repo, "tag": tag},
            headers={"X-Registry-Auth": auth},
            doing=f"pulling {spec}",
        ):
            if "error" in item or "errorDetail" in item:
                raise stream_error(f"pull of {spec}", item)
            status = str(item.get("status", ""))
            if status.startswith(("Status: Downloaded", "Status: Image is up to date")):
                done = True
            moved_bytes(item, layers)
            if status and not item.get("progressDetail"):
                on_line(" ".join(filter(None, [item.get("id", ""), status])))
        if not done and not await self.exists(spec):
            raise TransferError(
                f"pull of {spec} ended without the image; retry the run", transient=True
            )

    async def push(
        self, spec: str, credentials: Credentials | None, on_line: LineSink = _drop
    ) -> str:
        """Push ``spec``; returns the manifest digest the engine reported."""
        auth = registry_auth(parse_reference(spec).api_host, credentials)
        repo, _, tag = spec.rpartition(":")
        digest, layers = "", self._moving(spec)
        async for item in self._stream(
            f"images/{repo}/push",
            params={"tag": tag},
            headers={"X-Registry-Auth": auth},
            doing=f"pushing {spec}",
        ):
            if "error" in item or "errorDetail" in item:
                raise stream_error(f"push of {spec}", item)
            aux = item.get("aux")
            status = str(item.get("status", ""))
            if isinstance(aux, dict) and "Digest" in aux:
                digest = str(aux["Digest"])
            elif match := PUSHED_DIGEST.search(status):
                digest = digest or match.group(1)  # podman says it only in the text
            moved_bytes(item, layers)
            if status and not item.get("progressDetail"):
                on_line(" ".join(filter(None, [item.get("id", ""), status])))
        if not digest:
            raise TransferError(
                f"push of {spec} ended without a digest; retry the run", transient=True
            )
        return digest

    async def remove(self, spec: str) -> None:
        """Remove the tag ``spec`` (a missing image is fine). Its untagged parents stay:
        another build on the same engine may be using them as its cache right now (the
        classic builder then fails with "unable to find image")."""
        docker = await self.client()
        import aiodocker

        try:
            await self.bounded(
                f"removing {spec}", lambda: docker.images.delete(spec, force=True, noprune=True)
            )
        except aiodocker.exceptions.DockerError as exc:
            if exc.status != 404:
                raise EngineError(f"could not remove {spec}: {exc.message}") from None

    async def run(self, spec: str, args: Sequence[str], on_output: Callable[[bytes], None]) -> int:
        """Run ``spec`` with ``args`` in a fresh container, removed afterwards (also when
        cancelled: :func:`.containers.run_container`); its exit code."""
        from .containers import run_container

        return await run_container(self, spec, args, on_output)
