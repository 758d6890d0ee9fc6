"""The floor for fingerprinting: list the files with git, SHA-1 every input once.

Usage: python benchmarks/floor_fingerprint.py REPO INPUTS.json

Runs ``git ls-files -z --cached --others --exclude-standard`` once in REPO,
then reads and SHA-1s, single-threaded, each path of the JSON list in
INPUTS.json (prepared beforehand by ``bench_fingerprint.py``: the union of
all images' inputs). No discovery, no manifests, no event loop. Prints
``FILES BYTES`` so the caller can check that it did the whole job.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

USAGE = "usage: python benchmarks/floor_fingerprint.py REPO INPUTS.json"


def sha1_file(path: str) -> tuple[bytes, int]:
    """The SHA-1 digest and size of the file at ``path``, read in full once."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        want = os.fstat(fd).st_size + 1  # one read of the whole file, and one to see EOF
        while chunk := os.read(fd, want):
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    return hashlib.sha1(data).digest(), len(data)


def main(argv: list[str]) -> int:
    """List the repository's files, then hash every input named in the JSON list."""
    if len(argv) != 3:
        print(USAGE, file=sys.stderr)
        return 2
    repo, listing = argv[1], argv[2]
    subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        check=True,
        stdout=subprocess.PIPE,
    )
    with open(listing, "rb") as f:
        paths: list[str] = json.load(f)
    total = 0
    for path in paths:
        total += sha1_file(os.path.join(repo, path))[1]
    print(len(paths), total)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
