"""The ecosystem's conventions: NO_COLOR/FORCE_COLOR, --progress and BUILDKIT_PROGRESS,
DOCKER_DEFAULT_PLATFORM, GitHub Actions annotations, the documented exit statuses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mzbuild_async.ci import annotator, by_name
from mzbuild_async.cli.main import EXIT_STATUSES
from mzbuild_async.model.dockerfile import instruction_lines
from mzbuild_async.report.progress import JsonProgress, LineProgress, LiveProgress, make_progress
from mzbuild_async.support.annotate import Annotation, located
from mzbuild_async.support.events import Event, EventStatus, Phase
from tests.conftest import MakeRepo

ROOT = str(Path(__file__).resolve().parents[1])
WARNED = {
    "a/mzbuild.yml": "name: a\nsplit_debuginfo: x\n",
    "a/Dockerfile": "FROM scratch\n",
}


def _cli(root: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("NO_COLOR", "FORCE_COLOR", "GITHUB_ACTIONS", "TF_BUILD", "DOCKER_DEFAULT_PLATFORM")
    }
    return subprocess.run(
        [sys.executable, "-m", "mzbuild_async", *argv, "--repo", str(root)],
        env={**clean, "PYTHONPATH": ROOT, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_no_color_wins_over_force_color(make_repo: MakeRepo) -> None:
    root = make_repo(WARNED)
    forced = _cli(root, "spec", "a", "--log-format", "console", FORCE_COLOR="1")
    assert "unknown key 'split_debuginfo'" in forced.stderr
    assert "\x1b[" in forced.stderr
    plain = _cli(root, "spec", "a", "--log-format", "console", FORCE_COLOR="1", NO_COLOR="1")
    assert "unknown key 'split_debuginfo'" in plain.stderr
    assert "\x1b" not in plain.stderr
    not_a_terminal = _cli(root, "spec", "a", "--log-format", "console")
    assert "\x1b" not in not_a_terminal.stderr
    assert "\x1b" not in _cli(root, "spec", "a", "--log-format", "console", FORCE_COLOR="0").stderr


class _Tty:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.written: list[str] = []

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass


@pytest.mark.parametrize(
    ("mode", "tty", "kind"),
    [
        ("auto", True, LiveProgress),
        ("auto", False, LineProgress),
        ("plain", True, LineProgress),
        ("tty", False, LiveProgress),
        ("rawjson", True, JsonProgress),
        ("quiet", True, type(None)),
    ],
)
def test_progress_modes(mode: str, tty: bool, kind: type) -> None:
    made = make_progress(_Tty(tty), environ={}, mode=mode)  # type: ignore[arg-type]
    assert isinstance(made, kind)


def test_rawjson_is_one_event_per_line() -> None:
    out = _Tty(False)
    progress = JsonProgress(out)  # type: ignore[arg-type]
    progress(Event(1.25, "app", Phase.BUILD, EventStatus.START, "", "e1"))
    progress(Event(2.5, "app", Phase.BUILD, EventStatus.DONE))
    records = [json.loads(line) for line in "".join(out.written).splitlines()]
    assert records == [
        {
            "at": 1.25,
            "image": "app",
            "phase": "build",
            "status": "start",
            "detail": "",
            "engine": "e1",
        },
        {"at": 2.5, "image": "app", "phase": "build", "status": "done", "detail": "", "engine": ""},
    ]


def test_buildkit_progress_is_the_default_and_the_flag_wins() -> None:
    from mzbuild_async.report.progress import progress_mode

    assert progress_mode(None, {}) == "auto"
    assert progress_mode(None, {"BUILDKIT_PROGRESS": "plain"}) == "plain"
    assert progress_mode(None, {"BUILDKIT_PROGRESS": "rawjson"}) == "rawjson"
    assert progress_mode(None, {"BUILDKIT_PROGRESS": "fancy"}) == "auto"
    assert progress_mode("quiet", {"BUILDKIT_PROGRESS": "plain"}) == "quiet"
    # --log-format json: stderr is JSON lines only (progress as rawjson), unless asked.
    assert progress_mode(None, {"BUILDKIT_PROGRESS": "plain"}, "json") == "rawjson"
    assert progress_mode("plain", {}, "json") == "plain"
    assert progress_mode(None, {}, "console") == "auto"


def test_docker_default_platform_is_the_default_arch(make_repo: MakeRepo) -> None:
    root = make_repo({"a/mzbuild.yml": "name: a\n", "a/Dockerfile": "FROM scratch\n"})
    arm = _cli(root, "spec", "a", DOCKER_DEFAULT_PLATFORM="linux/arm64")
    explicit = _cli(root, "spec", "a", "--arch", "aarch64")
    amd = _cli(root, "spec", "a", "--arch", "x86_64")
    assert arm.returncode == 0, arm.stderr
    assert arm.stdout == explicit.stdout != amd.stdout
    flag_wins = _cli(root, "spec", "a", "--arch", "x86_64", DOCKER_DEFAULT_PLATFORM="linux/arm64")
    assert flag_wins.stdout == amd.stdout
    bad = _cli(root, "spec", "a", DOCKER_DEFAULT_PLATFORM="linux/s390x")
    assert bad.returncode == 2
    assert "DOCKER_DEFAULT_PLATFORM=linux/s390x: not a platform" in bad.stderr


def test_manifest_errors_and_warnings_are_annotations_under_github_actions(
    make_repo: MakeRepo,
) -> None:
    root = make_repo(WARNED)
    warned = _cli(root, "spec", "a", GITHUB_ACTIONS="true")
    assert warned.returncode == 0
    assert (
        "::warning file=a/mzbuild.yml,line=2,col=1,title=mzbuild-async::unknown key"
        " 'split_debuginfo'" in warned.stderr
    )
    assert "::warning" not in _cli(root, "spec", "a").stderr
    azure = _cli(root, "spec", "a", TF_BUILD="True")
    assert (
        "##vso[task.logissue type=warning;sourcepath=a/mzbuild.yml;linenumber=2;columnnumber=1;]"
        "mzbuild-async: unknown key 'split_debuginfo'" in azure.stderr
    )
    broken = make_repo({"b/mzbuild.yml": "name: b\npublish: [\n", "b/Dockerfile": "FROM scratch\n"})
    failed = _cli(broken, "spec", "--all", GITHUB_ACTIONS="true")
    assert failed.returncode == 2
    assert "::error file=b/mzbuild.yml,line=3,col=1,title=mzbuild-async::malformed YAML" in (
        failed.stderr
    )
    assert failed.stdout == ""  # (stdout stays the command's own)


def test_workflow_commands_escape_their_data() -> None:
    github = by_name("github")
    assert github.annotation(Annotation("error", "50%\nnext", "a,b:c", 3)) == (
        "::error file=a%2Cb%3Ac,line=3::50%25%0Anext"
    )
    assert located("x/Dockerfile:12: bad") is not None
    assert located("no location here") is None
    annotate = annotator({"GITHUB_ACTIONS": "true"})
    assert annotate is not None
    assert annotate("error", "plain") == "::error title=mzbuild-async::plain"


def test_azure_logging_commands_escape_their_data() -> None:
    annotate = annotator({"TF_BUILD": "True"})
    assert annotate is not None
    assert annotate("warning", "a/mzbuild.yml:2:1: unknown key; 50%\nnext") == (
        "##vso[task.logissue type=warning;sourcepath=a/mzbuild.yml;linenumber=2;"
        "columnnumber=1;]mzbuild-async: unknown key; 50%AZP25%0Anext"
    )
    assert by_name("azure").annotation(Annotation("error", "x", "b;c]d")) == (
        "##vso[task.logissue type=error;sourcepath=b%3Bc%5Dd;]x"
    )
    # Systems with no annotation on a line, and outside CI: none.
    assert annotator({"BUILDKITE": "true"}) is None
    assert annotator({"GITLAB_CI": "true"}) is None
    assert annotator({}) is None


def test_instruction_lines() -> None:
    text = (
        b"# syntax=docker/dockerfile:1\nFROM a\n\n# note\nRUN one \\\n  # inside\n  two\nCOPY x y\n"
    )
    assert instruction_lines(text) == [2, 5, 8]


def test_every_exit_status_is_documented() -> None:
    assert set(EXIT_STATUSES) == {0, 1, 2, 3, 130, 141, 143}
    reference = (Path(ROOT) / "docs" / "reference" / "exit-statuses.md").read_text()
    for status in EXIT_STATUSES:
        assert f"| {status} |" in reference


@pytest.mark.real
def test_a_failed_build_is_annotated_on_its_dockerfile_line(
    tmp_path: Path, registries: dict[str, object]
) -> None:
    from tests.support.demo import make_demo

    repo = make_demo(tmp_path / "demo")
    dockerfile = repo / "images" / "tools" / "Dockerfile"
    lines = dockerfile.read_text().splitlines()
    dockerfile.write_text("\n".join([*lines, "", "# fails:", "RUN false"]) + "\n")
    failing_line = len(lines) + 3
    registry = registries["none"].host  # type: ignore[attr-defined]
    result = _cli(
        repo,
        "build",
        "demo-tools",
        "--image-registry",
        f"{registry}/annot",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--dev",
        "-q",
        GITHUB_ACTIONS="true",
    )
    assert result.returncode == 1
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::error")]
    assert len(annotations) == 1, result.stderr
    assert annotations[0].startswith(
        f"::error file=images/tools/Dockerfile,line={failing_line},title=demo-tools%3A failed::"
    )
