"""Validating JSON outputs against the schemas the package ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import referencing

SCHEMAS = Path(__file__).resolve().parents[2] / "mzbuild_async" / "report" / "schemas"


def validate(document: Any, name: str) -> None:
    """Validate ``document`` against schema ``name`` (with the others resolvable)."""
    registry: referencing.Registry[Any] = referencing.Registry().with_resources(
        (path.name, referencing.Resource.from_contents(json.loads(path.read_text())))
        for path in SCHEMAS.glob("*.json")
    )
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator(schema, registry=registry).validate(document)
