"""skopeo: reads what we wrote to a registry, independently of our code."""

from __future__ import annotations

import shutil
import subprocess

from tests.support.engine import _fail_or_skip


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    """Run skopeo (fails under CI=true when it is not installed)."""
    program = shutil.which("skopeo")
    if program is None:
        _fail_or_skip("skopeo is not installed; run scripts/setup-system")
    return subprocess.run(
        [str(program), *args], capture_output=True, text=True, timeout=60, check=False
    )


def raw_manifest(ref: str) -> str:
    """The manifest bytes at ``ref``."""
    read = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{ref}")
    assert read.returncode == 0, read.stderr
    return read.stdout


def digest_of(ref: str) -> str | None:
    """The manifest digest at ``ref`` (None when skopeo cannot read it)."""
    read = skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}", f"docker://{ref}")
    return read.stdout.strip() if read.returncode == 0 else None
