"""The floor for fingerprinting: list files with git, SHA-1 each input once.

Usage: python benchmarks/floor_fingerprint.py REPO INPUTS.json

No discovery, no manifests, no event loop: one ``git ls-files`` and a
single-threaded read + SHA-1 of every distinct input file named in
INPUTS.json (prepared once by ``bench_fingerprint.py``).
"""

import hashlib
import json
import subprocess
import sys

repo, listing = sys.argv[1], sys.argv[2]
subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    cwd=repo,
    check=True,
    capture_output=True,
)
with open(listing) as f:
    paths = json.load(f)
total = 0
for path in paths:
    with open(f"{repo}/{path}", "rb") as f:
        data = f.read()
    hashlib.sha1(data).digest()
    total += len(data)
print(total)
