"""The git view: tracked-and-present plus untracked-not-ignored, from one git call."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from mzbuild_async.errors import GitError
from mzbuild_async.gitview import GitView, find_toplevel, load_git_view
from tests.conftest import MakeRepo, git


def view(root: Path) -> GitView:
    return anyio.run(load_git_view, root)


def test_visible_files(make_repo: MakeRepo) -> None:
    """Tracked files still present and untracked non-ignored files are visible; nothing else."""
    root = make_repo(
        {
            ".gitignore": "*.log\nbuild/\n",
            "kept.txt": "x",
            "deleted.txt": "x",
            "dir/données with space.txt": "x",
        }
    )
    (root / "tracked.log").write_text("tracked, though it matches .gitignore")
    git(root, "add", "-f", "tracked.log")
    (root / "deleted.txt").unlink()
    (root / "untracked.txt").write_text("x")
    (root / "ignored.log").write_text("x")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_text("x")
    assert view(root).paths == (
        ".gitignore",
        "dir/données with space.txt",
        "kept.txt",
        "tracked.log",
        "untracked.txt",
    )


def test_staged_but_uncommitted_files_are_visible(make_repo: MakeRepo) -> None:
    """A file added to the index but never committed is tracked, hence visible."""
    root = make_repo({"a": "x"})
    (root / "b").write_text("y")
    git(root, "add", "b")
    assert "b" in view(root)


def test_under_is_a_directory_prefix(make_repo: MakeRepo) -> None:
    """under("a") holds a/... but not ab/... or a.txt; under("") is everything."""
    root = make_repo({"a/x": "", "a/sub/y": "", "ab/z": "", "a.txt": "", "b": ""})
    v = view(root)
    assert v.under("a") == ("a/sub/y", "a/x")
    assert v.under("a/") == ("a/sub/y", "a/x")
    assert v.under("nope") == ()
    assert v.under("") == v.paths
    assert list(v.named("y")) == ["a/sub/y"]
    assert "a/x" in v
    assert "a" not in v


def test_subdirectory_as_root(make_repo: MakeRepo) -> None:
    """A --repo inside a larger checkout sees paths relative to itself."""
    root = make_repo({"outer.txt": "", "inner/x.txt": "", "inner/d/y.txt": ""})
    assert view(root / "inner").paths == ("d/y.txt", "x.txt")


def test_find_toplevel(make_repo: MakeRepo) -> None:
    """The top level of the checkout holding a subdirectory."""
    root = make_repo({"a/b/c.txt": ""})
    assert anyio.run(find_toplevel, root / "a" / "b") == root


def test_not_a_repository(tmp_path: Path) -> None:
    """A plain directory is a GitError naming it."""
    with pytest.raises(GitError, match="not a git repository"):
        view(tmp_path)
