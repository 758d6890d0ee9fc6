"""The build context: .dockerignore matching, what goes in, the tar stream."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from mzbuild_async.builds import context
from mzbuild_async.builds.context import (
    CONTEXT_DOCKERFILE,
    DockerIgnore,
    Entry,
    context_entries,
    input_list_digest,
    rewrite_dockerfile,
    stream_context,
)
from mzbuild_async.errors import DockerBuildError


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        ("*.md", "README.md", True),
        ("*.md", "docs/README.md", False),  # * does not cross /
        ("**/*.md", "docs/deep/README.md", True),
        ("**/*.md", "README.md", True),  # ** matches no directory too
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**", "a/x/y", True),
        ("file?.txt", "file1.txt", True),
        ("file?.txt", "file10.txt", False),
        ("[a-c].txt", "b.txt", True),
        ("[a-c].txt", "d.txt", False),
        ("[!a].txt", "a.txt", False),
        ("[!a].txt", "b.txt", True),
        ("build", "build/x/y", True),  # a matched parent excludes what is under it
        ("/build", "build/out", True),  # a leading / is dropped
        ("./build", "build/out", True),
        ("# comment\n\nnotes", "# comment", False),
        ("# comment\n\nnotes", "notes", True),
        ("*\n!keep", "keep", False),
        ("*\n!keep", "other", True),
        ("!keep\n*", "keep", True),  # the later pattern wins
        ("*.log\n!important.log", "important.log", False),
        ("\\*.txt", "*.txt", True),
        ("\\*.txt", "a.txt", False),
        ("a+b", "a+b", True),  # regex characters are literal
        ("a+b", "aab", False),
    ],
)
def test_dockerignore_matches_like_the_docker_cli(patterns: str, path: str, excluded: bool) -> None:
    assert DockerIgnore(patterns).excludes(path) is excluded


def test_context_entries(tmp_path: Path) -> None:
    root = tmp_path
    for rel in ("img/Dockerfile", "img/a.txt", "img/skip.log", "img/sub/b.txt", "lib/c.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    staged = tmp_path / "staged"
    (staged / "bin").mkdir(parents=True)
    (staged / "bin" / "tool").write_text("built")
    (staged / "a.txt").write_text("from a pre-image")
    entries = context_entries(
        root,
        "img",
        ["img/Dockerfile", "img/a.txt", "img/skip.log", "img/sub/b.txt"],
        copies=[("lib/c.txt", "vendor/c.txt")],
        staged=staged,
        dockerignore="*.log\n",
    )
    assert [e.name for e in entries] == [
        "Dockerfile",
        "a.txt",
        "bin/tool",
        "sub/b.txt",
        "vendor/c.txt",
    ]
    by_name = {e.name: e.source for e in entries}
    assert by_name["a.txt"] == staged / "a.txt"  # pre-image output wins
    assert by_name["vendor/c.txt"] == root / "lib" / "c.txt"


def test_rewrite_dockerfile() -> None:
    original = b"# base\nMZFROM base\nMZFROM  tools AS t\nRUN echo MZFROM base\r\nCOPY . /\n"
    rewritten = rewrite_dockerfile(original, {"base": "r/base:mzbuild-A", "tools": "r/t:mzbuild-B"})
    assert rewritten.split(b"\n") == [
        b"# base",
        b"FROM r/base:mzbuild-A",
        b"FROM r/t:mzbuild-B AS t",
        b"RUN echo MZFROM base\r",
        b"COPY . /",
        b"",
    ]
    with pytest.raises(DockerBuildError, match="MZFROM other names no dependency"):
        rewrite_dockerfile(b"MZFROM other\n", {})


async def _collect(entries: list[Entry], dockerignore: str | None = None) -> list[bytes]:
    return [
        piece async for piece in stream_context(entries, b"FROM x\n", dockerignore=dockerignore)
    ]


@pytest.mark.anyio
async def test_stream_context_is_a_valid_tar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(context, "CHUNK", 4096)
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "data.txt").write_text("data")
    (tmp_path / "data.txt").chmod(0o600)
    big = os.urandom(50_000)
    (tmp_path / "big.bin").write_bytes(big)
    (tmp_path / "link").symlink_to("data.txt")
    (tmp_path / ".dockerignore").write_text("*.tmp\n")
    names = ["run.sh", "data.txt", "big.bin", "link", ".dockerignore"]
    entries = [Entry(tmp_path / n, n) for n in names]
    pieces = await _collect(entries, dockerignore="*.tmp\n")
    assert len(pieces) > 5
    assert max(len(p) for p in pieces) <= 2 * 4096 + 4 * 1024  # bounded, whatever the file size
    with tarfile.open(fileobj=io.BytesIO(b"".join(pieces))) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {CONTEXT_DOCKERFILE, ".dockerignore", *names[:4]}

        def read(name: str) -> bytes:
            f = tar.extractfile(name)
            assert f is not None
            return f.read()

        assert read(CONTEXT_DOCKERFILE) == b"FROM x\n"
        assert read(".dockerignore").decode().splitlines() == [
            "*.tmp",
            ".dockerignore",
            CONTEXT_DOCKERFILE,
        ]
        assert read("big.bin") == big
        assert read("data.txt") == b"data"
        assert members["run.sh"].mode == 0o755
        assert members["data.txt"].mode == 0o644
        assert members["link"].issym()
        assert members["link"].linkname == "data.txt"
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())


@pytest.mark.anyio
async def test_a_file_that_vanishes_is_a_clear_error(tmp_path: Path) -> None:
    entry = Entry(tmp_path / "gone.txt", "gone.txt")
    with pytest.raises(DockerBuildError, match=r"gone\.txt: vanished"):
        await _collect([entry])


@pytest.mark.anyio
async def test_a_file_that_changes_size_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "grows.txt"
    path.write_text("short")
    real_open = context._open_entry

    def open_then_grow(entry: Entry) -> tuple[bytes, object, int]:
        opened = real_open(entry)
        path.write_text("much longer than before")
        return opened

    monkeypatch.setattr(context, "_open_entry", open_then_grow)
    with pytest.raises(DockerBuildError, match="changed while the build context was sent"):
        await _collect([Entry(path, "grows.txt")])


def test_input_list_digest() -> None:
    first = input_list_digest(["a", "b"])
    assert first.startswith("sha256:")
    assert first == input_list_digest(["a", "b"])
    assert first != input_list_digest(["b", "a"])
    assert first != input_list_digest(["a", "b", "c"])
