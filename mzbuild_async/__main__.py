"""``python -m mzbuild_async``."""

from .cli.main import entry

entry()
