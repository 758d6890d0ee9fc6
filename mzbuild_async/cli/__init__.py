"""The command line: ``main`` (parsing, output, exit statuses) and one module per
command group (``build``, ``check``, ``explain``)."""

from __future__ import annotations

from .main import entry, main

__all__ = ["entry", "main"]
