"""The batched cargo build and staging its outputs, with real cargo."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import anyio
import pytest

from mzbuild_async.builds.cargo import (
    CargoArtifacts,
    CargoRequest,
    cargo_build,
    cargo_command,
    cargo_program,
    cargo_request,
    check_profile_and_target,
    stage_outputs,
    target_triple,
)
from mzbuild_async.errors import CargoBuildError, CargoError
from mzbuild_async.model.manifest import CargoBuild
from mzbuild_async.model.options import Arch, BuildOptions, Profile
from mzbuild_async.source.cargo import load_workspace

OTHER_ARCH = Arch.AARCH64 if Arch.host() is Arch.X86_64 else Arch.X86_64
DEV = BuildOptions(profile=Profile.DEV)

WORKSPACE = {
    "Cargo.toml": (
        '[workspace]\nmembers = ["hello", "greet"]\nresolver = "2"\n\n'
        '[profile.optimized]\ninherits = "release"\n'
    ),
    "hello/Cargo.toml": (
        '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n\n'
        '[dependencies]\ngreet = { path = "../greet" }\n'
    ),
    "hello/src/main.rs": 'fn main() { println!("{}", greet::line()); }\n',
    "hello/examples/demo.rs": "fn main() {}\n",
    "greet/Cargo.toml": '[package]\nname = "greet"\nversion = "0.1.0"\nedition = "2021"\n',
    "greet/build.rs": (
        "fn main() {\n"
        '    let out = std::env::var("OUT_DIR").unwrap();\n'
        '    std::fs::write(format!("{out}/generated.txt"), "generated").unwrap();\n'
        "}\n"
    ),
    "greet/src/lib.rs": 'pub fn line() -> &\'static str { "hello from greet" }\n',
}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _cargo_or_fail() -> None:
    try:
        cargo_program(os.environ)
    except CargoBuildError:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("cargo is not installed")
        pytest.skip("cargo is not installed")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CargoArtifacts, list[str]]:
    """The workspace, built once in the dev profile, and the lines cargo printed."""
    _cargo_or_fail()
    root = write(tmp_path_factory.mktemp("ws"), WORKSPACE)
    lines: list[str] = []
    request = CargoRequest(bins=("hello",), examples=("demo",), features=())
    artifacts = anyio.run(
        lambda: cargo_build(root, request, DEV, environ=os.environ, on_line=lines.append)
    )
    return root, artifacts, lines


def test_cargo_command_follows_the_profile_and_arch() -> None:
    request = CargoRequest(bins=("a", "b"), examples=("ex",), features=("f1", "f2"))
    dev = cargo_command(request, DEV)
    assert dev[1:3] == ["build", "--message-format=json"]
    assert "--release" not in dev
    assert "--profile" not in dev
    assert "--target" not in dev
    assert dev[3:] == ["--bin", "a", "--bin", "b", "--example", "ex", "--features=f1,f2"]
    assert "--release" in cargo_command(request, BuildOptions(profile=Profile.RELEASE))
    optimized = cargo_command(request, BuildOptions(profile=Profile.OPTIMIZED))
    assert optimized[optimized.index("--profile") + 1] == "optimized"
    cross = cargo_command(request, BuildOptions(profile=Profile.DEV, arch=OTHER_ARCH))
    assert cross[cross.index("--target") + 1] == target_triple(OTHER_ARCH)


def test_cargo_request_unions_the_pre_images(tmp_path: Path) -> None:
    root = write(tmp_path, WORKSPACE)
    workspace = load_workspace(root)
    request = cargo_request(
        [
            ("a/mzbuild.yml", CargoBuild(bins=("hello",), features=("x",))),
            ("b/mzbuild.yml", CargoBuild(bins=("hello",), examples=("demo",), features=("y",))),
        ],
        workspace,
    )
    assert request == CargoRequest(bins=("hello",), examples=("demo",), features=("x", "y"))
    with pytest.raises(CargoError, match="nope") as info:
        cargo_request([("c/mzbuild.yml", CargoBuild(bins=("nope",)))], workspace)
    assert "c/mzbuild.yml" in str(info.value)


@pytest.mark.anyio
async def test_a_missing_optimized_profile_is_a_clear_error(tmp_path: Path) -> None:
    root = write(tmp_path, {"Cargo.toml": "[workspace]\nmembers = []\n"})
    with pytest.raises(CargoBuildError, match=r"no \[profile\.optimized\]"):
        await check_profile_and_target(root, BuildOptions(profile=Profile.OPTIMIZED), os.environ)
    await check_profile_and_target(root, BuildOptions(profile=Profile.RELEASE), os.environ)


@pytest.mark.anyio
async def test_an_uninstalled_target_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sysroot = tmp_path / "sysroot"
    fake = tmp_path / "bin" / "rustc"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\necho {sysroot}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CARGO", shutil.which("true") or "/bin/true")
    root = write(tmp_path / "ws", WORKSPACE)
    options = BuildOptions(profile=Profile.DEV, arch=OTHER_ARCH)
    triple = target_triple(OTHER_ARCH)
    with pytest.raises(CargoBuildError, match=f"rustup target add {triple}"):
        await check_profile_and_target(root, options, os.environ)
    (sysroot / "lib" / "rustlib" / triple).mkdir(parents=True)
    await check_profile_and_target(root, options, os.environ)


@pytest.mark.real
def test_cargo_build_reports_where_things_are(
    built: tuple[Path, CargoArtifacts, list[str]],
) -> None:
    root, artifacts, lines = built
    hello = artifacts.executables[("bin", "hello")]
    assert hello.is_file()
    assert hello.is_relative_to(root / "target")
    assert artifacts.executables[("example", "demo")].is_file()
    assert (artifacts.out_dirs["greet"] / "generated.txt").read_text() == "generated"
    assert any("Compiling greet" in line for line in lines)
    run = subprocess.run([hello], capture_output=True, text=True, check=True)
    assert run.stdout == "hello from greet\n"


@pytest.mark.real
def test_a_compile_error_names_the_crate_its_first_error_and_where(tmp_path: Path) -> None:
    _cargo_or_fail()
    files = dict(WORKSPACE)
    files["greet/src/lib.rs"] = "pub fn line() -> &'static str { undefined_thing() }\n"
    root = write(tmp_path, files)
    request = CargoRequest(bins=("hello",), examples=(), features=())
    lines: list[str] = []
    with pytest.raises(CargoBuildError) as info:
        anyio.run(lambda: cargo_build(root, request, DEV, environ=os.environ, on_line=lines.append))
    message = str(info.value)
    assert "crate greet" in message
    assert "undefined_thing" in message
    assert "greet/src/lib.rs:1:" in message
    assert any("undefined_thing" in line for line in lines)  # the diagnostic was streamed


@pytest.mark.anyio
async def test_nothing_to_build_runs_no_cargo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARGO", "/nonexistent/cargo")
    monkeypatch.setenv("PATH", "/nonexistent")
    artifacts = await cargo_build(Path("/nonexistent"), CargoRequest((), (), ()), DEV, environ={})
    assert artifacts == CargoArtifacts()


def _has_debug_info(path: Path) -> bool:
    sections = subprocess.run(
        ["readelf", "-S", str(path)], capture_output=True, text=True, check=True
    ).stdout
    return ".debug_info" in sections


@pytest.mark.anyio
@pytest.mark.real
async def test_stage_outputs_strips_and_extracts(
    built: tuple[Path, CargoArtifacts, list[str]], tmp_path: Path
) -> None:
    _root, artifacts, _lines = built
    original = artifacts.executables[("bin", "hello")]
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    pre_image = CargoBuild(bins=("hello",), extract={"greet": {"generated.txt": "gen/out.txt"}})
    staged = await stage_outputs(pre_image, artifacts, stripped, where="img/mzbuild.yml")
    assert staged == [stripped / "hello"]
    assert (stripped / "gen" / "out.txt").read_text() == "generated"
    if shutil.which("readelf"):
        assert _has_debug_info(original)
        assert not _has_debug_info(stripped / "hello")
    assert (stripped / "hello").stat().st_size < original.stat().st_size
    assert os.access(stripped / "hello", os.X_OK)

    kept = tmp_path / "kept"
    kept.mkdir()
    await stage_outputs(
        CargoBuild(bins=("hello",), strip=False), artifacts, kept, where="img/mzbuild.yml"
    )
    assert (kept / "hello").read_bytes() == original.read_bytes()


@pytest.mark.anyio
@pytest.mark.real
async def test_stage_outputs_errors_name_the_manifest(
    built: tuple[Path, CargoArtifacts, list[str]], tmp_path: Path
) -> None:
    _root, artifacts, _lines = built
    with pytest.raises(CargoBuildError, match=r"img/mzbuild\.yml: extract names package 'hello'"):
        await stage_outputs(
            CargoBuild(bins=("hello",), strip=False, extract={"hello": {"x": "y"}}),
            artifacts,
            tmp_path,
            where="img/mzbuild.yml",
        )
    with pytest.raises(CargoBuildError, match="cargo built no bin 'other'"):
        await stage_outputs(
            CargoBuild(bins=("other",)), artifacts, tmp_path, where="img/mzbuild.yml"
        )


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if text in cmdline or cwd.startswith(text):
            found.append(f"{proc.name}: {cmdline}")
    return found


@pytest.mark.real
def test_cancelling_the_build_leaves_no_process(tmp_path: Path) -> None:
    _cargo_or_fail()
    files = dict(WORKSPACE)
    files["greet/build.rs"] = (
        "fn main() { std::thread::sleep(std::time::Duration::from_secs(60)); }\n"
    )
    root = write(tmp_path / "slow", files)
    request = CargoRequest(bins=("hello",), examples=(), features=())

    async def main() -> None:
        with anyio.move_on_after(3.0) as scope:
            await cargo_build(root, request, DEV, environ=os.environ)
        assert scope.cancelled_caught

    anyio.run(main)
    for _ in range(50):
        left = _processes_mentioning(str(root))
        if not left:
            break
        anyio.run(anyio.sleep, 0.1)
    assert not left


@pytest.mark.anyio
@pytest.mark.real
async def test_extract_never_follows_a_symlink_out(
    built: tuple[Path, CargoArtifacts, list[str]], tmp_path: Path
) -> None:
    """A build script's output that links out of its directory is refused, a link inside
    a copied tree is copied as a link (no host file comes along), and a destination
    that an earlier link would lead out of is refused: nothing is written outside."""
    _root, artifacts, _lines = built
    out_dir = artifacts.out_dirs["greet"]
    secret = tmp_path / "host-secret"
    secret.write_text("host file")
    (out_dir / "leak").unlink(missing_ok=True)
    (out_dir / "leak").symlink_to(secret)
    tree = out_dir / "tree"
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir()
    (tree / "inner-link").symlink_to(secret)
    outside = tmp_path / "outside"
    outside.mkdir()
    (out_dir / "dirlink").unlink(missing_ok=True)
    (out_dir / "dirlink").symlink_to(outside, target_is_directory=True)
    try:
        staging = tmp_path / "s1"
        staging.mkdir()
        with pytest.raises(CargoBuildError, match="leads out of the build script's output"):
            await stage_outputs(
                CargoBuild(bins=("hello",), strip=False, extract={"greet": {"leak": "leak"}}),
                artifacts,
                staging,
                where="img/mzbuild.yml",
            )
        assert not (staging / "leak").exists()

        staging = tmp_path / "s2"
        staging.mkdir()
        await stage_outputs(
            CargoBuild(bins=("hello",), strip=False, extract={"greet": {"tree": "t"}}),
            artifacts,
            staging,
            where="img/mzbuild.yml",
        )
        assert (staging / "t" / "inner-link").is_symlink()

        staging = tmp_path / "s3"
        staging.mkdir()
        (staging / "way-out").symlink_to(outside, target_is_directory=True)
        with pytest.raises(CargoBuildError, match="leads out of the build context"):
            await stage_outputs(
                CargoBuild(
                    bins=("hello",), strip=False, extract={"greet": {"generated.txt": "way-out/x"}}
                ),
                artifacts,
                staging,
                where="img/mzbuild.yml",
            )
        assert list(outside.iterdir()) == []
    finally:
        for name in ("leak", "dirlink"):
            (out_dir / name).unlink(missing_ok=True)
        shutil.rmtree(tree, ignore_errors=True)
