"""affected: the answer equals comparing ``spec --all`` at both commits (each checked
out, as the oracle), with the right reasons; steps run or skip as their images and
paths say; no limit on how many files changed; bad input is one line."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mzbuild_async.cli.main import main
from tests.conftest import git
from tests.support.schemas import validate

FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["crates/*"]\n',
    "crates/a/Cargo.toml": '[package]\nname = "a"\n[dependencies]\nb = { path = "../b" }\n',
    "crates/a/src/main.rs": "fn main() {}\n",
    "crates/b/Cargo.toml": '[package]\nname = "b"\n',
    "crates/b/src/lib.rs": "pub fn b() {}\n",
    "images/base/mzbuild.yml": "name: base\n",
    "images/base/Dockerfile": "FROM scratch\nCOPY . /\n",
    "images/base/file.txt": "one\n",
    "images/app/mzbuild.yml": "name: app\npre-image:\n  - type: cargo-build\n    bin: a\n",
    "images/app/Dockerfile": "MZFROM base\n",
    "images/other/mzbuild.yml": "name: other\n",
    "images/other/Dockerfile": "FROM scratch\n",
    "docs/readme.md": "docs\n",
}


def _write(root: Path, path: str, text: str) -> None:
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(text)


def _many(root: Path, text: str) -> None:
    for i in range(500):
        _write(root, f"images/base/many/f{i:03}.txt", f"{text} {i}\n")


#: Each change, the images it affects, and a reason each must give.
CHANGES: list[tuple[str, Callable[[Path], Any], dict[str, str]]] = [
    (
        "input",
        lambda r: _write(r, "images/base/file.txt", "two\n"),
        {"base": "content images/base/file.txt", "app": "parent base"},
    ),
    (
        "dockerfile",
        lambda r: _write(r, "images/other/Dockerfile", "FROM scratch\nLABEL x=y\n"),
        {"other": "content images/other/Dockerfile"},
    ),
    (
        "cargo path dependency",
        lambda r: _write(r, "crates/b/src/lib.rs", "pub fn b() { }\n"),
        {"app": "content crates/b/src/lib.rs"},
    ),
    (
        "option only",
        lambda r: _write(r, "images/other/mzbuild.yml", "name: other\nbuild-args:\n  X: y\n"),
        {"other": "content images/other/mzbuild.yml"},
    ),
    (
        "rename",
        lambda r: (r / "images/base/file.txt").rename(r / "images/base/renamed.txt"),
        {"base": "added images/base/renamed.txt", "app": "parent base"},
    ),
    (
        "mode",
        lambda r: os.chmod(r / "images/base/renamed.txt", 0o755),
        {"base": "mode images/base/renamed.txt", "app": "parent base"},
    ),
    (
        "500 files added",
        lambda r: _many(r, "first"),
        {"base": "added images/base/many/f499.txt", "app": "parent base"},
    ),
    (
        "500 files edited",
        lambda r: _many(r, "second"),
        {"base": "content images/base/many/f000.txt", "app": "parent base"},
    ),
    ("docs only", lambda r: _write(r, "docs/readme.md", "more docs\n"), {}),
]


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """The process's environment with ``values`` set (as the CI system sets them)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in values.items():
            patch.setenv(name, value)
        yield


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("affected") / "repo"
    for path, text in FILES.items():
        _write(root, path, text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "init")
    commits = [git(root, "rev-parse", "HEAD").strip()]
    for what, change, _ in CHANGES:
        change(root)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", what)
        commits.append(git(root, "rev-parse", "HEAD").strip())
    return root, commits


def _specs(root: Path, commit: str, where: Path) -> dict[str, str]:
    """The oracle: ``spec --all --json`` in a worktree checked out at ``commit``."""
    import subprocess
    import sys

    git(root, "worktree", "add", "-q", "--detach", str(where), commit)
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "mzbuild_async",
                "spec",
                "--all",
                "--json",
                "--repo",
                str(where),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )
        specs: dict[str, str] = json.loads(out.stdout)
        return specs
    finally:
        git(root, "worktree", "remove", "--force", str(where))


