"""The batched cargo build, and staging its outputs into an image's context.

One ``cargo build`` covers the union of the binaries, examples and features
of every image that must be built, as the original batches them. Cargo's
JSON messages tell where each binary landed and each build script's
``OUT_DIR`` (for ``extract``); its diagnostics go to the log as they come,
and a failure names the crate and its first error.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc

from ..errors import CargoBuildError
from ..model.manifest import CargoBuild
from ..model.options import Arch, BuildOptions, Profile, Sanitizer
from ..source.cargo import Workspace
from ..support.documents import parse_json, parse_toml
from ..support.lines import pump_lines

LineSink = Callable[[str], None]
#: Lines of cargo output kept to explain a failure that has no JSON error.
TAIL_LINES = 20


def _drop(line: str) -> None:
    """Discard an output line."""


@dataclass(frozen=True)
class CargoRequest:
    """What one ``cargo build`` must produce."""

    bins: tuple[str, ...]
    examples: tuple[str, ...]
    features: tuple[str, ...]


@dataclass
class CargoArtifacts:
    """Where cargo put what it built."""

    #: Executable path of each binary and example, by ``(kind, name)``.
    executables: dict[tuple[str, str], Path] = field(default_factory=dict)
    #: Build-script ``OUT_DIR`` of each package, by package name.
    out_dirs: dict[str, Path] = field(default_factory=dict)


def cargo_request(
    pre_images: Sequence[tuple[str, CargoBuild]], workspace: Workspace
) -> CargoRequest:
    """The union of every pre-image's targets (checked against the workspace)."""
    bins: set[str] = set()
    examples: set[str] = set()
    features: set[str] = set()
    for where, pre_image in pre_images:
        for name in pre_image.bins:
            workspace.crate_for_bin(name, where)
            bins.add(name)
        for name in pre_image.examples:
            workspace.crate_for_example(name, where)
            examples.add(name)
        features.update(pre_image.features)
    return CargoRequest(tuple(sorted(bins)), tuple(sorted(examples)), tuple(sorted(features)))


def target_triple(arch: Arch) -> str:
    """The Rust target triple of ``arch`` on Linux with glibc."""
    return f"{arch.value}-unknown-linux-gnu"


