"""The bundled demo repository, made into a scratch git repository for a test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import git
from tests.support.engine import BUSYBOX, _fail_or_skip

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo"


def make_demo(dest: Path) -> Path:
    """Copy the demo to ``dest`` with busybox added, committed; returns ``dest``."""
    if not BUSYBOX.exists():
        _fail_or_skip("busybox-static is not installed; run scripts/setup-system")
    shutil.copytree(DEMO, dest, ignore=shutil.ignore_patterns("target"))
    shutil.copy2(BUSYBOX, dest / "images" / "base" / "busybox")
    git(dest, "init", "-q", "-b", "main")
    commit(dest, "demo")
    return dest


def commit(root: Path, message: str) -> None:
    """Commit everything in ``root``."""
    git(root, "add", "-A")
    git(root, "commit", "-q", "--allow-empty", "-m", message)


@dataclass
class Cli:
    """Runs ``python -m mzbuild_async`` on one repository with fixed flags."""

    repo: Path
    registry: str
    cache_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def args(self, command: str, *rest: str) -> list[str]:
        """The full command line."""
        return [
            sys.executable,
            "-m",
            "mzbuild_async",
            command,
            "--repo",
            str(self.repo),
            "--image-registry",
            self.registry,
            "--cache-dir",
            str(self.cache_dir),
            "--dev",
            *rest,
        ]

    @property
    def tmp(self) -> Path:
        """The children's own TMPDIR (beside the cache directory): what they stage
        is looked for there, never by scanning the shared /tmp."""
        return self.cache_dir.parent / f"{self.cache_dir.name}.tmp"

    def environ(self) -> dict[str, str]:
        """The environment of the child (its TMPDIR its own, see :attr:`tmp`)."""
        root = str(Path(__file__).resolve().parents[2])
        self.tmp.mkdir(parents=True, exist_ok=True)
        return {**os.environ, "PYTHONPATH": root, "TMPDIR": str(self.tmp), **self.env}

    def run(
        self, command: str, *rest: str, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion, capturing its output."""
        return subprocess.run(
            self.args(command, *rest),
            env=self.environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, command: str, *rest: str) -> subprocess.Popen[str]:
        """Start a command in the background (stderr piped)."""
        return subprocess.Popen(
            self.args(command, *rest),
            env=self.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
