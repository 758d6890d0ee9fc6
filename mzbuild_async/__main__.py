"""``python -m mzbuild_async``."""

from .cli import entry

entry()
