"""Where a Dockerfile's instructions are: the legacy builder's ``Step N`` is the Nth."""

from __future__ import annotations

import re


def instruction_lines(content: bytes) -> list[int]:
    """The line (1-based) each instruction of a Dockerfile starts on, in order: the
    legacy builder's ``Step N`` is instruction N. Comments, parser directives and
    blank lines are not instructions; a line ending in the escape character
    continues on the next."""
    lines: list[int] = []
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
        if not continuing:
            lines.append(number)
        continuing = text.endswith(escape)
    return lines
