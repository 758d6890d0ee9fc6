"""The git view: tracked-and-present plus untracked-not-ignored, from one git call."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mzbuild_async.errors import GitError
from mzbuild_async.source.gitview import (
    LABEL_REVISION,
    LABEL_SOURCE,
    GitView,
    find_toplevel,
    load_git_view,
    source_labels,
    source_url,
)
from tests.conftest import MakeRepo, git, write_tree


def view(root: Path) -> GitView:
    return anyio.run(load_git_view, root)


def static_view(*paths: str) -> GitView:
    """A view over fixed paths, for the pure lookups (no git involved)."""
    return GitView(root=Path("/nonexistent"), paths=tuple(sorted(paths)))


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


def _stage_new(root: Path) -> None:
    write_tree(root, {"f": "new"})
    git(root, "add", "f")


def _stage_then_delete(root: Path) -> None:
    _stage_new(root)
    (root / "f").unlink()


def _move_outside_git(root: Path) -> None:
    (root / "tracked").rename(root / "f")


def _untrack(root: Path) -> None:
    git(root, "rm", "-q", "--cached", "tracked")


def _untrack_ignored(root: Path) -> None:
    git(root, "rm", "-q", "--cached", "ignored-but-tracked.txt")


def _modify(root: Path) -> None:
    (root / "tracked").write_text("changed in the working tree")


def _info_exclude(root: Path) -> None:
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("f\n")
    write_tree(root, {"f": ""})


#: Committed first: ``tracked``, and ``ignored-but-tracked.txt`` matching .gitignore.
BASE = {
    ".gitignore": "*.txt\nout/\n",
    "sub/.gitignore": "*.tmp\n",
    "tracked": "x",
    "ignored-but-tracked.txt": "x",
}


@pytest.mark.parametrize(
    ("change", "path", "visible"),
    [
        pytest.param(None, "tracked", True, id="tracked-and-present"),
        pytest.param(
            lambda root: (root / "tracked").unlink(), "tracked", False, id="tracked-but-deleted"
        ),
        pytest.param(_modify, "tracked", True, id="tracked-and-modified"),
        pytest.param(None, "ignored-but-tracked.txt", True, id="tracked-matching-gitignore"),
        pytest.param(lambda root: write_tree(root, {"f": ""}), "f", True, id="untracked"),
        pytest.param(lambda root: write_tree(root, {"f.txt": ""}), "f.txt", False, id="ignored"),
        pytest.param(
            lambda root: write_tree(root, {"out/f": ""}), "out/f", False, id="in-ignored-directory"
        ),
        pytest.param(
            lambda root: write_tree(root, {"sub/f.tmp": ""}),
            "sub/f.tmp",
            False,
            id="ignored-by-nested-gitignore",
        ),
        pytest.param(
            lambda root: write_tree(root, {"f.tmp": ""}),
            "f.tmp",
            True,
            id="nested-gitignore-does-not-reach-up",
        ),
        pytest.param(_info_exclude, "f", False, id="ignored-by-info-exclude"),
        pytest.param(_stage_new, "f", True, id="staged-never-committed"),
        pytest.param(_stage_then_delete, "f", False, id="staged-then-deleted"),
        pytest.param(_move_outside_git, "tracked", False, id="moved-away-old-name"),
        pytest.param(_move_outside_git, "f", True, id="moved-away-new-name"),
        pytest.param(_untrack, "tracked", True, id="untracked-by-rm-cached"),
        pytest.param(
            _untrack_ignored, "ignored-but-tracked.txt", False, id="rm-cached-and-ignored"
        ),
        pytest.param(lambda root: (root / "empty").mkdir(), "empty", False, id="empty-directory"),
    ],
)
def test_visibility(
    make_repo: MakeRepo, change: Callable[[Path], None] | None, path: str, visible: bool
) -> None:
    """Visible = tracked and present in the working tree, or untracked and not ignored."""
    root = make_repo(BASE)
    git(root, "add", "-f", "ignored-but-tracked.txt")
    git(root, "commit", "-q", "-m", "force-add a file matching .gitignore")
    if change is not None:
        change(root)
    assert (path in view(root)) is visible


NAMES = [
    "plain.txt",
    "with space/and more spaces.txt",
    "données/é.txt",
    "日本語/ファイル.rs",
    "emoji-🦀.md",
    "tab\there",
    "new\nline",
    'quote"d',
    "back\\slash",
    "-leading-dash",
    "#hash",
]


@pytest.mark.parametrize(
    "tracked", [pytest.param(True, id="tracked"), pytest.param(False, id="untracked")]
)
def test_unusual_names_round_trip(make_repo: MakeRepo, tracked: bool) -> None:
    """Spaces, non-ASCII, tabs, newlines and quotes come back verbatim, as UTF-8 text."""
    files = {name: f"content of {name}" for name in NAMES}
    root = make_repo(files, commit=tracked)
    found = view(root)
    assert found.paths == tuple(sorted(NAMES))
    for name in NAMES:
        assert (root / name).read_text() == files[name]


def test_non_utf8_name_stays_openable(make_repo: MakeRepo) -> None:
    """A name that is not UTF-8 keeps its bytes (surrogateescape), so it can still be read."""
    root = make_repo({})
    raw = os.path.join(os.fsencode(root), b"caf\xe9")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    (path,) = view(root).paths
    assert path == "caf\udce9"
    assert os.fsencode(path) == b"caf\xe9"
    assert (root / path).read_bytes() == b"latin-1 name"


UNDER = static_view(
    "a/x",
    "a/sub/y",
    "a-b/z",
    "a.txt",
    "a!",
    "ab/z",
    "a0/w",
    "b",
    "ci/builder/Dockerfile",
    "ci/builder-old/x",
)


@pytest.mark.parametrize(
    ("directory", "expected"),
    [
        pytest.param("a", ("a/sub/y", "a/x"), id="directory"),
        pytest.param("a/", ("a/sub/y", "a/x"), id="trailing-slash"),
        pytest.param("a/sub", ("a/sub/y",), id="nested"),
        pytest.param("ab", ("ab/z",), id="not-a-prefix-of-a"),
        pytest.param("a-b", ("a-b/z",), id="dash"),
        pytest.param("ci/builder", ("ci/builder/Dockerfile",), id="not-builder-old"),
        pytest.param("b", (), id="a-file-is-not-a-directory"),
        pytest.param("a/x", (), id="a-file-has-nothing-under-it"),
        pytest.param("nope", (), id="missing"),
        pytest.param("", UNDER.paths, id="everything"),
    ],
)
def test_under_is_a_directory_prefix(directory: str, expected: tuple[str, ...]) -> None:
    """under("a") holds a/... but not ab/..., a-b/... or a.txt; under("") is everything."""
    assert UNDER.under(directory) == expected


# Git never lists "." or ".." as a path component (and under(".") means the root).
path_component = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/\0"),
    min_size=1,
    max_size=4,
).filter(lambda c: c not in (".", ".."))
repo_path = st.lists(path_component, min_size=1, max_size=3).map("/".join)


@given(paths=st.sets(repo_path, max_size=30), directory=repo_path)
def test_under_matches_a_prefix_filter(paths: set[str], directory: str) -> None:
    """For any paths, under(d) is exactly the sorted paths starting with d + "/"."""
    v = static_view(*paths)
    assert v.under(directory) == tuple(sorted(p for p in paths if p.startswith(directory + "/")))
    assert v.under("") == tuple(sorted(paths))


@pytest.mark.parametrize(
    ("item", "present"),
    [
        pytest.param("a/x", True, id="file"),
        pytest.param("b", True, id="top-level-file"),
        pytest.param("a", False, id="directory"),
        pytest.param("a/", False, id="directory-slash"),
        pytest.param("a/x/", False, id="file-with-slash"),
        pytest.param("zzz", False, id="missing-after-the-last"),
        pytest.param("", False, id="empty"),
        pytest.param(Path("a/x"), False, id="not-a-str"),
    ],
)
def test_contains_is_exact(item: object, present: bool) -> None:
    """`in` is exact membership of a repository-relative file path given as str."""
    assert (item in UNDER) is present


def test_named_matches_the_last_component() -> None:
    """named() finds a file name at the top or under any directory, not as a suffix."""
    v = static_view(
        "mzbuild.yml", "a/mzbuild.yml", "a/b/mzbuild.yml", "c/xmzbuild.yml", "mzbuild.yml.bak"
    )
    assert list(v.named("mzbuild.yml")) == ["a/b/mzbuild.yml", "a/mzbuild.yml", "mzbuild.yml"]


def test_len_and_iter() -> None:
    """The view iterates its paths in sorted order and has their count as length."""
    v = static_view("b", "a/x")
    assert list(v) == ["a/x", "b"]
    assert len(v) == 2


def test_subdirectory_as_root(make_repo: MakeRepo) -> None:
    """A --repo inside a larger checkout sees only its own files, relative to itself."""
    root = make_repo(
        {
            ".gitignore": "*.log\n",
            "outer.txt": "",
            "inner/x.txt": "",
            "inner/d/y.txt": "",
            "inner/gone.txt": "",
            "innerx/z.txt": "",
        }
    )
    (root / "inner" / "gone.txt").unlink()
    write_tree(root, {"inner/new.txt": "", "inner/skip.log": "", "other/new.txt": ""})
    assert view(root / "inner").paths == ("d/y.txt", "new.txt", "x.txt")


@pytest.mark.parametrize("where", [pytest.param("", id="top"), pytest.param("a/b", id="nested")])
def test_find_toplevel(make_repo: MakeRepo, where: str) -> None:
    """The top level of the checkout holding a directory (itself at the top)."""
    root = make_repo({"a/b/c.txt": ""})
    assert anyio.run(find_toplevel, root / where) == root


def _a_file(tmp: Path) -> Path:
    (tmp / "file").write_text("")
    return tmp / "file"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda tmp: tmp, "not a git repository", id="plain-directory"),
        pytest.param(lambda tmp: tmp / "missing", "no such directory", id="missing-directory"),
        pytest.param(_a_file, "not a directory", id="a-file"),
    ],
)
@pytest.mark.parametrize("function", [load_git_view, find_toplevel], ids=["view", "toplevel"])
def test_errors_are_git_errors_naming_the_directory(
    tmp_path: Path,
    make: Callable[[Path], Path],
    message: str,
    function: Callable[[Path], Awaitable[object]],
) -> None:
    """A directory that is no git checkout is a one-line GitError naming it."""
    target = make(tmp_path)
    with pytest.raises(GitError) as info:
        anyio.run(function, target)
    assert str(info.value).startswith(f"{target}: {message}")


@pytest.mark.parametrize(
    ("remote", "url"),
    [
        (
            "git@github.com:MaterializeInc/materialize.git",
            "https://github.com/MaterializeInc/materialize",
        ),
        ("https://github.com/org/repo.git", "https://github.com/org/repo"),
        (
            "https://ci:t0ken@git.example.test:8443/org/repo",
            "https://git.example.test:8443/org/repo",
        ),
        ("ssh://git@git.example.test:2222/org/repo.git", "https://git.example.test/org/repo"),
        ("git://git.example.test/org/repo", "https://git.example.test/org/repo"),
        ("/srv/git/repo.git", None),
        ("file:///srv/git/repo.git", None),
        ("../sibling", None),
    ],
)
def test_source_url(remote: str, url: str | None) -> None:
    assert source_url(remote) == url


def test_source_labels(make_repo: MakeRepo) -> None:
    root = make_repo({"a.txt": "a"})
    labels = anyio.run(source_labels, root)
    assert labels == {LABEL_REVISION: git(root, "rev-parse", "HEAD").strip()}
    git(root, "remote", "add", "upstream", "git@git.example.test:org/up.git")
    git(root, "remote", "add", "origin", "https://u:p@git.example.test/org/demo.git")
    labels = anyio.run(source_labels, root)
    assert labels[LABEL_SOURCE] == "https://git.example.test/org/demo"  # origin wins
