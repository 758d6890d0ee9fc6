"""``--metadata-file``: what a run produced, by image, for deployers, signers and lock files.

One JSON object (schema: ``schemas/metadata.json``): per image its spec, the
manifest digest and size the registries gave, its platform, and per
registry the ``name@digest`` reference that cannot be overwritten (tags,
even content-addressed ones, can be); and buildx's keys (``containerimage.digest``,
``containerimage.descriptor`` where the registry said the media type, ``image.name``:
the names where it is, comma-separated), so the tools that read
buildx's metadata file read ours.
"""

from __future__ import annotations

from typing import Any

from ..workflow.results import ImageResult, RunResult


def pinned(spec: str, digest: str) -> str:
    """``spec``'s repository at ``digest`` (``host/name@sha256:...``)."""
    return f"{spec.rsplit(':', 1)[0]}@{digest}"


def image_metadata(result: ImageResult, platform: str) -> dict[str, Any]:
    """One image's entry."""
    registries = {
        registry: {
            "state": state,
            "reference": pinned(result.references[registry], result.digest)
            if result.digest and registry in result.references and state in PUBLISHED
            else None,
        }
        for registry, state in result.registries.items()
    }
    entry: dict[str, Any] = {
        "spec": result.spec,
        "digest": result.digest or None,
        "size": result.size or None,
        "platform": platform,
        "registries": registries,
    }
    # buildx's keys, for what reads its --metadata-file (bake-action's consumers,
    # deployers, signers): the digest, and the names the image has where it is.
    if result.digest:
        entry["containerimage.digest"] = result.digest
        if result.media_type and result.size:
            entry["containerimage.descriptor"] = {
                "mediaType": result.media_type,
                "digest": result.digest,
                "size": result.size,
            }
    names = [
        result.references[registry]
        for registry, state in result.registries.items()
        if state in PUBLISHED and registry in result.references
    ]
    if names:
        entry["image.name"] = ",".join(names)
    return entry


#: Registry states in which the image is there after the run.
PUBLISHED = ("present", "pushed", "copied")


def metadata_document(run: RunResult) -> dict[str, Any]:
    """The ``--metadata-file`` document: every image of the run, by name."""
    return {name: image_metadata(r, run.platform) for name, r in run.images.items()}
