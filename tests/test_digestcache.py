"""The persistent digest cache: faster warm runs, never a stale digest."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from mzbuild_async import Arch, BuildOptions, Repository
from mzbuild_async.cli.main import main
from mzbuild_async.source.fingerprint import Fingerprint
from mzbuild_async.store.digests import DB_NAME, DigestCache
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
    assert "cannot" in warnings[0] or "damaged digest cache" in warnings[0]
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


def _rows(cache: Path) -> list[tuple[object, ...]]:
    db = sqlite3.connect(cache / DB_NAME)
    try:
        return db.execute("SELECT * FROM digests_v2").fetchall()
    finally:
        db.close()


def _rewrite(cache: Path, sql: str, *params: object) -> None:
    db = sqlite3.connect(cache / DB_NAME)
    try:
        with db:
            db.execute(sql, params)
    finally:
        db.close()


def _flip(blob: bytes) -> bytes:
    return bytes([blob[0] ^ 0x01]) + blob[1:]


CORRUPTIONS = [
    pytest.param("UPDATE digests_v2 SET sha1 = randomblob(20)", (), id="random-sha1"),
    pytest.param("UPDATE digests_v2 SET sha1 = x'00'", (), id="one-byte-sha1"),
    pytest.param("UPDATE digests_v2 SET sha1 = hex(sha1)", (), id="sha1-as-text"),
    pytest.param("UPDATE digests_v2 SET mode = '0o100644'", (), id="mode-as-text"),
    pytest.param("UPDATE digests_v2 SET mode = 99999999999", (), id="mode-out-of-range"),
    pytest.param("UPDATE digests_v2 SET mode = 33261 WHERE mode = 33188", (), id="mode-flipped"),
    pytest.param("UPDATE digests_v2 SET size = -1", (), id="negative-size"),
    pytest.param("UPDATE digests_v2 SET checksum = x'00'", (), id="short-checksum"),
    pytest.param("UPDATE digests_v2 SET path = CAST(path AS TEXT)", (), id="path-as-text"),
    pytest.param("UPDATE digests_v2 SET dev = NULL", (), id="null"),
]


@pytest.mark.parametrize(("sql", "params"), CORRUPTIONS)
def test_corrupt_rows_are_misses_with_one_warning(
    make_repo: MakeRepo, tmp_path: Path, sql: str, params: tuple[object, ...]
) -> None:
    """A row whose fields are off or fail their check is re-hashed, never used, one warning."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    expected, _ = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    # NOT NULL stops a NULL: the table is rebuilt loose to let one in.
    if "NULL" in sql:
        _rewrite(cache, "ALTER TABLE digests_v2 RENAME TO old")
        _rewrite(cache, "CREATE TABLE digests_v2 AS SELECT * FROM old")
    _rewrite(cache, sql, *params)
    with structlog.testing.capture_logs() as events:
        got, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    assert got == expected
    assert repo.hasher.statistics().cached == 0
    warnings = [e["event"] for e in events if e["log_level"] == "warning"]
    assert len(warnings) == 1, warnings
    assert "failed validation" in warnings[0]
    # The bad rows were replaced: the next run is warm and quiet.
    with structlog.testing.capture_logs() as events:
        again, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    assert again == expected
    assert repo.hasher.statistics().cached == 3
    assert not [e for e in events if e["log_level"] == "warning"]


def test_flipped_byte_in_any_field_fails_the_check(make_repo: MakeRepo, tmp_path: Path) -> None:
    """A single flipped bit in a digest, path or stat field is caught by the row's check."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    expected, _ = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    original = _rows(cache)
    changes: list[tuple[str, Callable[[tuple[Any, ...]], object]]] = [
        ("sha1", lambda row: _flip(row[9])),
        ("path", lambda row: _flip(row[1])),
        ("ino", lambda row: row[3] ^ 1),
        ("mtime", lambda row: row[5] ^ 1),
    ]
    for column, value in changes:
        for row in original:
            _rewrite(
                cache, f"UPDATE digests_v2 SET {column} = ? WHERE path = ?", value(row), row[1]
            )
        got, repo = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
        assert got == expected, column
        assert repo.hasher.statistics().cached == 0, column


def test_first_version_table_is_dropped(make_repo: MakeRepo, tmp_path: Path) -> None:
    """An unchecked table of the first version is never read, and is dropped on the next write."""
    root = make_repo(FILES)
    cache = tmp_path / "cache"
    cache.mkdir()
    _rewrite(
        cache,
        "CREATE TABLE digests (root TEXT, path TEXT, dev INTEGER, ino INTEGER, size INTEGER,"
        " mtime INTEGER, ctime INTEGER, st_mode INTEGER, mode INTEGER, sha1 BLOB)",
    )
    _rewrite(
        cache,
        "INSERT INTO digests VALUES (?, 'a/data.txt', 0, 0, 6, 0, 0, 33188, 33188, x'00')",
        str(root),
    )
    expected, _ = fingerprint_with(root, False)
    got, _ = fingerprint_with(root, DigestCache(cache, str(root), racy_seconds=0))
    assert got == expected
    db = sqlite3.connect(cache / DB_NAME)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    assert tables == {"digests_v2"}
