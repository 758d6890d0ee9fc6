"""The 49 real Materialize manifests parse, and their DAG is the real one."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest
import structlog

from mzbuild_async import Arch, BuildOptions, ManifestError, Repository
from tests.conftest import HERE, MakeRepo

CORPUS = HERE / "corpus" / "materialize"
DAG: dict[str, dict[str, object]] = json.loads((CORPUS / "dag.json").read_text())


@pytest.fixture
def corpus_repo(make_repo: MakeRepo) -> Path:
    """A git repository with every real manifest and a Dockerfile built from dag.json."""
    files: dict[str, str] = {}
    for manifest in CORPUS.rglob("mzbuild.yml"):
        files[manifest.relative_to(CORPUS).as_posix()] = manifest.read_text()
    for entry in DAG.values():
        mzfrom = entry["mzfrom"]
        assert isinstance(mzfrom, list)
        lines = [f"MZFROM {dep}\n" for dep in mzfrom] or ["FROM scratch\n"]
        files[f"{entry['dir']}/Dockerfile"] = "".join(lines) + "RUN true\n"
    return make_repo(files)


def test_real_manifests_parse_and_dag_matches(corpus_repo: Path) -> None:
    """All 49 images load; each one's directory and dependencies equal dag.json's."""

    async def load() -> Repository:
        return await Repository.open(corpus_repo, BuildOptions(arch=Arch.X86_64))

    with structlog.testing.capture_logs() as events:
        repo = anyio.run(load)
    assert len(repo.images) == 49
    for name, entry in DAG.items():
        image = repo.images[name]
        assert image.directory == entry["dir"]
        assert list(image.dependencies) == sorted(set(entry["mzfrom"]))  # type: ignore[call-overload]
    edges = {(n, d) for n, i in repo.images.items() for d in i.dependencies}
    assert len(edges) == 39
    # The real tree's `split_debuginfo:` is ignored by the original: a warning.
    warnings = [e["event"] for e in events if e["log_level"] == "warning"]
    assert warnings == [
        "src/balancerd/ci/mzbuild.yml:15:5: unknown key 'split_debuginfo' in cargo-build"
        " pre-image 1 (mzbuild ignores it; --strict makes it an error)"
    ]


def test_real_manifests_strict_rejects_split_debuginfo(corpus_repo: Path) -> None:
    """With strict=True the same unknown key stops the load."""

    async def load() -> None:
        await Repository.open(corpus_repo, BuildOptions(arch=Arch.X86_64), strict=True)

    with pytest.raises(ManifestError, match="split_debuginfo"):
        anyio.run(load)


def test_real_manifest_values(corpus_repo: Path) -> None:
    """Keys of the real manifests land in typed values (lists, extract maps, flags)."""

    async def load() -> Repository:
        return await Repository.open(corpus_repo, BuildOptions(arch=Arch.X86_64))

    repo = anyio.run(load)
    testdrive = repo.images["testdrive"].manifest.pre_images[0]
    assert testdrive.bins == ("testdrive",)  # type: ignore[union-attr]
    assert testdrive.features == ("mz-testdrive/foundationdb",)  # type: ignore[union-attr]
    assert testdrive.extract == {  # type: ignore[union-attr]
        "protobuf-src": {"bin": "protobuf-bin", "include": "protobuf-include"},
        "libduckdb-sys": {"$CARGO_TARGET_DIR/duckdb-download": "duckdb-download"},
    }
    jobs = repo.images["jobs"].manifest.pre_images[0]
    assert jobs.bins == ("persistcli", "mz-catalog-debug")  # type: ignore[union-attr]
    assert jobs.strip is False  # type: ignore[union-attr]
    assert repo.images["mz"].manifest.mainline is False
