"""``affected --base auto``: the base from the CI job's own variables, in repositories
shaped as the CI systems leave them: a pull request's branch with its target branch
fetched as ``origin/main`` (GitHub, Buildkite, Azure: the merge-base), a merge queue's
merge commit over the target branch (GitHub's ``merge_group`` event: its base_sha), a
merge request or merge train (GitLab: its diff base). Without any, or with a target
branch the clone lacks, one line that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mzbuild_async.cli.main import main
from tests.conftest import MakeRepo, git

FILES = {
    "images/base/mzbuild.yml": "name: base\n",
    "images/base/Dockerfile": "FROM scratch\nCOPY file.txt /\n",
    "images/base/file.txt": "one\n",
    "images/app/mzbuild.yml": "name: app\n",
    "images/app/Dockerfile": "MZFROM base\nCOPY app.txt /\n",
    "images/app/app.txt": "app\n",
    "images/other/mzbuild.yml": "name: other\n",
    "images/other/Dockerfile": "FROM scratch\nCOPY other.txt /\n",
    "images/other/other.txt": "other\n",
}

#: Every variable --base auto reads, cleared before each case.
VARIABLES = (
    "GITHUB_ACTIONS", "GITHUB_BASE_REF", "GITHUB_EVENT_NAME", "GITHUB_EVENT_PATH",
    "GITLAB_CI", "CI_MERGE_REQUEST_DIFF_BASE_SHA", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME",
    "BUILDKITE", "BUILDKITE_PULL_REQUEST", "BUILDKITE_PULL_REQUEST_BASE_BRANCH",
    "TF_BUILD", "SYSTEM_PULLREQUEST_TARGETBRANCH", "GITHUB_OUTPUT",
)  # fmt: skip


def _commit(root: Path, path: str, text: str, message: str) -> str:
    (root / path).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def shaped(make_repo: MakeRepo) -> tuple[Path, dict[str, str]]:
    """main: init, then other changed (after the branch point); the feature branch
    changes app; origin/main as a fetch leaves it; a merge queue's merge commit."""
    root = make_repo(FILES)
    point = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "-b", "feature")
    feature = _commit(root, "images/app/app.txt", "app 2\n", "feature: app")
    git(root, "checkout", "-q", "main")
    main_tip = _commit(root, "images/other/other.txt", "other 2\n", "main: other")
    git(root, "update-ref", "refs/remotes/origin/main", main_tip)
    git(root, "checkout", "-q", "-b", "gh-readonly-queue/main/pr-1", main_tip)
    git(root, "merge", "-q", "--no-ff", "-m", "merge group", "feature")
    queue = git(root, "rev-parse", "HEAD").strip()
    git(root, "checkout", "-q", "feature")
    return root, {"point": point, "feature": feature, "main": main_tip, "queue": queue}


def _affected(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, root: Path,
    *argv: str, **environ: str,
) -> tuple[int, dict[str, object], str]:  # fmt: skip
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    status = main(["affected", "--repo", str(root), "--base", "auto", "--json", *argv])
    out, err = capsys.readouterr()
    return status, (json.loads(out) if status == 0 else {}), err


def _names(document: dict[str, object]) -> list[str]:
    return sorted(str(a["image"]) for a in document["affected"])  # type: ignore[attr-defined]


def test_a_pull_request_is_compared_with_its_merge_base(
    shaped: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, commits = shaped
    for environ in (
        {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main"},
        {
            "BUILDKITE": "true",
            "BUILDKITE_PULL_REQUEST": "7",
            "BUILDKITE_PULL_REQUEST_BASE_BRANCH": "main",
        },
        {"TF_BUILD": "True", "SYSTEM_PULLREQUEST_TARGETBRANCH": "refs/heads/main"},
        {"GITLAB_CI": "true", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"},
    ):
        status, document, err = _affected(capsys, monkeypatch, root, **environ)
        assert status == 0, err
        # Only the branch's own change: main's later change to other is not the PR's.
        assert _names(document) == ["app"], (environ, document)
        assert "merge-base with origin/main" in str(document["base"])
        assert commits["point"][:12] in str(document["base"])


def test_a_merge_queue_and_a_merge_train_use_their_base_commit(
    shaped: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, commits = shaped
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"merge_group": {"base_sha": commits["main"]}}))
    status, document, err = _affected(
        capsys, monkeypatch, root, "--head", commits["queue"], GITHUB_ACTIONS="true",
        GITHUB_EVENT_NAME="merge_group", GITHUB_EVENT_PATH=str(event),
    )  # fmt: skip
    assert status == 0, err
    assert _names(document) == ["app"]  # the group's change over the queue's base
    assert "merge_group event's base_sha" in str(document["base"])
    status, document, err = _affected(
        capsys, monkeypatch, root, "--head", commits["queue"], GITLAB_CI="true",
        CI_MERGE_REQUEST_DIFF_BASE_SHA=commits["main"],
    )  # fmt: skip
    assert status == 0, err
    assert _names(document) == ["app"]
    assert "CI_MERGE_REQUEST_DIFF_BASE_SHA" in str(document["base"])


def test_without_a_base_to_find_it_says_what_to_do(
    shaped: tuple[Path, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = shaped
    # No CI change and a registry that cannot tell: no commit is known published.
    nowhere = ("--image-registry", "127.0.0.1:9/nowhere", "--retries", "1", "--search", "3")
    status, _, err = _affected(capsys, monkeypatch, root, *nowhere)
    assert status == 2
    assert err.count("\n") == 1
    assert "--base auto: none of the last 3 commits has all its images published" in err
    status, _, err = _affected(
        capsys, monkeypatch, root, GITHUB_ACTIONS="true", GITHUB_BASE_REF="release-9"
    )
    assert status == 2
    assert "GITHUB_BASE_REF says release-9, which this clone does not have" in err
    assert "git fetch origin release-9" in err


@pytest.mark.anyio
async def test_outside_a_ci_change_the_last_published_commit_is_the_base(
    shaped: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """No CI variable: the newest first-parent commit whose publishable images the
    registry has (a HEAD each), found on the in-memory seam; none: one line."""
    from mzbuild_async.errors import UsageError
    from mzbuild_async.model.options import BuildOptions
    from mzbuild_async.registry.client import RegistryClient
    from mzbuild_async.registry.names import parse_reference
    from mzbuild_async.registry.writer import RegistryWriter
    from mzbuild_async.source.commits import History
    from mzbuild_async.testing import MemoryRegistry
    from mzbuild_async.workflow.affected import Published, auto_base
    from tests.support.chain import memory_settings

    root, commits = shaped
    options = BuildOptions(image_registry="reg.test/team")
    registry = MemoryRegistry()
    async with History.open(root) as history:
        at_point = await history.at(commits["point"], options)
        specs = await at_point.specs(list(at_point.images))
    async with RegistryClient(transport=registry.transport()) as client:
        writer = RegistryWriter(client)
        for spec in specs.values():
            body = json.dumps({"schemaVersion": 2, "spec": spec}).encode()
            manifest = "application/vnd.oci.image.manifest.v1+json"
            await writer.put_manifest(parse_reference(spec), manifest, body)
    published = Published(memory_settings(registry.transport()), tmp_path / "cache", options, 5)
    base, how = await auto_base(root, None, {}, published)  # HEAD: the feature branch
    assert base == commits["point"]  # the feature's app is not published; its parent is
    assert how == "the last commit whose images are all published"
    empty = Published(memory_settings(MemoryRegistry().transport()), tmp_path / "c2", options, 2)
    with pytest.raises(UsageError, match="none of the last 2 commits"):
        await auto_base(root, None, {}, empty)
