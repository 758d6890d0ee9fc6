"""Copying an image from one registry (or repository) to another, over the API alone.

Blob by blob: a ``HEAD`` first (a blob the target has is not sent again),
then a cross-repository mount where both are on one host, else a stream
from the source's ``GET`` straight into the target's ``PUT`` (nothing
through an engine or the disk, nothing held whole in memory). An index
copies its manifests first. The manifest goes last, its exact bytes, so the
copy has the source's digest; the target's answer is checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import anyio

from ..errors import TransferError, single_error
from .client import RegistryUnavailable
from .names import Reference
from .writer import INDEX_TYPES, Document, RegistryWriter

#: Blobs of one manifest sent at once (the hosts' limiters still apply).
BLOB_CONCURRENCY = 4
#: Attempts per blob (a stream cannot be retried inside one request).
BLOB_ATTEMPTS = 3
STREAM_CHUNK = 1024 * 1024


@dataclass
class CopyStats:
    """What one copy sent: blobs mounted, streamed, already there; bytes streamed."""

    mounted: int = 0
    uploaded: int = 0
    present: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, int]:
        """The counts as JSON."""
        return {
            "mounted": self.mounted,
            "uploaded": self.uploaded,
            "present": self.present,
            "bytes": self.bytes,
        }


def _at(ref: Reference, reference: str) -> Reference:
    """``ref``'s repository at a digest."""
    return replace(ref, tag=None, digest=reference)


async def copy_image(
    writer: RegistryWriter, source: Reference, target: Reference, stats: CopyStats | None = None
) -> Document:
    """Copy the manifest ``source`` names (and everything under it) to ``target``;
    returns the manifest as copied (its digest is the source's)."""
    stats = stats if stats is not None else CopyStats()
    manifest = await writer.manifest(source)
    if manifest is None:
        raise TransferError(f"{source}: not there to copy from")
    data = manifest.json()
    if manifest.media_type in INDEX_TYPES:
        for child in _descriptors(source, data.get("manifests")):
            await copy_image(writer, _at(source, child), _at(target, child), stats)
    else:
        blobs = _descriptors(source, [data.get("config"), *(data.get("layers") or [])], sizes=True)
        limit = anyio.CapacityLimiter(BLOB_CONCURRENCY)

        async def one(digest: str, size: int) -> None:
            async with limit:
                await copy_blob(writer, source, target, digest, size, stats)

        with single_error():  # (the first blob's failure, as one line)
            async with anyio.create_task_group() as tg:
                for digest, size in dict(blobs).items():
                    tg.start_soon(one, digest, size)
    stored = await writer.put_manifest(target, manifest.media_type, manifest.body)
    if stored != manifest.digest:
        raise TransferError(f"{target}: the registry stored {stored}, not {manifest.digest}")
    return manifest


def _descriptors(ref: Reference, items: Any, *, sizes: bool = False) -> list[Any]:
    """The digests (with ``sizes``: ``(digest, size)`` pairs) of a manifest's descriptors."""
    if not isinstance(items, list):
        raise TransferError(f"{ref}: a manifest without the descriptors it should list")
    out: list[Any] = []
    for item in items:
        digest = item.get("digest") if isinstance(item, dict) else None
        size = item.get("size") if isinstance(item, dict) else None
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            raise TransferError(f"{ref}: a descriptor without a sha256 digest")
        if sizes and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise TransferError(f"{ref}: descriptor {digest} without a size")
        out.append((digest, size) if sizes else digest)
    return out


async def copy_blob(
    writer: RegistryWriter,
    source: Reference,
    target: Reference,
    digest: str,
    size: int,
    stats: CopyStats,
) -> None:
    """One blob into ``target``'s repository, unless it is there already (a copy of the
    same blob to the same host already under way is waited for, then mounted)."""
    key = (target.api_host, digest)
    flight = writer.blob_flights.get(key)
    if flight is not None:
        await flight.wait()
        await _copy_blob_retried(writer, source, target, digest, size, stats)
        return
    writer.blob_flights[key] = anyio.Event()
    try:
        await _copy_blob_retried(writer, source, target, digest, size, stats)
    finally:
        writer.blob_flights.pop(key).set()


async def _copy_blob_retried(
    writer: RegistryWriter,
    source: Reference,
    target: Reference,
    digest: str,
    size: int,
    stats: CopyStats,
) -> None:
    for attempt in range(1, BLOB_ATTEMPTS + 1):
        try:
            await _copy_blob_once(writer, source, target, digest, size, stats)
            writer.blob_homes[(target.api_host, digest)] = target.repository
            return
        except RegistryUnavailable as exc:
            if attempt == BLOB_ATTEMPTS:
                raise TransferError(f"{target}: could not copy blob {digest}: {exc}") from None


async def _copy_blob_once(
    writer: RegistryWriter,
    source: Reference,
    target: Reference,
    digest: str,
    size: int,
    stats: CopyStats,
) -> None:
    client = writer.client
    known = await client.request(target, "HEAD", f"blobs/{digest}", push=True)
    if known.status_code == 200:
        stats.present += 1
        return
    # A repository on the target's host that has the blob: the source, or one this
    # session copied it to (images share their base layers).
    home = (
        source.repository
        if source.api_host == target.api_host
        else writer.blob_homes.get((target.api_host, digest), "")
    )
    if home and home != target.repository:
        started = await client.request(
            target,
            "POST",
            f"blobs/uploads/?mount={digest}&from={home}",
            push=True,
            mount_from=home,
        )
        if started.status_code == 201:
            stats.mounted += 1
            return
    else:
        started = await client.request(target, "POST", "blobs/uploads/", push=True)
    location = started.headers.get("location", "")
    if started.status_code != 202 or not location:
        raise TransferError(f"{target}: the registry refused a blob upload ({started.status_code})")
    joiner = "&" if "?" in location else "?"
    async with client.blob_stream(source, digest) as got:
        if got.status_code != 200:
            raise TransferError(f"{source}: blob {digest} answered {got.status_code}")
        done = await client.put_stream(
            target,
            f"{location}{joiner}digest={digest}",
            got.aiter_raw(STREAM_CHUNK),
            size,
        )
    if done.status_code not in (200, 201):
        raise TransferError(f"{target}: the registry refused blob {digest} ({done.status_code})")
    stats.uploaded += 1
    stats.bytes += size
