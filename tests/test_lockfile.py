"""Cargo.lock: packages, and the closure of a workspace crate through its dependencies."""

from __future__ import annotations

from pathlib import Path

import pytest

from mzbuild_async.errors import CargoError
from mzbuild_async.source.lockfile import load_lockfile

LOCK = """version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["serde", "log 0.4.20", "log 0.3.9 (registry+https://crates.example/index)"]

[[package]]
name = "serde"
version = "1.0.200"
source = "registry+https://crates.example/index"
checksum = "aa"

[[package]]
name = "log"
version = "0.4.20"
source = "registry+https://crates.example/index"
checksum = "bb"

[[package]]
name = "log"
version = "0.3.9"
source = "registry+https://crates.example/index"
checksum = "cc"
dependencies = ["serde"]

[[package]]
name = "unrelated"
version = "2.0.0"
"""


def test_the_closure_of_a_crate(tmp_path: Path) -> None:
    (tmp_path / "Cargo.lock").write_text(LOCK)
    lock = load_lockfile(tmp_path)
    assert lock is not None
    closure = lock.closure(["app"])
    assert [(p.name, p.version) for p in closure] == [
        ("app", "0.1.0"), ("log", "0.3.9"), ("log", "0.4.20"), ("serde", "1.0.200"),
    ]  # fmt: skip
    serde = next(p for p in closure if p.name == "serde")
    assert (serde.checksum, serde.purl) == ("aa", "pkg:cargo/serde@1.0.200")
    assert lock.closure(["nothing"]) == []


def test_no_lock_file_is_none_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    assert load_lockfile(tmp_path) is None
    (tmp_path / "Cargo.lock").write_text(
        '[[package]]\nname = "a"\nversion = "1"\ndependencies = ["b"]\n'
    )
    with pytest.raises(CargoError, match="depends on 'b'"):
        load_lockfile(tmp_path)
    (tmp_path / "Cargo.lock").write_text("[[package]\n")
    with pytest.raises(CargoError, match="cannot read it"):
        load_lockfile(tmp_path)


def test_a_base_goes_through_its_registrys_mirror() -> None:
    """Docker's reading of a reference (a first component with . or : or localhost is a
    registry; else Docker Hub, official images under library/); stages, scratch and
    what is not a FROM stay."""
    from mzbuild_async.source.pins import mirrored, mirrored_dockerfile

    hub = {"docker.io": "m.test/hub", "ghcr.io": "m.test/ghcr"}
    assert mirrored("alpine:3", hub) == "m.test/hub/library/alpine:3"
    assert mirrored("user/app@sha256:ab", hub) == "m.test/hub/user/app@sha256:ab"
    assert mirrored("index.docker.io/library/ubuntu", hub) == "m.test/hub/library/ubuntu"
    assert mirrored("ghcr.io/org/x:1", hub) == "m.test/ghcr/org/x:1"
    for kept in ("quay.io/x/y", "localhost/x", "127.0.0.1:5000/x"):
        assert mirrored(kept, hub) == kept
    dockerfile = (
        b"FROM --platform=linux/amd64 alpine:3 AS build\nRUN make\nFROM build\n"
        b"FROM scratch\nCOPY --from=build /out /\nMZFROM base\n"
    )
    assert mirrored_dockerfile(dockerfile, hub) == dockerfile.replace(
        b" alpine:3 ", b" m.test/hub/library/alpine:3 "
    )
    assert mirrored_dockerfile(dockerfile, {}) is dockerfile
