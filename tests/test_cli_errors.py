"""Every bad input gives one clear line naming the place, exit status 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mzbuild_async.cli.main import main
from tests.conftest import MakeRepo

DOCKER = "FROM scratch\n"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (status, stdout, stderr)."""
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def image(name_yaml: str, dockerfile: str = DOCKER, directory: str = "a") -> dict[str, str]:
    return {f"{directory}/mzbuild.yml": name_yaml, f"{directory}/Dockerfile": dockerfile}


CASES = [
    pytest.param(
        image("name: a\npublish: [\n"),
        "a/mzbuild.yml:3:1: malformed YAML:",
        id="malformed-yaml",
    ),
    pytest.param(
        image("name: a\n  bad: indent\n"),
        "a/mzbuild.yml:2:6: malformed YAML: mapping values are not allowed",
        id="malformed-yaml-indent",
    ),
    pytest.param(
        image("- name: a\n"),
        "a/mzbuild.yml: the manifest must be a mapping with at least a 'name' key, not [",
        id="not-a-mapping",
    ),
    pytest.param(
        image(""),
        "a/mzbuild.yml: the manifest must be a mapping with at least a 'name' key, not nothing",
        id="empty-manifest",
    ),
    pytest.param(
        image("publish: true\n"),
        "a/mzbuild.yml:1:1: missing required key 'name'",
        id="missing-name",
    ),
    pytest.param(
        image("name: my image\n"),
        "a/mzbuild.yml:1:7: invalid image name 'my image' (str): use only letters, digits and '-'",
        id="invalid-name",
    ),
    pytest.param(
        image("name: 5\n"),
        "a/mzbuild.yml:1:7: invalid image name 5 (int)",
        id="name-not-a-string",
    ),
    pytest.param(
        image('name: a\npublish: "yes"\n'),
        "a/mzbuild.yml:2:10: 'publish' must be true or false, got 'yes' (str)",
        id="publish-string",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: cargo-build\n    bin: 5\n"),
        "a/mzbuild.yml:4:10: 'bin' must be a name or a list of names, got 5 (int)",
        id="bin-int",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: cargo-build\n    strip: false\n"),
        "a/mzbuild.yml:3:5: cargo-build pre-image 1 names no 'bin' or 'example' to build",
        id="cargo-without-target",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: npm-build\n"),
        "a/mzbuild.yml:3:11: unknown pre-image type 'npm-build' (str) in pre-image 1;"
        " use 'cargo-build' or 'copy'",
        id="unknown-pre-image",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: copy\n    destination: out\n"),
        "a/mzbuild.yml:3:5: copy pre-image 1 is missing required key 'source'",
        id="copy-without-source",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: copy\n    source: misc\n"),
        "a/mzbuild.yml:3:5: copy pre-image 1 is missing required key 'destination'",
        id="copy-without-destination",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: copy\n    source: ../../etc\n    destination: x\n"),
        "a/mzbuild.yml:4:13: copy source '../../etc' points outside the repository",
        id="copy-source-outside",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: copy\n    source: /etc\n    destination: x\n"),
        "a/mzbuild.yml:4:13: copy source '/etc' points outside the repository",
        id="copy-source-absolute",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: copy\n    source: m\n    destination: ../x\n"),
        "a/mzbuild.yml:5:18: copy destination '../x' points outside the image directory",
        id="copy-destination-outside",
    ),
    pytest.param(
        {"a/mzbuild.yml": "name: a\n"},
        "a/Dockerfile: missing; every image directory needs a Dockerfile next to its mzbuild.yml",
        id="missing-dockerfile",
    ),
    pytest.param(
        {**image("name: same\n", directory="x"), **image("name: same\n", directory="y")},
        "duplicate image name 'same' in x/mzbuild.yml and y/mzbuild.yml;"
        " image names must be unique",
        id="duplicate-name",
    ),
    pytest.param(
        image("name: a\n", "FROM scratch\nMZFROM bsae\n") | image("name: base\n", directory="b"),
        "a/Dockerfile:2: MZFROM names unknown image 'bsae' (did you mean 'base'?)",
        id="unknown-mzfrom",
    ),
    pytest.param(
        image("name: a\n", "MZFROM b\n") | image("name: b\n", "MZFROM a\n", directory="b"),
        "dependency cycle: a -> b -> a",
        id="cycle",
    ),
    pytest.param(
        image("name: a\n", "MZFROM a\n"),
        "dependency cycle: a -> a",
        id="self-cycle",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: cargo-build\n    bin: nope\n")
        | {
            "Cargo.toml": '[workspace]\nmembers = ["c"]\n',
            "c/Cargo.toml": '[package]\nname = "c"\nversion = "0.1.0"\n',
            "c/src/main.rs": "fn main() {}\n",
        },
        "a/mzbuild.yml: no workspace crate has a binary named 'nope'",
        id="unknown-bin",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: cargo-build\n    bin: dup\n")
        | {
            "Cargo.toml": '[workspace]\nmembers = ["c", "d"]\n',
            "c/Cargo.toml": '[package]\nname = "c"\nversion = "0.1.0"\n',
            "c/src/bin/dup.rs": "fn main() {}\n",
            "d/Cargo.toml": '[package]\nname = "d"\nversion = "0.1.0"\n',
            "d/src/bin/dup.rs": "fn main() {}\n",
        },
        "a/mzbuild.yml: binary 'dup' is defined by two crates, c and d; rename one",
        id="bin-in-two-crates",
    ),
    pytest.param(
        image("name: a\npre-image:\n  - type: cargo-build\n    bin: a\n"),
        "Cargo.toml: no such file; the Cargo workspace needs it",
        id="cargo-without-workspace",
    ),
]


