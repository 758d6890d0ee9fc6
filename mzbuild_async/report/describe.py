"""The ``describe`` report: an image's fingerprint, spec, dependencies and inputs."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from ..model.manifest import CargoBuild
from ..source.repository import ImageDescription


def describe_json(d: ImageDescription) -> dict[str, Any]:
    """One image's ``describe --json`` entry."""
    image = d.image
    manifest = image.manifest
    return {
        "name": image.name,
        "directory": image.directory,
        "fingerprint": str(d.fingerprint),
        "spec": d.spec,
        "publish": manifest.publish,
        "mainline": manifest.mainline,
        "description": manifest.description,
        "dependencies": {name: str(fp) for name, fp in d.dependencies.items()},
        "pre_images": [pre_image_json(p) for p in manifest.pre_images],
        "inputs": [
            {"path": f.path, "mode": f"{f.mode:o}", "sha1": f.sha1.hex(), "size": f.size}
            for f in d.inputs
        ],
    }


def pre_image_json(pre_image: object) -> dict[str, Any]:
    """A pre-image action as JSON, with its type."""

    kind = "cargo-build" if isinstance(pre_image, CargoBuild) else "copy"
    fields = asdict(pre_image)  # type: ignore[call-overload]
    return {"type": kind, **{k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}}


def _text(value: object) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def describe_text(d: ImageDescription) -> str:
    """One image's ``describe`` text: its facts, then its inputs."""
    image = d.image
    lines = [
        f"image         {image.name}",
        f"directory     {image.directory or '.'}",
        f"fingerprint   {d.fingerprint}",
        f"spec          {d.spec}",
        f"publish       {str(image.manifest.publish).lower()}",
    ]
    if d.dependencies:
        deps = ", ".join(f"{n} ({fp})" for n, fp in d.dependencies.items())
        lines.append(f"dependencies  {deps}")
    else:
        lines.append("dependencies  (none)")
    for pre in image.manifest.pre_images:
        info = pre_image_json(pre)
        kind = info.pop("type")
        detail = " ".join(f"{k}={_text(v)}" for k, v in info.items() if v not in ([], {}, None))
        lines.append(f"pre-image     {kind} {detail}")
    size = sum(f.size for f in d.inputs)
    lines.append(f"inputs        {len(d.inputs)} files, {size} bytes")
    lines += [f"  {f.mode:o} {f.sha1.hex()} {f.path}" for f in d.inputs]
    return "\n".join(lines)
