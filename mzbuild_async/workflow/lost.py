"""After a run that lost a pool engine: the tags it pushed, checked by digest.

A lost engine is one we no longer reach, not one that stopped: cut from us but
not from the registry, it may finish a push we had given up on, after the image
was built and pushed again elsewhere, and so move the tag to its own build
(the same inputs, another digest: builds are not bit for bit). What the run
reports, attests and mirrors is what it built and checked; so each tag it
pushed is asked for its digest again, and one that shows another is put back
(the run's manifest is still in the registry, under its digest): one warning
each, naming the image and both digests.

A push in flight when its engine was lost may land later still: the tags of
those images are watched, every :data:`WATCH_POLL_SECONDS`, until they move
(put back: that push has landed) or :data:`WATCH_SECONDS` have passed.
"""

from __future__ import annotations

from collections.abc import Mapping

import anyio

from ..model.status import Status
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..registry.writer import RegistryWriter
from ..support import logs
from .results import ImageResult

#: Tags checked at once (each is a HEAD, and at most a GET and a PUT).
CHECKS_AT_ONCE = 16


#: How long the tag of an image a lost engine was pushing is watched for that push.
WATCH_SECONDS = 60.0
#: Seconds between looks at such a tag.
WATCH_POLL_SECONDS = 1.0


async def keep_pushed(
    client: RegistryClient,
    results: dict[str, ImageResult],
    lost: list[str],
    cut_pushes: Mapping[str, str] | None = None,
    *,
    watch: float = WATCH_SECONDS,
    poll: float = WATCH_POLL_SECONDS,
) -> None:
    """Put back each tag of ``results`` this run pushed that now shows another digest
    (``lost``: the engines the run lost); the tags of ``cut_pushes`` (image: the lost
    engine that was pushing it) are watched up to ``watch`` seconds for a late push."""
    if not lost:
        return
    writer = RegistryWriter(client)
    limiter = anyio.CapacityLimiter(CHECKS_AT_ONCE)
    pushed = {n: r for n, r in results.items() if r.pushed and r.digest}
    watched = {n: e for n, e in (cut_pushes or {}).items() if n in pushed}

    async def moved(result: ImageResult) -> bool:
        """Whether the tag showed another digest (then put back, or said to be gone)."""
        async with limiter:
            ref = parse_reference(result.spec)
            now = await client.lookup(ref)
            if now.status is not Status.PRESENT or not now.digest or now.digest == result.digest:
                return False
            ours = await writer.manifest(parse_reference(f"{result.spec}@{result.digest}"))
            if ours is None:
                logs.warning(
                    f"{result.spec}: the tag shows {now.digest}, not {result.digest} which this"
                    f" run pushed, and that is gone from the registry; push it again"
                )
                return True
            await writer.put_manifest(ref, ours.media_type, ours.body)
            logs.warning(
                f"{result.spec}: the tag showed {now.digest} (pushed by an engine lost during"
                f" the run: {', '.join(lost)}); put back {result.digest}, which this run built"
            )
            return True

    async def check(name: str, result: ImageResult) -> None:
        given_up = anyio.current_time() + (watch if name in watched else 0.0)
        while not await moved(result) and anyio.current_time() < given_up:
            await anyio.sleep(min(poll, max(0.0, given_up - anyio.current_time())))

    for engine in sorted(set(watched.values())):
        names = sorted(n for n, e in watched.items() if e == engine)
        logs.warning(
            f"engine {engine} was lost while pushing {', '.join(names)}; their tags are"
            f" watched for up to {watch:g} s in case those pushes still land (an engine"
            " cut from us may still reach the registry)"
        )
    async with anyio.create_task_group() as tg:
        for name, result in pushed.items():
            tg.start_soon(check, name, result)
