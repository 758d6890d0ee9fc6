"""gc's keep policy: which commits (branch and tag patterns, local and
remote-tracking), which build variants, and its flags' one-line errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import anyio
import pytest

from mzbuild_async.cli.argtypes import duration
from mzbuild_async.cli.main import main
from mzbuild_async.errors import UsageError
from mzbuild_async.model.options import Arch, BuildOptions, Profile
from mzbuild_async.workflow.gc import GcOptions, keep_commits, variants
from tests.conftest import MakeRepo, git

FILES = {"images/a/mzbuild.yml": "name: a\n", "images/a/Dockerfile": "FROM scratch\n"}


def _commit(root: Path, message: str) -> str:
    git(root, "commit", "-q", "--allow-empty", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


@pytest.fixture
def history(make_repo: MakeRepo) -> tuple[Path, dict[str, str]]:
    """main: m0..m3 (v1 at m0, v2 at m1, other-tag at m2); feature: f1 from m1; a
    remote-tracking origin/release-1 at m2 (no local branch)."""
    root = make_repo(FILES)
    c = {"m0": git(root, "rev-parse", "HEAD").strip()}
    git(root, "tag", "v1")
    c["m1"] = _commit(root, "m1")
    git(root, "tag", "-a", "v2", "-m", "an annotated tag")
    git(root, "checkout", "-q", "-b", "feature")
    c["f1"] = _commit(root, "f1")
    git(root, "checkout", "-q", "main")
    c["m2"] = _commit(root, "m2")
    git(root, "tag", "other-tag")
    git(root, "update-ref", "refs/remotes/origin/release-1", c["m2"])
    git(root, "update-ref", "refs/remotes/origin/HEAD", c["m2"])
    c["m3"] = _commit(root, "m3")
    return root, c


def commits(root: Path, options: GcOptions) -> dict[str, list[str]]:
    return anyio.run(keep_commits, root, options)


def test_the_last_n_of_each_matching_branch_and_every_tag(
    history: tuple[Path, dict[str, str]],
) -> None:
    root, c = history
    got = commits(root, GcOptions(keep_branches=("main",), keep_last=2))
    assert got == {
        c["m3"]: ["main"],
        c["m2"]: ["main~1", "tag other-tag"],
        c["m0"]: ["tag v1"],
        c["m1"]: ["tag v2"],  # an annotated tag names its commit
    }


def test_patterns_match_remote_tracking_branches_and_tags(
    history: tuple[Path, dict[str, str]],
) -> None:
    root, c = history
    got = commits(
        root, GcOptions(keep_branches=("release-*", "feat*"), keep_last=1, keep_tags=("v*",))
    )
    assert got == {
        c["m2"]: ["origin/release-1"],
        c["f1"]: ["feature"],
        c["m0"]: ["tag v1"],
        c["m1"]: ["tag v2"],
    }


def test_without_a_branch_pattern_the_current_branch_is_kept(
    history: tuple[Path, dict[str, str]],
) -> None:
    root, c = history
    git(root, "checkout", "-q", "feature")
    got = commits(root, GcOptions(keep_last=1, keep_tags=()))
    assert got == {c["f1"]: ["feature"]}


def test_an_unmatched_branch_pattern_is_one_line(history: tuple[Path, dict[str, str]]) -> None:
    root, _ = history
    with pytest.raises(UsageError) as caught:
        commits(root, GcOptions(keep_branches=("mian",)))
    assert str(caught.value) == (
        "--keep-branch 'mian': no branch matches (branches here: feature, main,"
        " origin/release-1); give a branch name or glob"
    )


def test_variants_are_every_combination_asked_for() -> None:
    base = BuildOptions(arch=Arch.X86_64)
    every = variants(base, GcOptions())
    assert len(every) == len(Arch) * len(Profile) * 2
    assert len({v.fingerprint_suffix() for v in every}) == len(every)
    one = variants(
        base, GcOptions(arches=(Arch.AARCH64,), profiles=(Profile.DEV,), coverage=(False,))
    )
    assert [(v.arch, v.profile, v.coverage) for v in one] == [(Arch.AARCH64, Profile.DEV, False)]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("30m", 1800),
        ("24h", 86400),
        ("7d", 604800),
        ("2w", 1209600),
        ("0", 0),
        ("1.5h", 5400),
        ("45", 45),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1h", "h", "inf", "1y", ""])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"is not a duration; write e\.g\. 90s"):
        duration(text)


def test_only_gc_takes_several_profiles(
    make_repo: MakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_repo(FILES)
    status = main(["spec", "a", "--repo", str(root), "--profile", "dev", "--profile", "release"])
    err = capsys.readouterr().err
    assert status == 2
    assert "spec: give --profile once (only gc takes several)" in err
    assert err.strip().count("\n") == 0
    status = main(["spec", "a", "--repo", str(root), "--profile", "dev", "--profile", "dev"])
    assert status == 0  # the same profile twice is one profile


def _clone(origin: Path, where: Path, *flags: str) -> Path:
    """``git clone`` of ``origin`` over file:// (so --depth takes effect)."""
    git(where.parent, "clone", "-q", *flags, f"file://{origin}", str(where))
    return where


