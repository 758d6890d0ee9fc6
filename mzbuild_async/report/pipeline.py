"""The ``pipeline`` document as the CI system reads it: YAML, or JSON with ``--json``."""

from __future__ import annotations

import json
from typing import Any


def pipeline_text(document: dict[str, Any], *, as_json: bool = False) -> str:
    """``document`` as YAML (keys in the order the CI system documents them) or JSON."""
    if as_json:
        return json.dumps(document, indent=2) + "\n"
    import yaml

    text: str = yaml.safe_dump(document, sort_keys=False, width=1000)
    return text
