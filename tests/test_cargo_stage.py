"""The run's cargo stage (builds/staging.py, builds/cargo.py) on a stand-in ``cargo``
(``$CARGO``: a script that replays cargo's JSON messages, the seam the real-cargo tests
cross for real): each image is staged and released the moment its artifacts are
reported, while cargo goes on; its build script's outputs are extracted; a compile
error names the crate, its first error and where, after what landed is staged; what
was staged is removed at the end."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from mzbuild_async.builds.staging import CargoStage
from mzbuild_async.errors import CargoBuildError
from mzbuild_async.model.options import BuildOptions, Profile
from mzbuild_async.source.repository import Repository
from tests.conftest import MakeRepo

pytestmark = pytest.mark.anyio

PACKAGE = '[package]\nname = "{}"\nversion = "0.1.0"\nedition = "2021"\n'
FILES = {
    "Cargo.toml": '[workspace]\nmembers = ["src/fast", "src/slow"]\nresolver = "2"\n',
    "src/fast/Cargo.toml": PACKAGE.format("fast"),
    "src/fast/src/main.rs": "fn main() {}\n",
    "src/slow/Cargo.toml": PACKAGE.format("slow"),
    "src/slow/build.rs": "fn main() {}\n",
    "src/slow/src/main.rs": "fn main() {}\n",
    "images/fast/mzbuild.yml": (
        "name: fast-img\npre-image:\n  - type: cargo-build\n    bin: fast\n    strip: false\n"
    ),
    "images/fast/Dockerfile": "FROM scratch\nCOPY fast /fast\n",
    "images/slow/mzbuild.yml": (
        "name: slow-img\npre-image:\n  - type: cargo-build\n    bin: slow\n    strip: false\n"
        "    extract:\n      slow:\n        note.txt: note.txt\n"
    ),
    "images/slow/Dockerfile": "FROM scratch\nCOPY slow /slow\nCOPY note.txt /note.txt\n",
}


def _cargo(tmp_path: Path, messages: list[dict[str, object] | str], status: int = 0) -> Path:
    """A stand-in cargo printing ``messages`` (dicts as JSON on stdout, text on stderr),
    waiting for ``gate`` to appear before the ones after the string ``"GATE"``."""
    script = ["#!/bin/sh"]
    for message in messages:
        if message == "GATE":
            script.append(f"while [ ! -e {tmp_path / 'gate'} ]; do sleep 0.01; done")
        elif isinstance(message, str):
            script.append(f"printf '%s\\n' {json.dumps(message)} >&2")
        else:  # (printf: dash's echo would read the JSON's escapes)
            script.append(f"printf '%s\\n' '{json.dumps(message)}'")
    script.append(f"exit {status}")
    program = tmp_path / "cargo"
    program.write_text("\n".join(script) + "\n")
    program.chmod(0o755)
    return program


def _artifact(name: str, executable: Path) -> dict[str, object]:
    return {
        "reason": "compiler-artifact",
        "package_id": f"path+file:///ws/src/{name}#0.1.0",
        "target": {"kind": ["bin"], "name": name},
        "executable": str(executable),
    }


async def _repo(make_repo: MakeRepo) -> Repository:
    return await Repository.open(make_repo(FILES), BuildOptions(profile=Profile.DEV))


async def test_images_are_staged_and_released_as_their_artifacts_land(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = await _repo(make_repo)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "note.txt").write_text("from the build script\n")
    binaries = {}
    for name in ("fast", "slow"):
        binaries[name] = tmp_path / f"{name}.bin"
        binaries[name].write_bytes(f"{name} binary".encode())
    program = _cargo(
        tmp_path,
        [
            "   Compiling fast v0.1.0",
            _artifact("fast", binaries["fast"]),
            "GATE",
            {
                "reason": "build-script-executed",
                "package_id": "path+file:///ws/src/slow#0.1.0",
                "out_dir": str(out_dir),
            },
            _artifact("slow", binaries["slow"]),
        ],
    )
    lines: list[str] = []
    stage = CargoStage(repo, {**os.environ, "CARGO": str(program)}, lines.append)
    landed: list[str] = []

    def land(name: str) -> None:
        landed.append(name)
        if name == "fast-img":  # (cargo goes on only once the fast image is released)
            (tmp_path / "gate").touch()

    with anyio.fail_after(30):
        await stage.build(["fast-img", "slow-img"], land)
    assert landed == ["fast-img", "slow-img"]
    assert (stage.staged["fast-img"] / "fast").read_bytes() == b"fast binary"
    assert (stage.staged["slow-img"] / "note.txt").read_text() == "from the build script\n"
    assert "   Compiling fast v0.1.0" in lines
    assert stage.artifacts is not None
    assert set(stage.artifacts.executables) == {("bin", "fast"), ("bin", "slow")}
    directory = stage.directory
    assert directory is not None
    assert directory.is_dir()
    await stage.aclose()
    assert not directory.exists()


async def test_a_compile_error_names_the_crate_after_what_landed(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = await _repo(make_repo)
    binary = tmp_path / "fast.bin"
    binary.write_bytes(b"fast binary")
    error: dict[str, object] = {
        "reason": "compiler-message",
        "package_id": "path+file:///ws/src/slow#0.1.0",
        "message": {
            "level": "error",
            "message": "cannot find value `undefined_name` in this scope",
            "rendered": "error[E0425]: cannot find value `undefined_name`\n --> src/main.rs:1:30",
            "spans": [
                {
                    "is_primary": True,
                    "file_name": "src/main.rs",
                    "line_start": 1,
                    "column_start": 30,
                }
            ],
        },
    }
    program = _cargo(tmp_path, [_artifact("fast", binary), error, "error: could not compile"], 101)
    lines: list[str] = []
    stage = CargoStage(repo, {**os.environ, "CARGO": str(program)}, lines.append)
    landed: list[str] = []
    with pytest.raises(CargoBuildError) as caught:
        await stage.build(["fast-img", "slow-img"], landed.append)
    message = str(caught.value)
    assert "crate slow: error: cannot find value `undefined_name`" in message
    assert "at src/main.rs:1:30" in message
    assert landed == ["fast-img"]  # (staged before the failure was raised)
    assert "fast-img" in stage.staged
    assert any("undefined_name" in line for line in lines)  # the diagnostic was streamed
    await stage.aclose()


async def test_a_binary_cargo_did_not_report_is_one_line(
    make_repo: MakeRepo, tmp_path: Path
) -> None:
    repo = await _repo(make_repo)
    program = _cargo(tmp_path, ["    Finished dev profile"])
    stage = CargoStage(repo, {**os.environ, "CARGO": str(program)}, lambda _line: None)
    with pytest.raises(CargoBuildError, match="cargo build produced no bin fast"):
        await stage.build(["fast-img"], lambda _name: None)
    await stage.aclose()
