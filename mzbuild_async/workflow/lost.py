"""After a run that lost a pool engine: the tags it pushed, checked by digest.

A lost engine is one we no longer reach, not one that stopped: cut from us but
not from the registry, it may finish a push we had given up on, after the image
was built and pushed again elsewhere, and so move the tag to its own build
(the same inputs, another digest: builds are not bit for bit). What the run
reports, attests and mirrors is what it built and checked; so each tag it
pushed is asked for its digest again, and one that shows another is put back
(the run's manifest is still in the registry, under its digest): one warning
each, naming the image and both digests.
"""

from __future__ import annotations

import anyio

from ..model.status import Status
from ..registry.client import RegistryClient
from ..registry.names import parse_reference
from ..registry.writer import RegistryWriter
from ..support import logs
from .results import ImageResult

#: Tags checked at once (each is a HEAD, and at most a GET and a PUT).
CHECKS_AT_ONCE = 16


async def keep_pushed(
    client: RegistryClient, results: dict[str, ImageResult], lost: list[str]
) -> None:
    """Put back each tag of ``results`` this run pushed that now shows another digest
    (``lost``: the engines the run lost)."""
    if not lost:
        return
    writer = RegistryWriter(client)
    limiter = anyio.CapacityLimiter(CHECKS_AT_ONCE)

    async def check(name: str, result: ImageResult) -> None:
        async with limiter:
            ref = parse_reference(result.spec)
            now = await client.lookup(ref)
            if now.status is not Status.PRESENT or not now.digest or now.digest == result.digest:
                return
            ours = await writer.manifest(parse_reference(f"{result.spec}@{result.digest}"))
            if ours is None:
                logs.warning(
                    f"{result.spec}: the tag shows {now.digest}, not {result.digest} which this"
                    f" run pushed, and that is gone from the registry; push it again"
                )
                return
            await writer.put_manifest(ref, ours.media_type, ours.body)
            logs.warning(
                f"{result.spec}: the tag showed {now.digest} (pushed by an engine lost during"
                f" the run: {', '.join(lost)}); put back {result.digest}, which this run built"
            )

    async with anyio.create_task_group() as tg:
        for name, result in results.items():
            if result.pushed and result.digest:
                tg.start_soon(check, name, result)
