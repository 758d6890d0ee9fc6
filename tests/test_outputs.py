"""Output files and stdout that cannot be written: one line, never a traceback after the work.

``--report``, ``--trace`` and ``--timeline`` paths are checked before any work
(exit 2); one that fails at the end (a full disk) still leaves the summary on
stdout and one line, exit 1; stdout itself full is one line too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MakeRepo
from tests.support.demo import Cli
from tests.support.pool import Sleepy, make_sleepy_repo
from tests.support.registry import Registry

IMAGE = {"a/mzbuild.yml": "name: a\n", "a/Dockerfile": "FROM scratch\n"}


def _cli(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "mzbuild_async", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize(
    ("flag", "where", "message"),
    [
        pytest.param("--report", "missing/r.json", "there is no directory", id="no-dir"),
        pytest.param("--trace", ".", "is a directory", id="directory"),
        pytest.param("--timeline", "ro/t.html", "cannot write there", id="read-only"),
        pytest.param("--metadata-file", "missing/m.json", "there is no directory", id="metadata"),
        pytest.param("$GITHUB_OUTPUT", "missing/out", "there is no directory", id="github-output"),
        pytest.param("$GITHUB_STEP_SUMMARY", "ro/sum.md", "cannot write there", id="summary"),
    ],
)
def test_output_paths_are_checked_before_any_work(
    make_repo: MakeRepo, tmp_path: Path, flag: str, where: str, message: str
) -> None:
    """Every file the run would write is checked before any work: one line naming it,
    exit 2, nothing on stdout."""
    root = make_repo(IMAGE)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(read_only), str(read_only)],
        capture_output=True,
        check=False,
    )
    assert mounted.returncode == 0, mounted.stderr  # (the suite runs as root)
    try:
        path = str(tmp_path / where)
        argv = ["ensure", "--all", "--repo", str(root), "--cache-dir", str(tmp_path / "c")]
        if flag.startswith("$"):  # (a CI system's file, named by the environment)
            result = _cli(*argv, env={"GITHUB_ACTIONS": "true", flag[1:]: path})
        else:
            result = _cli(*argv, flag, path)
    finally:
        subprocess.run(["umount", str(read_only)], check=False, capture_output=True)
    assert result.returncode == 2, result.stderr
    lines = [x for x in result.stderr.splitlines() if not x.startswith("::")]  # (annotations)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"mzbuild-async: error: {flag} {path}: {message}"), lines[0]
    assert result.stdout == ""


@pytest.mark.real
def test_a_report_that_fails_at_the_end_keeps_the_summary(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """--report /dev/full: the run's work and summary are there; one line says the report
    is not, exit 1."""
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    cli = Cli(repo, f"{registries['none'].host}/full", tmp_path / "cache")
    result = cli.run("ensure", "--all", "--json", "--report", "/dev/full", "--trace",
                     str(tmp_path / "trace.json"))  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["images"]["solo"]["pushed"]
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert errors == [
        "mzbuild-async: error: --report /dev/full: could not write it (No space left on device)"
    ]
    assert json.loads((tmp_path / "trace.json").read_text())  # the others are written
    assert "Traceback" not in result.stderr
    # The summary is printed after the files: it names the exit status the process has.
    result = cli.run("ensure", "--all", "--metadata-file", "/dev/full")
    assert result.returncode == 1, result.stderr
    assert result.stdout.rstrip().endswith("exit status 1"), result.stdout


def test_stdout_that_is_full(make_repo: MakeRepo) -> None:
    root = make_repo(IMAGE)
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "mzbuild_async", "list", "--repo", str(root)],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "mzbuild-async: error: cannot write the output: No space left on device"
    ]