def test_each_change_affects_what_spec_all_at_both_commits_says(
    history: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, commits = history
    specs = [_specs(root, c, tmp_path / f"wt{i}") for i, c in enumerate(commits)]
    for i, (what, _, reasons) in enumerate(CHANGES, start=1):
        base, head = commits[i - 1], commits[i]
        status, out, err = _run(
            capsys, "affected", "--repo", str(root), "--base", base, "--head", head, "--json"
        )
        assert status == 0, err
        document = json.loads(out)
        validate(document, "affected.json")
        got = {a["image"]: a for a in document["affected"]}
        oracle = {n for n in specs[i] if specs[i][n] != specs[i - 1].get(n)}
        assert set(got) == oracle, what
        assert set(reasons) == oracle, what  # (the table above agrees with the oracle)
        for name, reason in reasons.items():
            assert reason in got[name]["reasons"], (what, got[name]["reasons"])
            assert got[name]["head"] == specs[i][name].rsplit("-", 1)[1]
        if what == "500 files edited":
            assert len(document["files"]) == 500


def test_the_working_tree_is_the_default_head(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _commits = history
    _write(root, "crates/a/src/main.rs", "fn main() { }\n")
    try:
        status, out, _ = _run(capsys, "affected", "--repo", str(root), "--base", "HEAD")
        assert status == 0
        assert "the working tree" in out.splitlines()[0]
        assert "changed  app  content crates/a/src/main.rs" in out
        assert "1 affected, 2 unchanged; 1 file differs" in out
    finally:
        git(root, "checkout", "-q", "--", "crates/a/src/main.rs")


STEPS = """\
steps:
  - key: app-tests
    images: [app]
    command: make test-app
  - key: other-tests
    label: ":test_tube: other"
    images: [other]
  - key: docs
    paths: ["docs/*"]
  - key: lint
    always: true
"""


def test_steps_run_or_skip_with_reasons_in_every_format(
    history: tuple[Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from importlib.resources import files

    import jsonschema

    root, commits = history
    steps = tmp_path / "steps.yml"
    steps.write_text(STEPS)
    output = tmp_path / "github_output"
    output.write_text("")
    base, head = commits[2], commits[3]  # the cargo path dependency: app only
    argv = ["affected", "--repo", str(root), "--base", base, "--head", head, "--steps", str(steps)]
    status, out, _ = _run(capsys, *argv)
    assert status == 0
    assert "run  app-tests: app changed" in out
    assert "skip other-tests: nothing it uses (other) changed since" in out
    assert "skip docs: nothing it uses (docs/*) changed since" in out
    assert "run  lint: always runs" in out
    # Buildkite: every step, the skipped ones with a reason; valid by the published schema.
    status, out, _ = _run(capsys, *argv, "--format", "buildkite")
    import yaml

    pipeline = yaml.safe_load(out)
    schema = json.loads(
        files("check_jsonschema.builtin_schemas.vendor").joinpath("buildkite.json").read_text()
    )
    jsonschema.validate(pipeline, schema)
    skipped = {s["key"]: s.get("skip") for s in pipeline["steps"]}
    assert skipped["app-tests"] is None
    assert skipped["lint"] is None
    assert str(skipped["docs"]).startswith("nothing it uses (docs/*) changed since")
    assert all(len(str(s)) <= 70 for s in skipped.values())
    # GitHub Actions: a matrix of the steps to run, and step outputs.
    with _environment(GITHUB_ACTIONS="true", GITHUB_OUTPUT=str(output)):
        status, out, _ = _run(capsys, *argv, "--format", "github")
    matrix = json.loads(out)
    assert [m["key"] for m in matrix["include"]] == ["app-tests", "lint"]
    assert matrix["include"][0]["command"] == "make test-app"
    written = output.read_text()
    assert "affected=app\n" in written
    assert f"matrix={json.dumps(matrix)}\n" in written
    # Azure Pipelines: output variables, as logging commands the agent reads.
    with _environment(TF_BUILD="True"):
        status, _, err = _run(capsys, *argv)
    assert status == 0
    assert "##vso[task.setvariable variable=affected;isoutput=true]app\n" in err
    assert "##vso[task.setvariable variable=run;isoutput=true]app-tests lint\n" in err
    # A docs-only change runs the docs step (a path), not the image steps.
    status, out, _ = _run(
        capsys,
        "affected",
        "--repo",
        str(root),
        "--base",
        commits[-2],
        "--head",
        commits[-1],
        "--steps",
        str(steps),
    )
    assert "run  docs: docs/readme.md changed" in out
    assert "skip app-tests" in out


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("steps: [{key: a, images: [nope]}]\n", "step 'a': no image 'nope' at either side"),
        ("steps: [{key: a, imgs: [app]}]\n", "step 1: unknown key 'imgs'"),
        ("steps: [{images: [app]}]\n", "step 1: needs a 'key'"),
        ("steps: [{key: a}, {key: a}]\n", "step 'a': the key is used twice"),
        ("steps: {a: 1}\n", "needs a 'steps' list"),
        ("steps: [\n", "malformed YAML"),
        pytest.param(
            "steps: " + "[" * 100_000 + "]" * 100_000 + "\n",
            "steps.yml:1:71: nested more than 64 levels deep; fix the steps file",
            id="a flow list 100k deep",
        ),
        pytest.param(
            "steps:\n" + "".join(" " * (i + 1) + "- \n" for i in range(2000)),
            "nested more than 64 levels deep",
            id="block lists 2000 deep",
        ),
    ],
)
def test_a_bad_steps_file_is_one_line(
    history: tuple[Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    steps: str,
    message: str,
) -> None:
    root, _ = history
    path = tmp_path / "steps.yml"
    path.write_text(steps)
    status, _out, err = _run(
        capsys, "affected", "--repo", str(root), "--base", "HEAD~1", "--steps", str(path)
    )
    assert status == 2
    assert message in err
    assert err.strip().count("\n") == 0


def test_an_unknown_base_is_one_line(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, _ = history
    status, _, err = _run(capsys, "affected", "--repo", str(root), "--base", "no-such-branch")
    assert status == 2
    assert "--base no-such-branch: no such revision" in err
    status, _, err = _run(
        capsys, "affected", "--repo", str(root), "--base", "HEAD", "--format", "github"
    )
    assert status == 2
    assert "--format github needs --steps FILE" in err


def test_a_base_missing_from_a_shallow_clone_says_fetch_it(
    history: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, commits = history
    shallow = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth=1", f"file://{root}", str(shallow))
    status, _, err = _run(capsys, "affected", "--repo", str(shallow), "--base", commits[0])
    assert status == 2
    assert "this is a shallow clone: fetch it (git fetch origin" in err
    assert err.strip().count("\n") == 0


def test_a_deep_chain_is_accounted_for_once_per_image(tmp_path: Path) -> None:
    """A 300-deep chain whose root changed: every image is affected, each with its
    parent as the reason, and each image is described once per side (a chain of N
    costs N accounts, not N squared: 1,200 deep took 36 s that way)."""
    import anyio

    from mzbuild_async.model.options import Arch, BuildOptions
    from mzbuild_async.source.affected import compare, sides
    from mzbuild_async.source.repository import Repository

    depth = 300
    root = tmp_path / "chain"
    for i in range(depth):
        parent = f"MZFROM c{i - 1}" if i else "FROM scratch"
        _write(root, f"c{i}/mzbuild.yml", f"name: c{i}\n")
        _write(root, f"c{i}/Dockerfile", f"{parent}\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "chain")
    _write(root, "c0/Dockerfile", "FROM scratch\n# changed\n")
    calls: dict[str, int] = {}

    async def run() -> list[Any]:
        repo = await Repository.open(root, BuildOptions(arch=Arch.X86_64))
        async with sides(repo, "HEAD", None) as (base, head, _, _):
            for label, side in (("base", base), ("head", head)):
                described = side.describe

                async def counted(name: str, _d: Any = described, _l: str = label) -> Any:
                    calls[_l] = calls.get(_l, 0) + 1
                    return await _d(name)

                side.describe = counted  # type: ignore[method-assign]
            found, _unchanged = await compare(base, head)
            return found

    found = anyio.run(run)
    assert [a.image for a in found] == [f"c{i}" for i in range(depth)]
    assert found[0].reasons() == ["content c0/Dockerfile"]
    assert all(a.reasons() == [f"parent c{i - 1}"] for i, a in enumerate(found) if i)
    assert calls == {"base": depth, "head": depth}
