"""Fingerprints of every image by the original mzbuild, as one JSON object.

Usage: MZ_ROOT=REPO python benchmarks/original_driver.py ORIGINAL [--dev|--release|...]

ORIGINAL is a directory holding the original's ``materialize`` package (a
Materialize checkout's ``misc/python``). What ``bin/mzimage fingerprint IMAGE``
does for one image, for every image at once, through the original's own API:
``Repository.from_arguments`` (its own flags: profile, arch, coverage,
sanitizer), ``resolve_dependencies`` over all images, then each image's
``fingerprint()``. For ``vs_original.py``; nothing of ours is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    """Import the original from ``argv[1]`` and print every image's fingerprint."""
    if len(argv) < 2:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    sys.path.insert(0, str(Path(argv[1]).resolve()))
    from materialize import mzbuild, ui  # type: ignore[import-not-found]  # (the original's)

    parser = argparse.ArgumentParser(prog="original_driver")
    mzbuild.Repository.install_arguments(parser)
    args = parser.parse_args(argv[2:])
    ui.Verbosity.init_from_env(explicit=None)
    repo = mzbuild.Repository.from_arguments(Path(os.environ["MZ_ROOT"]), args)
    images = repo.resolve_dependencies(list(repo))
    json.dump({image.name: str(image.fingerprint()) for image in images}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
