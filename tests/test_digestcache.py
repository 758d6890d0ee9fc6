"""The persistent digest cache: faster warm runs, never a stale digest."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest
import structlog

from mzbuild_async import Arch, BuildOptions, Repository
from mzbuild_async.cli import main
from mzbuild_async.digestcache import DB_NAME, DigestCache
from mzbuild_async.fingerprint import Fingerprint
from tests.conftest import MakeRepo

OPTIONS = BuildOptions(arch=Arch.X86_64)
FILES = {
    "a/mzbuild.yml": "name: a\n",
    "a/Dockerfile": "FROM scratch\n",
    "a/data.txt": "hello\n",
}


def fingerprint_with(root: Path, cache: DigestCache | bool) -> tuple[Fingerprint, Repository]:
    async def go() -> tuple[Fingerprint, Repository]:
        repo = await Repository.open(root, OPTIONS, digest_cache=cache)
        return await repo.fingerprint("a"), repo

    return anyio.run(go)


def test_warm_run_reads_no_unchanged_file(make_repo: MakeRepo, tmp_path: Path) -> None:
    """A second run takes every unchanged digest from the cache, with the same result."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    cold, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    assert repo.hasher.statistics().cached == 0
    warm, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    stats = repo.hasher.statistics()
    assert warm == cold
    assert stats.cached == stats.files == 3


def test_recent_files_are_not_cached(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Files changed within the racy window are hashed again next time (git's racy-clean)."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=3600))
    _, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=3600))
    assert repo.hasher.statistics().cached == 0


def test_same_size_edit_with_restored_mtime_is_seen(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Rewriting a file with same-size content and its old mtime still changes the fingerprint.

    ctime moves on every write and cannot be set back, so the stat key differs.
    """
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    before, _ = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    data = root / "a" / "data.txt"
    st = data.stat()
    data.write_text("HELLO\n")
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    after, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    uncached, _ = fingerprint_with(root, False)
    assert after == uncached != before
    assert repo.hasher.statistics().cached == 2


def test_symlinks_are_never_cached(make_repo: MakeRepo, tmp_path: Path) -> None:
    """A symlink's target can change without touching the link: links are always read."""
    root = make_repo(FILES)
    (root / "a" / "target.txt").write_text("one\n")
    (root / "a" / "link").symlink_to("target.txt")
    cache = tmp_path / "cache"
    fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    _, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    assert not repo.hasher.hashed["a/link"].cached
    assert repo.hasher.hashed["a/target.txt"].cached


@pytest.mark.parametrize(
    "break_cache",
    [
        pytest.param(lambda d: (d / DB_NAME).write_bytes(b"not a database" * 100), id="corrupt"),
        pytest.param(lambda d: d.rmdir() or d.write_text("a file"), id="not-a-directory"),
    ],
)
def test_broken_cache_is_one_warning(
    make_repo: MakeRepo, tmp_path: Path, break_cache: object
) -> None:
    """A cache that cannot be used gives one warning and the right fingerprint."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    cache.mkdir()
    assert callable(break_cache)
    break_cache(cache)
    expected, _ = fingerprint_with(root, False)
    with structlog.testing.capture_logs() as events:
        got, _ = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    assert got == expected
    warnings = [e["event"] for e in events if e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert "cannot" in warnings[0]
    assert "digest cache" in warnings[0]


def test_cli_uses_and_clears_the_cache(
    make_repo: MakeRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI keeps digests in --cache-dir; `cache clear` deletes them; --no-digest-cache skips."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    argv = ["fingerprint", "a", "--repo", str(root), "--cache-dir", str(cache)]
    assert main([*argv, "--no-digest-cache"]) == 0
    assert not cache.exists()
    # Fill the cache (the CLI would skip files this new), then change a file.
    fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    (root / "a" / "data.txt").write_text("HELLO\n")
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out == f"{fingerprint_with(root, False)[0]}\n"
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 0
    assert not (cache / DB_NAME).exists()
    assert f"cleared the caches in {cache}" in capsys.readouterr().out
