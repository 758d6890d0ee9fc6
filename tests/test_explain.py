"""explain on real git histories: edits, chmod, dependencies, options, specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import MakeRepo, git
from tests.support.schemas import validate

FILES = {
    "images/base/mzbuild.yml": "name: base\n",
    "images/base/Dockerfile": "FROM scratch\n",
    "images/base/base.txt": "base v1\n",
    "images/app/mzbuild.yml": "name: app\n",
    "images/app/Dockerfile": "MZFROM base\nCOPY app.sh /\n",
    "images/app/app.sh": "echo app\n",
    "images/app/old.txt": "to be removed\n",
    "shared/data.txt": "shared\n",
}


def explain(root: Path, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "explain", "--repo", str(root), "--dev", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout + result.stderr


def explain_json(root: Path, *args: str) -> dict[str, Any]:
    status, out = explain(root, *args, "--json")
    assert status == 0, out
    document: dict[str, Any] = json.loads(out)
    validate(document, "explain.json")
    return document


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)


def test_edits_chmod_additions_and_removals(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    (root / "images/app/app.sh").write_text("echo app v2\n")
    (root / "images/app/app.sh").chmod(0o755)
    (root / "images/app/new.txt").write_text("new\n")
    (root / "images/app/old.txt").unlink()
    commit(root, "edit app")
    document = explain_json(root, "app")
    assert not document["same"]
    assert document["against"].startswith("HEAD~1 (")
    assert document["added"] == ["images/app/new.txt"]
    assert document["removed"] == ["images/app/old.txt"]
    assert [(c["path"], c["kind"], c["mode"]) for c in document["changed"]] == [
        ("images/app/app.sh", "content+mode", ["100644", "100755"])
    ]
    assert document["dependencies"] == []  # base did not change
    assert document["options"] == []
    status, text = explain(root, "app")
    assert status == 0
    assert "added     images/app/new.txt" in text
    assert "changed   images/app/app.sh (and mode 100644 -> 100755)" in text


def test_a_mode_only_change(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    (root / "images/base/base.txt").chmod(0o755)
    commit(root, "chmod")
    document = explain_json(root, "base")
    assert [(c["path"], c["kind"]) for c in document["changed"]] == [
        ("images/base/base.txt", "mode")
    ]
    sha1 = document["changed"][0]["sha1"]
    assert sha1[0] == sha1[1]


def test_a_dependency_change_is_explained_down_to_its_files(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    (root / "images/base/base.txt").write_text("base v2\n")
    commit(root, "edit base")
    document = explain_json(root, "app")
    assert not document["same"]
    assert document["added"] == document["removed"] == document["changed"] == []
    [dep] = document["dependencies"]
    assert dep["image"] == "base"
    assert [c["path"] for c in dep["changed"]] == ["images/base/base.txt"]
    _status, text = explain(root, "app")
    assert "dependency base changed:" in text
    assert "changed   images/base/base.txt" in text


def test_an_option_change(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    (root / "images/app/mzbuild.yml").write_text(
        "name: app\npre-image:\n  - type: copy\n    source: shared\n    destination: vendor\n"
    )
    commit(root, "copy pre-image")
    document = explain_json(root, "app")
    options = {o["what"]: (o["other"], o["this"]) for o in document["options"]}
    assert options["pre-images"] == ("0", "1")
    assert "pre-image 1 (copy) extra" in options
    assert "shared/data.txt" in document["added"]
    assert [c["path"] for c in document["changed"]] == ["images/app/mzbuild.yml"]


def test_the_same_fingerprint_and_a_new_image(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    (root / "README.md").write_text("not an input\n")
    (root / "images/new/mzbuild.yml").parent.mkdir(parents=True)
    (root / "images/new/mzbuild.yml").write_text("name: new\n")
    (root / "images/new/Dockerfile").write_text("FROM scratch\n")
    commit(root, "unrelated")
    assert explain_json(root, "app")["same"]
    status, text = explain(root, "app")
    assert status == 0
    assert "the same at HEAD~1" in text
    assert explain_json(root, "new")["other"] is None


def test_against_a_spec_finds_its_commit(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    spec_of = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "spec", "app", "--repo", str(root), "--dev"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    first = git(root, "rev-parse", "HEAD").strip()
    for i in range(3):
        (root / "images/app/app.sh").write_text(f"echo app v{i + 2}\n")
        commit(root, f"v{i + 2}")
    document = explain_json(root, "app", "--against", spec_of)
    assert first[:12] in document["against"]
    assert document["other"] == spec_of.rsplit("-", 1)[1]
    assert [c["path"] for c in document["changed"]] == ["images/app/app.sh"]
    status, text = explain(root, "app", "--against", spec_of, "--search", "2")
    assert status == 1
    assert "no commit among the last 2" in text


def test_the_working_tree_and_index_are_untouched(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    (root / "images/app/app.sh").write_text("echo committed\n")
    commit(root, "edit")
    (root / "images/app/app.sh").write_text("echo uncommitted\n")  # a local edit
    (root / "images/app/scratch.txt").write_text("untracked\n")
    before_status = git(root, "status", "--porcelain")
    index = (root / ".git" / "index").read_bytes()
    stats = {p: p.stat().st_mtime_ns for p in root.rglob("*") if ".git" not in p.parts}
    document = explain_json(root, "app")
    assert "images/app/scratch.txt" in document["added"]  # the working tree side is live
    assert git(root, "status", "--porcelain") == before_status
    assert (root / ".git" / "index").read_bytes() == index
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if ".git" not in p.parts} == stats
    assert git(root, "worktree", "list").count("\n") == 1


def test_a_bad_revision_is_one_clear_line(make_repo: MakeRepo) -> None:
    root = make_repo(FILES)
    status, text = explain(root, "app", "--against", "no-such-branch")
    assert status == 2
    assert text.strip().splitlines() == [
        f"mzbuild-async: error: --against no-such-branch: no such revision in {root};"
        " give a commit, branch or tag (or an image spec)"
    ]
