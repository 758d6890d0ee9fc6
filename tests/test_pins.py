"""mzbuild.lock: which FROMs are external, how a pinned Dockerfile reads, the file itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async.errors import InputError
from mzbuild_async.source.pins import external_bases, lock_text, pinned_dockerfile, read_lock

DIGEST = "sha256:" + "ab" * 32
DOCKERFILE = b"""MZFROM base
FROM --platform=linux/amd64 rust:1.80 AS builder
RUN make
FROM builder AS again
FROM scratch
FROM debian:12-slim
FROM ubuntu@sha256:0123
FROM ${BASE}
COPY --from=builder /x /x
from debian:12-slim
"""


def test_external_bases_are_the_froms_we_do_not_make() -> None:
    assert external_bases(DOCKERFILE) == ["rust:1.80", "debian:12-slim"]


def test_a_pinned_dockerfile_keeps_the_rest_of_each_line() -> None:
    pinned = pinned_dockerfile(DOCKERFILE, {"rust:1.80": DIGEST, "debian:12-slim": DIGEST})
    lines = pinned.splitlines()
    assert lines[1] == f"FROM --platform=linux/amd64 rust:1.80@{DIGEST} AS builder".encode()
    assert lines[5] == f"FROM debian:12-slim@{DIGEST}".encode()
    assert lines[9] == f"from debian:12-slim@{DIGEST}".encode()
    assert lines[0] == b"MZFROM base"
    assert pinned_dockerfile(DOCKERFILE, {}) == DOCKERFILE


def test_the_lock_file_round_trips_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    assert read_lock(tmp_path) == {}
    (tmp_path / "mzbuild.lock").write_text(lock_text({"debian:12-slim": DIGEST}))
    assert read_lock(tmp_path) == {"debian:12-slim": DIGEST}
    (tmp_path / "mzbuild.lock").write_text('[from]\n"debian:12" = "latest"\n')
    with pytest.raises(InputError, match=r"mzbuild\.lock: \[from\] must map"):
        read_lock(tmp_path)
    (tmp_path / "mzbuild.lock").write_text("[from\n")
    with pytest.raises(InputError, match="cannot read it"):
        read_lock(tmp_path)
