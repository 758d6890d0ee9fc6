"""Every file kept in the cache directory is validated when read: damage is a miss, not a value."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mzbuild_async import Arch, BuildOptions, Repository
from mzbuild_async.lookup.disk import DB_NAME as PRESENT_DB
from mzbuild_async.lookup.disk import DiskTier
from mzbuild_async.model.status import Status
from mzbuild_async.registry.auth import Challenge
from mzbuild_async.registry.names import parse_reference
from mzbuild_async.source.fingerprint import Fingerprint
from mzbuild_async.store.challenges import FILE_NAME as HOSTS_FILE
from mzbuild_async.store.challenges import load_challenges, save_challenges
from mzbuild_async.store.digests import DB_NAME as DIGEST_DB
from mzbuild_async.store.digests import DigestCache
from mzbuild_async.store.history import HISTORY_FILE, BuildHistory
from tests.conftest import MakeRepo

OPTIONS = BuildOptions(arch=Arch.X86_64)
FILES = {
    "a/mzbuild.yml": "name: a\n",
    "a/Dockerfile": "FROM scratch\n",
    **{f"a/f{i}.txt": f"content {i}\n" for i in range(8)},
    "b/mzbuild.yml": "name: b\n",
    "b/Dockerfile": "MZFROM a\n",
    "b/run.sh": "#!/bin/sh\n",
}
SPECS = [f"127.0.0.1:5000/t/img{i}:mzbuild-{'A' * 31}{'BCDEFGHI'[i]}" for i in range(8)]


def warnings_of(events: Sequence[Mapping[str, Any]]) -> list[str]:
    return [str(e["event"]) for e in events if e["log_level"] == "warning"]


# ---------------------------------------------------------------- corruption


def _sqlite_ops() -> st.SearchStrategy[tuple[str, int, int, object]]:
    values = st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.binary(max_size=24),
        st.text(max_size=24),
        st.floats(allow_nan=True),
        st.none(),
    )
    return st.tuples(
        st.sampled_from(["flip", "truncate", "retype", "delete", "garbage"]),
        st.integers(min_value=0, max_value=10**6),
        st.integers(min_value=0, max_value=12),
        values,
    )


def corrupt_sqlite(path: Path, table: str, op: tuple[str, int, int, object]) -> None:
    """Damage ``path`` one way: a flipped byte, a cut, a retyped field, lost rows, garbage."""
    kind, where, column, value = op
    raw = path.read_bytes()
    if not raw:
        return
    if kind == "flip":
        i = where % len(raw)
        path.write_bytes(raw[:i] + bytes([raw[i] ^ (1 << (column % 8))]) + raw[i + 1 :])
    elif kind == "truncate":
        path.write_bytes(raw[: where % len(raw)])
    elif kind == "garbage":
        path.write_bytes(bytes((where * 7 + i) % 256 for i in range(1 + where % 5000)))
    else:
        with contextlib.suppress(sqlite3.Error):  # damaged by an earlier step: leave it
            _change_rows(path, table, kind, where, column, value)


def _change_rows(path: Path, table: str, kind: str, where: int, column: int, value: object) -> None:
    db = sqlite3.connect(path)
    try:
        with db:
            # Rebuilt without constraints, so any type can go into any column.
            db.execute(f"CREATE TABLE loose AS SELECT * FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE loose RENAME TO {table}")
            names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
            keys = [r[0] for r in db.execute(f"SELECT rowid FROM {table}")]
            if not keys:
                return
            key = keys[where % len(keys)]
            if kind == "delete":
                db.execute(f"DELETE FROM {table} WHERE rowid % 2 = ?", (key % 2,))
            else:
                name = names[column % len(names)]
                db.execute(f"UPDATE {table} SET {name} = ? WHERE rowid = ?", (value, key))
    finally:
        db.close()


def fingerprints(root: Path, cache: DigestCache | bool) -> dict[str, Fingerprint]:
    async def go() -> dict[str, Fingerprint]:
        repo = await Repository.open(root, OPTIONS, digest_cache=cache)
        return await repo.fingerprints(["a", "b"])

    return anyio.run(go)


def test_damaged_digest_cache_never_changes_a_fingerprint(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    """For random damage to digests.sqlite3, fingerprints equal those without the cache."""
    root = make_repo(FILES)
    expected = fingerprints(root, False)
    counter = iter(range(10**6))

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ops=st.lists(_sqlite_ops(), min_size=1, max_size=3))
    def check(ops: list[tuple[str, int, int, object]]) -> None:
        cache = tmp_path / f"digests{next(counter)}"
        fingerprints(root, DigestCache(cache, str(root), racy_seconds=0))
        for op in ops:
            if (cache / DIGEST_DB).exists():
                corrupt_sqlite(cache / DIGEST_DB, "digests_v2", op)
        with structlog.testing.capture_logs():
            got = fingerprints(root, DigestCache(cache, str(root), racy_seconds=0))
        assert got == expected

    check()


async def _present(cache: Path, specs: list[str]) -> set[str]:
    tier = DiskTier(cache)
    found = set()
    for spec in specs:
        probe = await tier.lookup(spec, parse_reference(spec))
        if probe is not None and probe.status is Status.PRESENT:
            found.add(spec)
    return found


def test_damaged_lookup_cache_never_says_present_wrongly(tmp_path: Path) -> None:
    """For random damage to present.sqlite3, every spec it calls present was recorded present."""
    recorded = set(SPECS[:4])
    counter = iter(range(10**6))

    async def fill(cache: Path) -> None:
        tier = DiskTier(cache)
        for spec in recorded:
            await tier.record(spec, Status.PRESENT)
        await tier.flush()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(ops=st.lists(_sqlite_ops(), min_size=1, max_size=3))
    def check(ops: list[tuple[str, int, int, object]]) -> None:
        cache = tmp_path / f"present{next(counter)}"
        anyio.run(fill, cache)
        for op in ops:
            if (cache / PRESENT_DB).exists():
                corrupt_sqlite(cache / PRESENT_DB, "present_v2", op)
        with structlog.testing.capture_logs():
            assert anyio.run(_present, cache, SPECS) <= recorded

    check()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param("UPDATE present_v2 SET spec = replace(spec, 'img0', 'img5')", id="renamed"),
        pytest.param("UPDATE present_v2 SET checksum = x'00'", id="short-check"),
        pytest.param("UPDATE present_v2 SET spec = 42", id="retyped"),
    ],
)
def test_bad_present_row_is_a_miss_and_one_warning(tmp_path: Path, change: str) -> None:
    """A present row whose check fails is not believed, is deleted, and warns once."""

    async def fill() -> None:
        tier = DiskTier(tmp_path)
        await tier.record(SPECS[0], Status.PRESENT)
        await tier.flush()

    anyio.run(fill)
    db = sqlite3.connect(tmp_path / PRESENT_DB)
    with db:
        db.execute(change)
    db.close()
    with structlog.testing.capture_logs() as events:
        assert anyio.run(_present, tmp_path, SPECS) == set()
    assert len(warnings_of(events)) == 1
    assert "failed validation" in warnings_of(events)[0]
    with structlog.testing.capture_logs() as events:
        assert anyio.run(_present, tmp_path, SPECS) == set()
    assert warnings_of(events) == []


# ---------------------------------------------------------------- JSON files

CHALLENGES: dict[str, Challenge | None] = {
    "registry.example:5000": Challenge(
        "bearer", {"realm": "https://auth.example/token", "service": "registry"}
    ),
    "open.example": None,
}


def test_hosts_file_round_trip(tmp_path: Path) -> None:
    """Saved challenges load back unchanged and without a warning."""
    save_challenges(tmp_path, CHALLENGES)
    with structlog.testing.capture_logs() as events:
        assert load_challenges(tmp_path) == CHALLENGES
    assert warnings_of(events) == []


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda text: text.replace("auth.example", "evil.example"), id="edited"),
        pytest.param(lambda text: text[: len(text) // 2], id="truncated"),
        pytest.param(lambda text: "\udcff garbage", id="garbage"),
        pytest.param(lambda text: json.dumps({"registry.example:5000": None}), id="no-envelope"),
        pytest.param(lambda text: "[" * 100_000, id="deep-nesting"),
    ],
)
def test_damaged_hosts_file_is_ignored_with_one_warning(tmp_path: Path, damage: object) -> None:
    """A hosts.json that fails its check remembers nothing (the registries are asked again)."""
    save_challenges(tmp_path, CHALLENGES)
    path = tmp_path / HOSTS_FILE
    assert callable(damage)
    path.write_bytes(damage(path.read_text()).encode("utf-8", "surrogateescape"))
    with structlog.testing.capture_logs() as events:
        assert load_challenges(tmp_path) == {}
    assert len(warnings_of(events)) == 1
    assert str(path) in warnings_of(events)[0]


def test_hosts_file_remembers_schemes_and_reads_the_first_version(tmp_path: Path) -> None:
    """Schemes are kept next to challenges (merged over earlier runs); the first
    version's entries (a bare challenge) still load; a bad transport is dropped."""
    from mzbuild_async.store.challenges import load_hosts
    from mzbuild_async.store.integrity import write_json

    write_json(
        tmp_path / HOSTS_FILE,
        {
            "old.example": None,  # (the first version: the challenge itself)
            "bad.example": {"challenge": None, "transport": "gopher"},
        },
    )
    save_challenges(tmp_path, {"new.example": None}, {"127.0.0.1:5000": "http"})
    with structlog.testing.capture_logs() as events:
        challenges, schemes = load_hosts(tmp_path)
    assert challenges == {"old.example": None, "new.example": None}
    assert schemes == {"127.0.0.1:5000": "http"}
    assert warnings_of(events) == []  # (the bad entry was dropped when the file was merged)
    write_json(tmp_path / HOSTS_FILE, {"bad.example": {"transport": "gopher"}})
    with structlog.testing.capture_logs() as events:
        assert load_hosts(tmp_path) == ({}, {})
    assert len(warnings_of(events)) == 1