def cargo_program(environ: Mapping[str, str]) -> str:
    """The cargo executable: ``$CARGO``, then ``$PATH``, then ``~/.cargo/bin``."""
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    for candidate in (
        environ.get("CARGO"),
        shutil.which("cargo", path=environ.get("PATH", os.defpath)),
        str(home / ".cargo" / "bin" / "cargo"),
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise CargoBuildError("cargo not found; install Rust (rustup) or set CARGO to its path")


def _tool_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment for cargo and rustc: ``environ``, with cargo's directory on ``PATH``."""
    env = dict(environ)
    bin_dir = str(Path(cargo_program(environ)).parent)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return env


def cargo_command(
    request: CargoRequest, options: BuildOptions, program: str = "cargo"
) -> list[str]:
    """The ``cargo build`` argument list for ``request`` under ``options``."""
    args = [program]
    if options.sanitizer is not Sanitizer.NONE:
        args.append("+nightly")
    args += ["build", "--message-format=json"]
    if options.profile is Profile.RELEASE:
        args.append("--release")
    elif options.profile is Profile.OPTIMIZED:
        args += ["--profile", "optimized"]
    if options.arch is not Arch.host() or options.sanitizer is not Sanitizer.NONE:
        args += ["--target", target_triple(options.arch)]
    if options.sanitizer is not Sanitizer.NONE:
        args.append("-Zbuild-std")
    for name in request.bins:
        args += ["--bin", name]
    for name in request.examples:
        args += ["--example", name]
    if request.features:
        args.append(f"--features={','.join(request.features)}")
    return args


def cargo_rustflags(options: BuildOptions) -> list[str]:
    """Extra ``RUSTFLAGS`` the original adds for coverage and sanitizers."""
    flags: list[str] = []
    if options.coverage:
        flags.append("-Cinstrument-coverage")
    if options.sanitizer is not Sanitizer.NONE:
        flags.append(f"-Zsanitizer={options.sanitizer.value}")
    return flags


async def check_profile_and_target(
    root: Path, options: BuildOptions, environ: Mapping[str, str]
) -> None:
    """Clear errors before cargo runs: a missing profile, an uninstalled target."""
    if options.profile is Profile.OPTIMIZED:
        try:
            profiles = parse_toml((root / "Cargo.toml").read_bytes()).get("profile", {})
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CargoBuildError(f"Cargo.toml: cannot read the workspace: {exc}") from None
        if "optimized" not in profiles:
            raise CargoBuildError(
                "Cargo.toml: the workspace has no [profile.optimized]; add one"
                " or build with --profile release or --profile dev"
            )
    if options.arch is Arch.host():
        return
    triple = target_triple(options.arch)
    result = await anyio.run_process(
        ["rustc", "--print", "sysroot"], check=False, env=_tool_env(environ)
    )
    sysroot = Path(result.stdout.decode().strip())
    if result.returncode != 0 or not (sysroot / "lib" / "rustlib" / triple).is_dir():
        raise CargoBuildError(
            f"--arch {options.arch}: the Rust target {triple} is not installed;"
            f" run `rustup target add {triple}`"
        )


def _package_name(package_id: str) -> str:
    """The package name in a cargo package ID: ``name ver (src)`` or ``src#name@ver``."""
    if " " in package_id:
        return package_id.split(maxsplit=1)[0]
    fragment = package_id.rsplit("#", 1)[-1]
    if "@" in fragment:
        return fragment.split("@", 1)[0]
    return package_id.rsplit("#", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _ignore(artifacts: CargoArtifacts) -> None:
    """Take no notice of a new artifact."""


@dataclass
class _Reader:
    """Folds cargo's JSON messages into artifacts and a first error."""

    on_line: LineSink
    artifacts: CargoArtifacts = field(default_factory=CargoArtifacts)
    first_error: str | None = None
    tail: list[str] = field(default_factory=list)
    #: Called after each artifact or build-script output cargo reports.
    on_artifact: Callable[[CargoArtifacts], None] = _ignore

    def message(self, line: str) -> None:
        try:
            msg = parse_json(line)
        except ValueError:
            self.text(line)
            return
        reason = msg.get("reason")
        if reason == "compiler-artifact" and msg.get("executable"):
            target = msg.get("target", {})
            for kind in target.get("kind", ()):
                if kind in ("bin", "example"):
                    self.artifacts.executables[(kind, target["name"])] = Path(msg["executable"])
            self.on_artifact(self.artifacts)
        elif reason == "build-script-executed" and msg.get("out_dir"):
            self.artifacts.out_dirs[_package_name(msg["package_id"])] = Path(msg["out_dir"])
            self.on_artifact(self.artifacts)
        elif reason == "compiler-message":
            diagnostic = msg.get("message", {})
            rendered = str(diagnostic.get("rendered") or diagnostic.get("message") or "")
            for text in rendered.splitlines():
                self.text(text)
            if diagnostic.get("level") == "error" and self.first_error is None:
                crate = _package_name(str(msg.get("package_id", "?")))
                spans = [s for s in diagnostic.get("spans", ()) if s.get("is_primary")]
                where = (
                    f" at {spans[0]['file_name']}:{spans[0]['line_start']}"
                    f":{spans[0]['column_start']}"
                    if spans
                    else ""
                )
                self.first_error = f"crate {crate}: error: {diagnostic.get('message', '')}{where}"

    def text(self, line: str) -> None:
        self.on_line(line)
        self.tail = [*self.tail[-(TAIL_LINES - 1) :], line]


async def _stop(process: anyio.abc.Process) -> None:
    """Terminate cargo and the compilers it started (its process group)."""
    with anyio.CancelScope(shield=True):
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            with anyio.move_on_after(wait):
                await process.wait()
                return


async def cargo_build(
    root: Path,
    request: CargoRequest,
    options: BuildOptions,
    *,
    environ: Mapping[str, str],
    on_line: LineSink = _drop,
    on_artifact: Callable[[CargoArtifacts], None] = _ignore,
) -> CargoArtifacts:
    """Run the one ``cargo build`` and return where its outputs are.

    ``on_artifact`` sees the artifacts so far each time cargo reports one (a
    binary linked, or fresh; a build script run), from cargo's own messages.
    Cancellation terminates cargo and its compilers; a failure raises
    :class:`CargoBuildError` naming the crate and its first error.
    """
    if not request.bins and not request.examples:
        return CargoArtifacts()
    env = _tool_env(environ)
    env.setdefault("CARGO_TERM_COLOR", "never")
    flags = cargo_rustflags(options)
    if flags:
        env["RUSTFLAGS"] = " ".join(filter(None, [env.get("RUSTFLAGS", ""), *flags]))
    command = cargo_command(request, options, cargo_program(environ))
    reader = _Reader(on_line, on_artifact=on_artifact)
    process = await anyio.open_process(
        command, cwd=root, env=env, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_lines, process.stdout, reader.message)
            tg.start_soon(pump_lines, process.stderr, reader.text)
            status = await process.wait()
    except BaseException:
        await _stop(process)
        raise
    finally:
        with anyio.CancelScope(shield=True):
            await process.aclose()
    if status != 0:
        detail = reader.first_error or next(
            (line for line in reversed(reader.tail) if line.startswith("error")),
            f"exit status {status}",
        )
        raise CargoBuildError(f"cargo build failed: {detail}")
    missing = [
        f"{kind} {name}"
        for kind, names in (("bin", request.bins), ("example", request.examples))
        for name in names
        if (kind, name) not in reader.artifacts.executables
    ]
    if missing:
        raise CargoBuildError(f"cargo build produced no {', '.join(missing)}")
    return reader.artifacts


def _strip_program(arch: Arch) -> str:
    if arch is Arch.host():
        return "strip"
    cross = f"{arch.value}-linux-gnu-strip"
    if shutil.which(cross):
        return cross
    raise CargoBuildError(
        f"--arch {arch}: {cross} not found to strip binaries; install binutils for {arch}"
        " or set strip: false"
    )


def needs_landed(pre_images: Sequence[CargoBuild], artifacts: CargoArtifacts) -> bool:
    """Whether cargo has reported every binary, example and build-script output
    (for ``extract``) that these pre-images take."""
    return all(
        (kind, name) in artifacts.executables
        for pre_image in pre_images
        for kind, names in (("bin", pre_image.bins), ("example", pre_image.examples))
        for name in names
    ) and all(package in artifacts.out_dirs for p in pre_images for package in p.extract)


async def stage_outputs(
    pre_image: CargoBuild,
    artifacts: CargoArtifacts,
    staging: Path,
    *,
    where: str,
    arch: Arch | None = None,
) -> list[Path]:
    """Copy a pre-image's binaries (stripped) and extracted files into ``staging``."""
    staged: list[Path] = []
    for kind, names in (("bin", pre_image.bins), ("example", pre_image.examples)):
        for name in names:
            source = artifacts.executables.get((kind, name))
            if source is None:
                raise CargoBuildError(f"{where}: cargo built no {kind} {name!r}")
            destination = staging / name
            await anyio.to_thread.run_sync(shutil.copy2, source, destination)
            staged.append(destination)
    if pre_image.strip and staged:
        program = _strip_program(arch or Arch.host())
        result = await anyio.run_process([program, "--strip-debug", *map(str, staged)], check=False)
        if result.returncode != 0:
            raise CargoBuildError(
                f"{where}: strip failed: {result.stderr.decode(errors='replace').strip()}"
            )
    for package, mapping in pre_image.extract.items():
        out_dir = artifacts.out_dirs.get(package)
        if out_dir is None:
            raise CargoBuildError(
                f"{where}: extract names package {package!r}, which ran no build script"
            )
        for src, dst in mapping.items():
            await anyio.to_thread.run_sync(_extract, out_dir, src, staging, dst, where)
    return staged


def _within(base: Path, path: Path) -> bool:
    """Whether ``path``, every symlink followed, lies in ``base`` (itself resolved)."""
    return path.resolve().is_relative_to(base.resolve())


def _extract(out_dir: Path, src: str, staging: Path, dst: str, where: str) -> None:
    """Copy ``out_dir/src`` to ``staging/dst``, neither side leaving its directory.

    The manifest refuses absolute and ``..`` paths; this also refuses a path
    that gets out through a symlink (in the build script's output, or one an
    earlier extract put in the staging directory). Symlinks inside a copied
    tree are copied as links, never followed, so no host file comes along.
    """
    source, destination = out_dir / src, staging / dst
    if not _within(out_dir, source):
        raise CargoBuildError(
            f"{where}: extract source {src!r} leads out of the build script's output"
            f" directory ({source.resolve()}); refusing to copy it"
        )
    targets = [destination.parent]
    if source.is_dir():  # (a directory there already may hold symlinks out)
        targets += [destination / Path(d).relative_to(source) for d, _, _ in os.walk(source)]
    if destination.is_symlink() or not all(_within(staging, t) for t in targets):
        raise CargoBuildError(
            f"{where}: extract destination {dst!r} leads out of the build context;"
            " refusing to write there"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        if source.is_dir():
            shutil.copytree(source, destination, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, destination)
    except FileNotFoundError:
        raise CargoBuildError(f"{where}: extract source {source} does not exist") from None