@pytest.mark.parametrize(("files", "message"), CASES)
def test_bad_input_is_one_clear_line(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str], files: dict[str, str], message: str
) -> None:
    """The CLI prints one error line starting with the expected message and exits 2."""
    root = make_repo(files)
    status, out, err = run_cli(capsys, "spec", "--all", "--repo", str(root))
    assert status == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"mzbuild-async: error: {message}"), lines[0]


def test_unknown_key_warns_by_default(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown key (the real tree's split_debuginfo) is a warning and the run succeeds."""
    root = make_repo(image("name: a\nsplit_debuginfo: true\n"))
    status, out, err = run_cli(capsys, "list", "--repo", str(root))
    assert status == 0
    assert out == "a\n"
    assert "a/mzbuild.yml:2:1: unknown key 'split_debuginfo'" in err


def test_unknown_key_is_an_error_with_strict(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --strict the unknown key is a one-line error with exit status 2."""
    root = make_repo(
        image(
            "name: a\npre-image:\n  - type: copy\n    source: s\n    destination: d\n    bogus: 1\n"
        )
    )
    status, out, err = run_cli(capsys, "list", "--strict", "--repo", str(root))
    assert status == 2
    assert out == ""
    assert err.strip() == (
        "mzbuild-async: error: a/mzbuild.yml:6:5: unknown key 'bogus' in copy pre-image 1"
        " (mzbuild ignores it)"
    )


def test_not_a_git_repository(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory outside any git repository is named in a one-line error."""
    (tmp_path / "plain").mkdir()
    status, _, err = run_cli(capsys, "list", "--repo", str(tmp_path / "plain"))
    assert status == 2
    assert err.strip() == (
        f"mzbuild-async: error: {tmp_path / 'plain'}: not a git repository;"
        " run inside a git checkout or pass --repo"
    )


def test_missing_repo_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A --repo that does not exist is named in a one-line error."""
    status, _, err = run_cli(capsys, "list", "--repo", str(tmp_path / "nope"))
    assert status == 2
    assert err.strip() == (
        f"mzbuild-async: error: {tmp_path / 'nope'}: no such directory; pass an existing --repo"
    )


def test_unknown_image_name(make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]) -> None:
    """Asking for an image that does not exist suggests the closest name."""
    root = make_repo(image("name: server\n"))
    status, out, err = run_cli(capsys, "spec", "sever", "--repo", str(root))
    assert (status, out) == (2, "")
    assert err.strip() == (
        "mzbuild-async: error: unknown image 'sever' (did you mean 'server'?);"
        " `mzbuild-async list` shows the images"
    )


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        pytest.param(["--arch", "mips"], {}, "unknown architecture 'mips'", id="arch"),
        pytest.param(["--profile", "fast"], {}, "unknown profile 'fast'", id="profile"),
        pytest.param(["--sanitizer", "bogus"], {}, "--sanitizer: unknown sanitizer", id="san"),
        pytest.param([], {"CI_SANITIZER": "bogus"}, "CI_SANITIZER: unknown sanitizer", id="env"),
        pytest.param(
            ["--image-registry", "ghcr.io/acme/"], {}, "invalid image registry", id="registry"
        ),
        pytest.param(
            ["--image-registry", "host/a;b"],
            {},
            "invalid image registry 'host/a;b': 'a;b' is not a repository name component",
            id="registry-semicolon",
        ),
        pytest.param(
            ["--image-registry", "a b"],
            {},
            "invalid image registry 'a b': 'a b' is not a repository name component",
            id="registry-space",
        ),
        pytest.param(
            ["--image-prefix", "Bad-"],
            {},
            "invalid image prefix 'Bad-': 'Bad-image' is not a repository name component",
            id="prefix",
        ),
    ],
)
def test_bad_options(
    make_repo: MakeRepo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    """Invalid options and environment defaults are one-line errors with exit status 2."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    root = make_repo(image("name: a\n"))
    status, out, err = run_cli(capsys, "spec", "--all", "--repo", str(root), *argv)
    assert (status, out) == (2, "")
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(f"mzbuild-async: error: {message}")


def test_targets_and_all_are_exclusive(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Naming images and --all together, or neither, is a usage error."""
    root = make_repo(image("name: a\n"))
    assert run_cli(capsys, "spec", "a", "--all", "--repo", str(root))[0] == 2
    status, _, err = run_cli(capsys, "fingerprint", "--repo", str(root))
    assert status == 2
    assert "name at least one IMAGE, or pass --all" in err


def test_console_script_prints_no_traceback(make_repo: MakeRepo) -> None:
    """Through a real process (python -m), a bad manifest is still one line, status 2."""
    root = make_repo(image("name: a\npublish: [\n"))
    result = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "spec", "--all", "--repo", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("mzbuild-async: error: a/mzbuild.yml:3:1: malformed YAML")


@pytest.mark.parametrize("extra", [["b"], ["--all"]], ids=["image", "all"])
def test_only_takes_no_other_targets(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str], extra: list[str]
) -> None:
    """``ensure --only A=FP`` with other targets: one line, exit 2, before any lookup
    (the extra targets would become awaited images that time out)."""
    root = make_repo({**image("name: a\n"), **image("name: b\n", directory="b")})
    status, out, err = run_cli(
        capsys, "ensure", "--only", "a=AAAA", *extra, "--repo", str(root),
        "--image-registry", "127.0.0.1:1/none",
    )  # fmt: skip
    assert (status, out) == (2, "")
    assert err.strip().splitlines() == [
        "mzbuild-async: error: ensure: --only names a CI step's own images, which are its"
        " targets; give no IMAGE or --all with it"
    ]


@pytest.mark.parametrize("command", ["acquire", "ensure", "build"])
def test_an_unreachable_engine_is_one_line_and_leaves_no_session_open(
    make_repo: MakeRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    """The local engine at a closed port: one line, and the engine client made for it is
    closed (an unclosed aiohttp session would print two more lines at exit; here, with
    warnings as errors, it fails the test when collected)."""
    import gc

    root = make_repo({"a/mzbuild.yml": "name: a\n", "a/Dockerfile": "FROM scratch\n"})
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    argv = [command, "a", "--repo", str(root), "--cache-dir", str(tmp_path / "c"), "-q"]
    status = main([*argv, "--image-registry", "127.0.0.1:9/x", "--retries", "1"])
    gc.collect()
    err = capsys.readouterr().err
    assert status == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "the Docker engine could not be reached" in lines[0]


def test_ctrl_c_while_the_modules_load_is_one_line_and_130() -> None:
    """A Ctrl-C that comes while ``python -m mzbuild_async`` is still importing (a
    loaded machine can take a second or more) ends it with one line and status 130,
    not a traceback (the interrupt is raised where ``asyncio`` is first imported)."""
    code = (
        "import builtins, runpy\n"
        "real = builtins.__import__\n"
        "def interrupted(name, *args, **kwargs):\n"
        "    if name == 'asyncio':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = interrupted\n"
        "runpy.run_module('mzbuild_async', run_name='__main__')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    assert done.stderr == "mzbuild-async: interrupted while starting; nothing was done\n"