def _refusal(root: Path, options: GcOptions) -> str:
    from mzbuild_async.errors import GitError

    with pytest.raises(GitError) as caught:
        commits(root, options)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_shallow_clone_is_refused_when_the_walk_reaches_its_boundary(
    history: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """`git clone --depth 1` has one commit of main: keeping 3 would keep 1 (and
    delete the images of the other 2), so gc refuses, naming the fetch; whether the
    local refs are trusted or not. A walk within the clone's depth is complete."""
    origin, c = history
    clone = _clone(origin, tmp_path / "shallow", "--depth", "1", "--branch", "main")
    for trust in (False, True):
        message = _refusal(
            clone,
            GcOptions(keep_branches=("main",), keep_last=3, keep_tags=(), trust_local_refs=trust),
        )
        assert (
            f"this clone is shallow: main's history ends at {c['m3'][:12]} after 1 of the 3"
            in message
        )
        assert "git fetch --unshallow" in message
    assert commits(clone, GcOptions(keep_branches=("main",), keep_last=1, keep_tags=())) == {
        c["m3"]: ["main", "origin/main"]
    }
    git(clone, "fetch", "-q", "--deepen", "2")  # now 3 deep: main~2 is the boundary
    got = commits(clone, GcOptions(keep_branches=("main",), keep_last=3, keep_tags=()))
    assert got == {
        c["m3"]: ["main", "origin/main"],
        c["m2"]: ["main~1", "origin/main~1"],
        c["m1"]: ["main~2", "origin/main~2"],
    }
    _refusal(clone, GcOptions(keep_branches=("main",), keep_last=4, keep_tags=()))
    git(clone, "fetch", "-q", "--unshallow")
    assert len(commits(clone, GcOptions(keep_branches=("main",), keep_last=9, keep_tags=()))) == 4


def test_a_clone_without_the_remotes_tags_is_refused(
    history: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """A `--no-tags` clone lacks the tags the keep set needs; a tag the remote moved
    is refused too; after `git fetch --tags --force` the keep set is the origin's."""
    origin, c = history
    clone = _clone(origin, tmp_path / "notags", "--no-tags")
    message = _refusal(clone, GcOptions(keep_branches=("main",), keep_last=1))
    assert "the remote origin has 3 tags the keep policy asks for that this clone lacks" in message
    assert "(other-tag, v1, v2)" in message
    assert "fetch with `git fetch --tags --force origin`" in message
    # Only the tags a pattern keeps count.
    assert commits(clone, GcOptions(keep_branches=("main",), keep_last=1, keep_tags=("none-*",)))
    git(clone, "fetch", "-q", "--tags", "--force", "origin")
    expected = commits(origin, GcOptions(keep_branches=("main",), keep_last=1, keep_tags=("v*",)))
    got = commits(clone, GcOptions(keep_branches=("main",), keep_last=1, keep_tags=("v*",)))
    assert {k: [x for x in v if x != "origin/main"] for k, v in got.items()} == expected
    git(origin, "tag", "-f", "v1", c["m1"])  # moved at the remote
    message = _refusal(clone, GcOptions(keep_branches=("main",), keep_last=1))
    assert (
        "has 1 tag the keep policy asks for that this clone holds at other commits (v1)" in message
    )
    trusted = commits(clone, GcOptions(keep_branches=("main",), keep_last=1, trust_local_refs=True))
    assert trusted[c["m0"]] == ["tag v1"]


def test_a_clone_lacking_or_behind_a_kept_branch_is_refused(
    history: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """A `--single-branch` clone has not fetched the other branches a pattern keeps;
    a remote-tracking branch behind its remote is refused; a remote that cannot be
    asked is one line naming it (and --trust-local-refs goes on without asking)."""
    origin, c = history
    clone = _clone(origin, tmp_path / "single", "--single-branch", "--branch", "main")
    message = _refusal(clone, GcOptions(keep_branches=("feat*",), keep_last=1, keep_tags=()))
    assert "has 1 branch the keep policy asks for that this clone lacks (feature)" in message
    assert "git fetch origin '+refs/heads/*:refs/remotes/origin/*'" in message
    git(clone, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    assert commits(clone, GcOptions(keep_branches=("feat*",), keep_last=1, keep_tags=())) == {
        c["f1"]: ["origin/feature"]
    }
    git(origin, "checkout", "-q", "feature")
    f2 = _commit(origin, "f2")
    message = _refusal(clone, GcOptions(keep_branches=("feat*",), keep_last=1, keep_tags=()))
    assert "this clone holds at other commits (feature)" in message
    git(clone, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
    assert commits(clone, GcOptions(keep_branches=("feat*",), keep_last=1, keep_tags=())) == {
        f2: ["origin/feature"]
    }
    git(clone, "remote", "set-url", "origin", f"file://{tmp_path}/gone")
    message = _refusal(clone, GcOptions(keep_branches=("feat*",), keep_last=1, keep_tags=()))
    assert message.startswith("could not ask the remote origin for its branches and tags (")
    assert "pass --trust-local-refs" in message
    trusted = GcOptions(keep_branches=("feat*",), keep_last=1, keep_tags=(), trust_local_refs=True)
    assert commits(clone, trusted) == {f2: ["origin/feature"]}
