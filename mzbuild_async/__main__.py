"""``python -m mzbuild_async``."""

try:
    from .cli.main import entry
except KeyboardInterrupt:  # Ctrl-C while the modules load: nothing has started
    import sys

    sys.stderr.write("mzbuild-async: interrupted while starting; nothing was done\n")
    raise SystemExit(130) from None

entry()
