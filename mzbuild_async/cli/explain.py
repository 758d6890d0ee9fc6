"""The ``explain`` command: why an image's fingerprint is not the one compared with."""

from __future__ import annotations

import argparse
import json
import sys

from ..report.deepjson import deep_json
from ..workflow.inspect import explain_image
from ..workflow.resolve import Repository


async def run_explain(args: argparse.Namespace, repo: Repository) -> int:
    """Explain one image against a revision or a spec; exit 1 if the spec is not found."""
    answer = await explain_image(repo, args.images[0], args.against, args.search)
    if answer.same is not None:
        document: dict[str, object] = {
            "against": answer.label,
            "image": answer.image,
            "fingerprint": answer.same,
            "other": answer.same,
            "same": True,
        }
        text = f"{answer.image}: {answer.same}, the same as {answer.label}"
    elif answer.explanation is None:
        document = {"image": answer.image, "found": False, "error": answer.missing}
        text = answer.missing
    else:
        document = {"against": answer.label, **answer.explanation.to_json()}
        text = answer.explanation.text(answer.label)
    if not args.json:
        sys.stdout.write(text + "\n")
    elif answer.explanation is not None:
        sys.stdout.write(deep_json(document) + "\n")
    else:
        sys.stdout.write(json.dumps(document, indent=2 if answer.same else None) + "\n")
    return 1 if answer.missing else 0