def test_invalid_challenge_entries_are_dropped(tmp_path: Path) -> None:
    """A checked file whose entries are not challenges keeps only the valid ones."""
    from mzbuild_async.store.integrity import write_json

    write_json(
        tmp_path / HOSTS_FILE,
        {
            "good.example": None,
            "bad-scheme.example": {"scheme": "magic", "params": {}},
            "bad-realm.example": {"scheme": "bearer", "params": {"realm": "file:///etc/passwd"}},
            "bad-params.example": {"scheme": "basic", "params": {"realm": 1}},
        },
    )
    with structlog.testing.capture_logs() as events:
        assert load_challenges(tmp_path) == {"good.example": None}
    assert len(warnings_of(events)) == 1


@pytest.mark.parametrize(
    "text",
    [
        pytest.param('{"a": ' + "9" * 400 + "}", id="400-digit-integer"),
        pytest.param('{"a": NaN}', id="nan"),
        pytest.param('{"a": -5}', id="negative"),
        pytest.param('{"a": "12"}', id="string"),
        pytest.param("[1, 2]", id="list"),
        pytest.param("\x00\xff", id="garbage"),
    ],
)
def test_damaged_history_is_defaults_and_one_warning(tmp_path: Path, text: str) -> None:
    """build-history.json that is damaged or unchecked gives default estimates, never a crash."""
    (tmp_path / HISTORY_FILE).write_text(text, encoding="utf-8", errors="surrogateescape")
    with structlog.testing.capture_logs() as events:
        history = BuildHistory.load(tmp_path)
    assert history.seconds == {}
    assert history.estimate("a", cargo=False) == BuildHistory(tmp_path).estimate("a", cargo=False)
    assert len(warnings_of(events)) == 1


