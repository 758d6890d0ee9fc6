"""The steps file of ``affected --steps``: which CI steps use which images and files.

A YAML (or JSON) document::

    steps:
      - key: testdrive                 # required, unique
        label: ":racing_car: testdrive" # optional (default: the key)
        images: [materialized, testdrive]
        paths: ["test/testdrive/*", "misc/python/*"]
        command: bin/mzcompose --find testdrive run default   # optional
      - key: lint
        always: true

A step runs when one of its images is affected (changed, added or removed),
when a changed file matches one of its ``paths`` (globs in which ``*``
matches across ``/``, as in ``fnmatch``), or when it is ``always``; every
other step is skipped, with the reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError
from ..support.documents import DocumentError, parse_yaml

_KEYS = {"key", "label", "images", "paths", "always", "command"}


@dataclass(frozen=True)
class Step:
    """One CI step and what it depends on."""

    key: str
    label: str
    images: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    always: bool = False
    command: str = ""


@dataclass(frozen=True)
class StepDecision:
    """Whether a step runs, and why."""

    step: Step
    run: bool
    reason: str


def _strings(value: object, where: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UsageError(f"{where}: {what} must be a list of non-empty strings")
    return tuple(value)


def parse_steps(text: str, source: str) -> list[Step]:
    """The steps of a steps file (``source`` names it in errors)."""
    try:
        document: Any = parse_yaml(text)
    except DocumentError as exc:
        at = f":{exc.line}:{exc.column}" if exc.line else ""
        raise UsageError(f"{source}{at}: {exc}; fix the steps file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise UsageError(f"{source}{at}: malformed YAML; fix the steps file") from None
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        raise UsageError(f"{source}: needs a 'steps' list (see mzbuild-async affected --help)")
    steps: list[Step] = []
    for i, raw in enumerate(document["steps"]):
        where = f"{source}: step {i + 1}"
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: not a mapping with a 'key'")
        unknown = sorted(set(map(str, raw)) - _KEYS)
        if unknown:
            raise UsageError(
                f"{where}: unknown key {unknown[0]!r}; known: {', '.join(sorted(_KEYS))}"
            )
        key = raw.get("key")
        if not isinstance(key, str) or not key:
            raise UsageError(f"{where}: needs a 'key' (a non-empty string)")
        where = f"{source}: step {key!r}"
        if any(s.key == key for s in steps):
            raise UsageError(f"{where}: the key is used twice; keys must be unique")
        label, command, always = raw.get("label", key), raw.get("command", ""), raw.get("always")
        if not isinstance(label, str) or not isinstance(command, str):
            raise UsageError(f"{where}: 'label' and 'command' must be strings")
        if always not in (None, True, False):
            raise UsageError(f"{where}: 'always' must be true or false")
        steps.append(
            Step(
                key,
                label,
                _strings(raw.get("images"), where, "'images'"),
                _strings(raw.get("paths"), where, "'paths'"),
                bool(always),
                command,
            )
        )
    return steps


def load_steps(path: Path) -> list[Step]:
    """The steps file at ``path``."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the steps file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the steps file is not UTF-8 text") from None
    return parse_steps(text, str(path))


def decide(
    steps: Iterable[Step], affected: set[str], files: Iterable[str], known: set[str], base: str
) -> list[StepDecision]:
    """Which steps run: an affected image, a matching changed file, or ``always``.

    ``known`` is every image name at either side: a step naming another is an
    error (a typo would otherwise skip it for ever).
    """
    changed = list(files)
    decisions: list[StepDecision] = []
    for step in steps:
        missing = [name for name in step.images if name not in known]
        if missing:
            raise UsageError(
                f"step {step.key!r}: no image {missing[0]!r} at either side; fix the steps file"
            )
        hit = [name for name in step.images if name in affected]
        if step.always:
            decisions.append(StepDecision(step, True, "always runs"))
        elif hit:
            decisions.append(StepDecision(step, True, f"{', '.join(hit)} changed"))
        elif matched := next(
            (f for f in changed if any(fnmatch.fnmatchcase(f, p) for p in step.paths)), None
        ):
            decisions.append(StepDecision(step, True, f"{matched} changed"))
        else:
            uses = ", ".join(step.images + step.paths) or "nothing"
            decisions.append(
                StepDecision(step, False, f"nothing it uses ({uses}) changed since {base}")
            )
    return decisions
