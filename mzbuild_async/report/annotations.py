"""The CI system's annotations of a run's failures: a failed build on the
Dockerfile line of its failing step, any other failure on the image."""

from __future__ import annotations

import re

from ..ci.protocol import CiSystem
from ..model.dockerfile import buildkit_step_line, instruction_lines
from ..source.repository import Repository
from ..support.annotate import Annotation
from ..workflow.results import RunResult

_STEP = re.compile(r"\bat Step (\d+)/\d+")
#: BuildKit's name of a Dockerfile step: ``at [2/3] RUN`` or ``at [stage-1 2/4] RUN``.
_BUILDKIT_STEP = re.compile(r"\bat \[(?:(\S+) )?(\d+)/\d+\] ")


def failure_annotations(result: RunResult, repo: Repository, system: CiSystem) -> list[str]:
    """One annotation per failed image (none where ``system`` shows none)."""
    found: list[str] = []
    for name, image in result.images.items():
        if not image.error:
            continue
        title = f"{name}: {image.action}"
        step = _STEP.search(image.error)
        buildkit = _BUILDKIT_STEP.search(image.error)
        if (step is None and buildkit is None) or name not in repo.images:
            shown = system.annotation(Annotation("error", image.error, title=title))
            found += [shown] if shown is not None else []
            continue
        path = f"{repo.image(name).directory}/Dockerfile".lstrip("/")
        try:
            content = (repo.root / path).read_bytes()
        except OSError:
            content = b""
        line: int | None
        if step is not None:
            lines = instruction_lines(content)
            index = int(step.group(1)) - 1
            line = lines[index] if 0 <= index < len(lines) else None
        else:
            assert buildkit is not None
            line = buildkit_step_line(content, buildkit.group(1) or "", int(buildkit.group(2)))
        shown = system.annotation(Annotation("error", image.error, path, line, title=title))
        found += [shown] if shown is not None else []
    return found