def test_history_entries_are_validated_inside_a_good_envelope(tmp_path: Path) -> None:
    """A checked history keeps the entries that are seconds and drops the others, warning once."""
    from mzbuild_async.store.integrity import write_json

    write_json(tmp_path / HISTORY_FILE, {"a": 12.5, "b": 10**400, "c": -1, "d": True, "e": 3})
    with structlog.testing.capture_logs() as events:
        history = BuildHistory.load(tmp_path)
    assert history.seconds == {"a": 12.5, "e": 3.0}
    assert len(warnings_of(events)) == 1


def test_history_round_trip_and_bad_measurements(tmp_path: Path) -> None:
    """Recorded seconds survive a save; an infinite or NaN measurement is not recorded."""
    history = BuildHistory.load(tmp_path)
    history.record("a", 10.0)
    history.record("a", float("inf"))
    history.record("b", float("nan"))
    history.save()
    with structlog.testing.capture_logs() as events:
        assert BuildHistory.load(tmp_path).seconds == {"a": 10.0}
    assert warnings_of(events) == []


# ---------------------------------------------------------------- cache clear


def test_cache_clear_removes_every_cache_and_keeps_history_and_locks(
    make_repo: MakeRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cache clear`` removes what each owner wrote; build history and locks stay."""
    from mzbuild_async.cli.main import main
    from mzbuild_async.store import layout

    root = make_repo(FILES)
    cache = tmp_path / "cache"
    fingerprints(root, DigestCache(cache, str(root), racy_seconds=0))

    async def fill() -> None:
        tier = DiskTier(cache)
        await tier.record(SPECS[0], Status.PRESENT)
        await tier.flush()

    anyio.run(fill)
    save_challenges(cache, CHALLENGES)
    history = BuildHistory.load(cache)
    history.record("a", 3.0)
    history.save()
    (cache / layout.LOCKS).mkdir()
    written = {p.name for p in cache.iterdir()}
    assert {DIGEST_DB, PRESENT_DB, HOSTS_FILE, HISTORY_FILE, layout.LOCKS} <= written

    assert main(["cache", "clear", "--cache-dir", str(cache), "--repo", str(root)]) == 0
    assert f"cleared the caches in {cache}" in capsys.readouterr().out
    assert {p.name for p in cache.iterdir()} == {HISTORY_FILE, layout.LOCKS}
    assert anyio.run(_present, cache, SPECS) == set()
    assert BuildHistory.load(cache).seconds == {"a": 3.0}


def _schema_offsets(path: Path) -> list[int]:
    """The offsets of the bytes of every ``CREATE TABLE`` text in a SQLite file."""
    data = path.read_bytes()
    offsets: list[int] = []
    start = data.find(b"CREATE TABLE")
    while start != -1:
        end = data.find(b")", data.find(b"PRIMARY", start))
        offsets += range(start, max(end, start + 64) + 1)
        start = data.find(b"CREATE TABLE", start + 1)
    return offsets


@pytest.mark.parametrize("byte", [0xFF, 0x80, 0x00])
def test_a_damaged_byte_in_a_caches_schema_is_one_warning_and_the_run_goes_on(
    make_repo: MakeRepo, tmp_path: Path, byte: int
) -> None:
    """One byte of the digest or lookup cache's schema overwritten, at every offset of
    it: SQLite's message then quotes bytes that are not UTF-8 (a UnicodeDecodeError
    in Python, not a DatabaseError). Each is at most one warning; the fingerprints
    are right and the lookup cache says nothing it was not told."""
    root = make_repo(FILES)
    expected = fingerprints(root, False)
    digests, present = tmp_path / "digests", tmp_path / "present"
    fingerprints(root, DigestCache(digests, str(root), racy_seconds=0))

    async def fill() -> None:
        tier = DiskTier(present)
        for spec in SPECS[:4]:
            await tier.record(spec, Status.PRESENT)
        await tier.flush()

    anyio.run(fill)
    files = {"digests": (digests / DIGEST_DB), "present": (present / PRESENT_DB)}
    pristine = {name: path.read_bytes() for name, path in files.items()}
    tried = 0
    for name, path in files.items():
        for offset in _schema_offsets(path):
            damaged = bytearray(pristine[name])
            damaged[offset] = byte
            path.write_bytes(bytes(damaged))
            with structlog.testing.capture_logs() as events:
                if name == "digests":
                    got = fingerprints(root, DigestCache(digests, str(root), racy_seconds=0))
                    assert got == expected, offset
                else:
                    assert anyio.run(_present, present, SPECS) <= set(SPECS[:4])
            assert len(warnings_of(events)) <= 1, (name, offset, warnings_of(events))
            tried += 1
    assert tried > 300


def test_a_thousand_answers_are_written_in_a_few_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,000 published answers of one batch of lookups reach present.sqlite3 by the time
    the batch returns, in ceil(1,000 / FLUSH_EVERY) transactions, not 1,000; an answer
    forgotten before it was written is never written."""
    from mzbuild_async.lookup import disk
    from mzbuild_async.lookup.lookups import Lookups
    from mzbuild_async.registry.client import RegistryClient
    from mzbuild_async.registry.inmemory import MemoryRegistry, _Manifest
    from mzbuild_async.testing import no_wait

    writes: list[int] = []
    store = DiskTier._store

    def counted(self: DiskTier, rows: dict[str, float]) -> None:
        writes.append(len(rows))
        store(self, rows)

    monkeypatch.setattr(DiskTier, "_store", counted)
    registry = MemoryRegistry()
    specs = [f"reg.test/many/i{i}:mzbuild-{'A' * 31}{i % 10}" for i in range(1000)]
    for spec in specs:
        repository = spec.split("/", 1)[1].rpartition(":")[0]
        tag = spec.rpartition(":")[2]
        manifest = _Manifest("application/vnd.oci.image.manifest.v1+json", b"{}")
        registry.manifests.setdefault(("reg.test", repository), {})[tag] = manifest

    async def look() -> None:
        async with RegistryClient(transport=registry.transport(), retry=no_wait(1)) as client:
            engine = Lookups.create(tiers=("disk", "registry"), client=client, cache_dir=tmp_path)
            answers = await engine.lookup_many(specs)
            assert {a.status for a in answers.values()} == {Status.PRESENT}
            assert len(_rows(tmp_path)) == 1000  # (written before aclose)
            tier = engine.tier("disk")
            assert isinstance(tier, DiskTier)
            tier.clock = lambda: 10.0**10  # (an hour on: every answer is written again)
            await tier.record(specs[0], Status.PRESENT)
            await tier.forget(specs[0])
            await engine.aclose()

    anyio.run(look)
    assert sum(writes) == 1000, writes
    assert len(writes) == -(-1000 // disk.FLUSH_EVERY), writes
    assert specs[0] not in _rows(tmp_path)


def _rows(cache: Path) -> set[str]:
    db = sqlite3.connect(cache / PRESENT_DB)
    try:
        return {spec for (spec,) in db.execute("SELECT spec FROM present_v2")}
    finally:
        db.close()
