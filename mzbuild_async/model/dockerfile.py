"""Where a Dockerfile's instructions are: the legacy builder's ``Step N`` is the Nth;
BuildKit's ``[stage n/m]`` is the nth after that stage's ``FROM``."""

from __future__ import annotations

import re


def instruction_lines(content: bytes) -> list[int]:
    """The line (1-based) each instruction of a Dockerfile starts on, in order: the
    legacy builder's ``Step N`` is instruction N. Comments, parser directives and
    blank lines are not instructions; a line ending in the escape character
    continues on the next."""
    return [line for line, _ in instructions(content)]


def buildkit_step_line(content: bytes, stage: str, n: int) -> int | None:
    """The line of BuildKit's step ``[stage n/m]`` (``stage`` "" in a Dockerfile of
    one stage). A stage's ``FROM`` is its step 1 (``FROM scratch`` is no step: then
    step 1 is the instruction after it). Stages are named by their ``AS`` name, else
    ``stage-K`` (K counted from 0)."""
    found = instructions(content)
    # (``MZFROM`` in a repository's Dockerfile is ``FROM`` in the one built)
    froms = [i for i, (_, text) in enumerate(found) if text.split()[:1] in (["FROM"], ["MZFROM"])]
    if not froms:
        return None
    chosen: int | None = None
    if not stage:
        chosen = froms[-1] if len(froms) == 1 else None
    for k, index in enumerate(froms):
        words = found[index][1].split()
        named = words[3].lower() if len(words) >= 4 and words[2].upper() == "AS" else ""
        if stage.lower() in (named, f"stage-{k}"):
            chosen = index
    if chosen is None:
        return None
    words = found[chosen][1].split()
    index = chosen + n if len(words) > 1 and words[1].lower() == "scratch" else chosen + n - 1
    return found[index][0] if chosen <= index < len(found) else None


def instructions(content: bytes) -> list[tuple[int, str]]:
    """Each instruction's first line and its whole text (continuation lines joined,
    the escape characters that join them dropped; the keyword upper-cased)."""
    lines: list[tuple[int, str]] = []
    escape = "\\"
    continuing = False
    for number, raw in enumerate(content.decode("utf-8", "replace").split("\n"), 1):
        text = raw.strip()
        if not lines and not continuing:
            directive = re.match(r"#\s*escape\s*=\s*(\S)", text, re.I)
            if directive:
                escape = directive.group(1)
        if not continuing and (not text or text.startswith("#")):
            continue
        if continuing and text.startswith("#"):
            continue  # a comment inside a continued instruction
        part = text.removesuffix(escape).strip() if text.endswith(escape) else text
        if not continuing:
            keyword, _, rest = part.partition(" ")
            lines.append((number, f"{keyword.upper()} {rest}".strip()))
        elif part:
            first, joined = lines[-1]
            lines[-1] = (first, f"{joined} {part}")
        continuing = text.endswith(escape)
    return lines


#: ``--mount=...`` options of ``RUN`` instructions.
_MOUNT = re.compile(r"--mount=(\S+)")


def secret_mounts(content: bytes) -> list[tuple[int, str, bool]]:
    """``(line, id, required)`` of every ``RUN --mount=type=secret`` (its id defaults
    to its target's last component, as BuildKit's does; ``required`` unless the mount
    says ``required=false``)."""
    return _mounts(content, "secret")


def ssh_mounts(content: bytes) -> list[tuple[int, str, bool]]:
    """``(line, id, required)`` of every ``RUN --mount=type=ssh`` (id ``default``
    unless named; ``required`` only when the mount says ``required=true``, as BuildKit
    has it)."""
    return _mounts(content, "ssh")


def _mounts(content: bytes, kind: str) -> list[tuple[int, str, bool]]:
    found: list[tuple[int, str, bool]] = []
    for line, text in instructions(content):
        if not text.startswith("RUN "):
            continue
        for option in _MOUNT.findall(text):
            pairs = dict(item.partition("=")[::2] for item in option.split(","))
            if pairs.get("type") != kind:
                continue
            if kind == "ssh":
                required = pairs.get("required", "false").lower() == "true"
                found.append((line, pairs.get("id") or "default", required))
                continue
            target = pairs.get("target") or pairs.get("dst") or pairs.get("destination", "")
            secret = pairs.get("id") or target.rstrip("/").rsplit("/", 1)[-1]
            found.append((line, secret, pairs.get("required", "true").lower() != "false"))
    return found
