"""The read-only CLI: list, fingerprint, spec, describe; stdout for results only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mzbuild_async.cli.main import main
from tests.conftest import VECTORS

EXPECTED = json.loads((VECTORS / "expected.json").read_text())["configs"][0]


def run(capsys: pytest.CaptureFixture[str], root: Path, *argv: str) -> tuple[str, str]:
    """Run a command against ``root`` with the first vector options; (stdout, stderr)."""
    status = main([*argv, "--repo", str(root), "--arch", "x86_64", "--optimized"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    return captured.out, captured.err


def fp(name: str) -> str:
    return str(EXPECTED["specs"][name].rsplit("mzbuild-", 1)[1])


def test_list_prints_sorted_names(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`list` prints every image name, one per line, sorted, and nothing on stderr."""
    out, err = run(capsys, fixture_repo, "list")
    assert out.splitlines() == sorted(EXPECTED["specs"])
    assert err == ""


def test_list_json(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`list --json` maps each name to its directory, dependencies and flags."""
    out, _ = run(capsys, fixture_repo, "list", "--json")
    data = json.loads(out)
    assert set(data) == set(EXPECTED["specs"])
    assert data["bundle"]["dependencies"] == ["server", "tools"]
    assert data["nested"]["directory"] == "images/base/nested"
    assert data["tools"]["publish"] is False
    assert data["bundle"]["mainline"] is False
    assert data["base"]["description"] == "The base image."


def test_fingerprint_one_image_is_bare(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One named image prints just its fingerprint, as the original mzimage does."""
    out, _ = run(capsys, fixture_repo, "fingerprint", "server")
    assert out == fp("server") + "\n"


def test_fingerprint_several_images_are_named(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Several images print `NAME FINGERPRINT` lines in the order asked."""
    out, _ = run(capsys, fixture_repo, "fingerprint", "tools", "base")
    assert out.splitlines() == [f"tools {fp('tools')}", f"base {fp('base')}"]


def test_fingerprint_all_json(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`fingerprint --all --json` is one object of name to fingerprint, nothing else."""
    out, _ = run(capsys, fixture_repo, "fingerprint", "--all", "--json")
    assert json.loads(out) == {name: fp(name) for name in EXPECTED["specs"]}


def test_spec_lines(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`spec` prints one spec per line in the order asked."""
    out, _ = run(capsys, fixture_repo, "spec", "bundle", "base")
    assert out.splitlines() == [EXPECTED["specs"]["bundle"], EXPECTED["specs"]["base"]]


def test_spec_json_of_selected_images(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`spec IMAGE --json` maps only the named images (not their dependencies)."""
    out, _ = run(capsys, fixture_repo, "spec", "server", "--json")
    assert json.loads(out) == {"server": EXPECTED["specs"]["server"]}


def test_describe_text(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`describe` shows fingerprint, spec, dependencies and each input's mode and digest."""
    out, _ = run(capsys, fixture_repo, "describe", "base")
    lines = out.splitlines()
    assert f"fingerprint   {fp('base')}" in lines
    assert f"spec          {EXPECTED['specs']['base']}" in lines
    assert "dependencies  (none)" in lines
    assert "inputs        8 files, " in out
    # git's modes: executable, symlink (its target's content), regular.
    assert any(
        x.startswith("  100755 ") and x.endswith(" images/base/entrypoint.sh") for x in lines
    )
    assert any(x.startswith("  120000 ") and x.endswith(" images/base/entry") for x in lines)
    assert any(x.endswith(" images/base/données.txt") for x in lines)


def test_describe_json_transitive(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`describe --transitive --json` covers the image and all its dependencies."""
    out, _ = run(capsys, fixture_repo, "describe", "bundle", "--transitive", "--json")
    data = json.loads(out)
    assert list(data) == ["base", "server", "tools", "bundle"]
    bundle = data["bundle"]
    assert bundle["fingerprint"] == fp("bundle")
    assert bundle["dependencies"] == {"server": fp("server"), "tools": fp("tools")}
    assert bundle["pre_images"] == []
    tools = data["tools"]
    assert [i["path"] for i in tools["inputs"]] == EXPECTED["inputs"]["tools"]
    assert tools["pre_images"][0]["type"] == "cargo-build"
    assert tools["pre_images"][0]["bins"] == ["tool-a", "tool-b", "tool-explicit"]
    entry = next(i for i in data["base"]["inputs"] if i["path"] == "images/base/entry")
    assert entry["mode"] == "120000"
    assert len(entry["sha1"]) == 40


def test_default_repo_is_git_toplevel(fixture_repo: Path) -> None:
    """Without --repo, the repository is the git top level of the current directory."""
    result = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "spec", "server", "--arch", "x86_64"],
        cwd=fixture_repo / "images" / "base" / "config",
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("CI_")},
    )
    assert result.stdout == EXPECTED["specs"]["server"] + "\n"


def test_environment_defaults(fixture_repo: Path) -> None:
    """CI_LTO selects release, as in the original; flags override the environment."""
    configs = json.loads((VECTORS / "expected.json").read_text())["configs"]
    release = next(c for c in configs if c["options"]["profile"] == "release")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CI_")}
    argv = [sys.executable, "-m", "mzbuild_async", "spec", "base", "--arch", "x86_64"]
    argv += ["--repo", str(fixture_repo)]
    lto = subprocess.run(
        argv, capture_output=True, text=True, check=True, env={**env, "CI_LTO": "1"}
    )
    assert lto.stdout.strip() == release["specs"]["base"]
    forced = subprocess.run(
        [*argv, "--optimized"],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "CI_LTO": "1"},
    )
    assert forced.stdout.strip() == EXPECTED["specs"]["base"]


def test_logs_go_to_stderr_as_json(make_repo_with_warning: Path) -> None:
    """Without a TTY, log events are JSON lines on stderr; stdout holds only results."""
    result = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "list", "--repo", str(make_repo_with_warning)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "a\n"
    event = json.loads(result.stderr.splitlines()[0])
    assert event["level"] == "warning"
    assert "unknown key 'extra'" in event["event"]


@pytest.fixture
def make_repo_with_warning(make_repo: object) -> Path:
    """A repository whose only manifest has an unknown key."""
    assert callable(make_repo)
    root = make_repo({"a/mzbuild.yml": "name: a\nextra: 1\n", "a/Dockerfile": "FROM scratch\n"})
    assert isinstance(root, Path)
    return root


def test_every_command_has_a_runner() -> None:
    """Each subcommand of the parser is run by COMMANDS (``cache``, ``public-key`` and
    ``keygen`` need no repository)."""
    import argparse

    from mzbuild_async.cli.main import COMMANDS
    from mzbuild_async.cli.parser import build_parser

    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(sub.choices) == {*COMMANDS, "cache", "public-key", "keygen"}


@pytest.mark.parametrize("command", ["list", "spec --all", "fingerprint --all", "describe base"])
def test_fingerprinting_commands_import_no_network_or_build_code(
    fixture_repo: Path, command: str
) -> None:
    """They load neither httpx, aiodocker, tenacity, structlog nor the build code (of
    the workflow, only the resolution of settings, [defaults] and the repository's answers)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.argv = ['mzbuild-async', *sys.argv[2].split(), '--repo', sys.argv[1]]\n"
        "from mzbuild_async.cli.main import main\n"
        "main()\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in"
        " ('httpx', 'aiodocker', 'tenacity', 'structlog')"
        " or m.startswith(('mzbuild_async.builds', 'mzbuild_async.workflow.',"
        " 'mzbuild_async.engine', 'mzbuild_async.lookup', 'mzbuild_async.registry'))"
        " and m not in ('mzbuild_async.workflow.resolve', 'mzbuild_async.workflow.inspect',"
        " 'mzbuild_async.workflow.defaults')]\n"
        "print(sorted(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(fixture_repo), command],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.splitlines()[-1] == "[]", result.stdout + result.stderr


#: Flags a command hands its workflow function itself (what to do, not how to run) or
#: renders with: everything else is a setting, resolved once by workflow/resolve.py.
COMMAND_ARGUMENTS = {
    "images", "all", "json", "verbose", "quiet", "log_format", "action", "against",
    "search", "transitive", "allow_unsigned", "key", "check", "apply", "keep_branch",
    "keep_last", "keep_tag", "keep_younger", "trust_local_refs", "base", "head", "steps",
    "tag", "to", "mainline", "workflow", "report", "trace", "timeline", "metadata_file",
    "progress", "otlp", "out", "type",
}  # fmt: skip


def test_every_setting_flag_is_resolved_in_one_place() -> None:
    """Each flag of each command fills a field of the workflow's Flags (or pipeline's),
    unless it is the command's own argument: a new setting cannot be read in cli/."""
    import argparse
    from dataclasses import fields

    from mzbuild_async.cli.flags import flags
    from mzbuild_async.cli.parser import build_parser
    from mzbuild_async.workflow.resolve import Flags
    from mzbuild_async.workflow.shape import PipelineFlags

    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    resolved = {f.name for f in fields(Flags)} | {f.name for f in fields(PipelineFlags)}
    unknown = {
        f"{command} --{action.dest}"
        for command, parser in sub.choices.items()
        for action in parser._actions
        if action.dest not in resolved | COMMAND_ARGUMENTS | {"help"}
    }
    assert not unknown
    given = flags(build_parser().parse_args(["ensure", "--all", "--jobs", "3", "--attest"]))
    assert (given.command, given.jobs, given.attest, given.registries) == ("ensure", 3, True, True)
    assert not flags(build_parser().parse_args(["list"])).registries
