"""``[defaults]`` in mzbuild-async.toml and ``MZBUILD_ASYNC_IMAGE_*``: a team sets its
registry (and prefix, arch, profile) once; flags win over the environment, the
environment over the file; without any, Materialize's registry, and a command that
would talk to it says so once."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async.cli.main import main
from tests.conftest import MakeRepo

FILES = {"a/mzbuild.yml": "name: a\n", "a/Dockerfile": "FROM scratch\n"}


def _spec(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, root: Path,
    *argv: str, **environ: str,
) -> tuple[int, str, str]:  # fmt: skip
    for name in ("MZBUILD_ASYNC_IMAGE_REGISTRY", "MZBUILD_ASYNC_IMAGE_PREFIX", "CI_LTO",
                 "DOCKER_DEFAULT_PLATFORM"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    status = main(["spec", "a", "--repo", str(root), *argv])
    out, err = capsys.readouterr()
    return status, out.strip(), err


def test_the_file_sets_the_registry_and_flags_and_environment_win(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(
        {
            **FILES,
            "mzbuild-async.toml": '[defaults]\nimage-registry = "reg.test/team"\n'
            'image-prefix = "ci-"\narch = "aarch64"\nprofile = "dev"\n',
        }
    )
    status, spec, _ = _spec(capsys, monkeypatch, root)
    assert status == 0
    assert spec.startswith("reg.test/team/ci-a:mzbuild-")
    dev_arm = spec
    _, explicit, _ = _spec(capsys, monkeypatch, root, "--arch", "aarch64", "--dev")
    assert explicit == dev_arm  # (the file's arch and profile are the options' values)
    _, env, _ = _spec(
        capsys, monkeypatch, root,
        MZBUILD_ASYNC_IMAGE_REGISTRY="env.test/x", MZBUILD_ASYNC_IMAGE_PREFIX="",
    )  # fmt: skip
    assert env.startswith("env.test/x/a:mzbuild-")
    _, flag, _ = _spec(
        capsys, monkeypatch, root, "--image-registry", "flag.test/y",
        MZBUILD_ASYNC_IMAGE_REGISTRY="env.test/x",
    )  # fmt: skip
    assert flag.startswith("flag.test/y/ci-a:mzbuild-")
    _, platform, _ = _spec(capsys, monkeypatch, root, DOCKER_DEFAULT_PLATFORM="linux/amd64")
    _, amd, _ = _spec(capsys, monkeypatch, root, "--arch", "x86_64")
    assert platform == amd != dev_arm
    _, lto, _ = _spec(capsys, monkeypatch, root, CI_LTO="1")
    _, release, _ = _spec(capsys, monkeypatch, root, "--release")
    assert lto == release != dev_arm


@pytest.mark.parametrize(
    ("table", "says"),
    [
        ('image-registry = ""', "[defaults] image-registry must be a non-empty string"),
        ("arch = 7", "[defaults] arch must be a non-empty string"),
        ('arch = "s390x"', "[defaults]: unknown architecture 's390x'"),
        ('registry = "x"', "[defaults] has no setting 'registry'"),
    ],
)
def test_a_bad_default_is_one_line_naming_the_file(
    make_repo: MakeRepo,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    says: str,
) -> None:
    root = make_repo({**FILES, "mzbuild-async.toml": f"[defaults]\n{table}\n"})
    status, _, err = _spec(capsys, monkeypatch, root)
    assert status == 2
    assert err.count("\n") == 1
    assert f"mzbuild-async.toml: {says}" in err


def test_the_original_registry_is_said_once_where_a_command_talks_to_it(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_repo(FILES)
    monkeypatch.delenv("MZBUILD_ASYNC_IMAGE_REGISTRY", raising=False)
    cache = str(root / ".cache")
    argv = ["plan", "a", "--repo", str(root), "--tiers", "memory", "--cache-dir", cache]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert err.count("no image registry is set: using ghcr.io/materializeinc/materialize") == 1
    assert "[defaults] image-registry" in err
    # spec talks to no registry: nothing said.
    assert main(["spec", "a", "--repo", str(root)]) == 0
    assert "no image registry" not in capsys.readouterr().err
    (root / "mzbuild-async.toml").write_text('[defaults]\nimage-registry = "reg.test/t"\n')
    assert main(argv) == 0
    assert "no image registry" not in capsys.readouterr().err
