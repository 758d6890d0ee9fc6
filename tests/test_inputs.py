"""Which files are an image's inputs: context, cargo-build and copy pre-images."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from mzbuild_async import Arch, BuildOptions, Repository
from mzbuild_async.errors import CargoError
from mzbuild_async.model.manifest import CargoBuild, Copy, PreImage
from mzbuild_async.source.cargo import Crate, Workspace
from mzbuild_async.source.gitview import GitView, load_git_view
from mzbuild_async.source.inputs import (
    cargo_crates,
    cargo_shared_files,
    context_files,
    copy_files,
    crate_files,
    image_inputs,
)
from tests.conftest import MakeRepo, git, write_tree

PKG = '[package]\nname = "{0}"\nversion = "0.1.0"\n'
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def static_view(*paths: str) -> GitView:
    """A view over fixed paths: the input rules need nothing else from git."""
    return GitView(root=Path("/nonexistent"), paths=tuple(sorted(paths)))


def crate(
    path: str,
    *,
    bins: tuple[str, ...] = (),
    examples: tuple[str, ...] = (),
    deps: tuple[str, ...] = (),
    dev: tuple[str, ...] = (),
) -> Crate:
    return Crate(
        name=path.rsplit("/", 1)[-1] or "root",
        path=path,
        bins=bins,
        examples=examples,
        path_deps=deps,
        dev_path_deps=dev,
    )


def no_workspace() -> Workspace:
    raise AssertionError("the Cargo workspace was read for an image without cargo-build")


def inputs(make_repo: MakeRepo, files: dict[str, str], image: str = "a") -> tuple[str, ...]:
    """The inputs of ``image`` in a committed repository holding ``files``, end to end."""
    root = make_repo(files)

    async def go() -> tuple[str, ...]:
        return (await Repository.open(root, BuildOptions(arch=Arch.X86_64))).inputs(image)

    return anyio.run(go)


# --- context -------------------------------------------------------------------------------

CONTEXT = static_view(
    "img/Dockerfile",
    "img/mzbuild.yml",
    "img/src/x",
    "img/inner/mzbuild.yml",
    "img/inner/f",
    "img/inner/deeper/mzbuild.yml",
    "img/innerx/f",
    "img-2/f",
    "top.txt",
)


@pytest.mark.parametrize(
    ("directory", "nested", "expected"),
    [
        pytest.param(
            "img",
            ["img/inner", "img/inner/deeper"],
            ["img/Dockerfile", "img/innerx/f", "img/mzbuild.yml", "img/src/x"],
            id="nested-images-own-their-files",
        ),
        pytest.param(
            "img/inner",
            ["img/inner/deeper"],
            ["img/inner/f", "img/inner/mzbuild.yml"],
            id="middle",
        ),
        pytest.param(
            "img",
            [],
            [p for p in CONTEXT.paths if p.startswith("img/")],
            id="no-nested-image",
        ),
        pytest.param(
            "",
            ["img", "img/inner", "img/inner/deeper"],
            ["img-2/f", "top.txt"],
            id="image-at-the-root",
        ),
    ],
)
def test_context(directory: str, nested: list[str], expected: list[str]) -> None:
    """Every visible file under the image directory except those under deeper images."""
    assert context_files(CONTEXT, directory, nested) == expected


def test_nested_image_context_end_to_end(make_repo: MakeRepo) -> None:
    """Through the repository: the outer image's inputs skip the inner image's directory."""
    files = {
        "outer/mzbuild.yml": "name: outer\n",
        "outer/Dockerfile": "MZFROM inner\n",
        "outer/file": "",
        "outer/inner/mzbuild.yml": "name: inner\n",
        "outer/inner/Dockerfile": "FROM scratch\n",
        "outer/inner/file": "",
        "outer/inner-not-an-image/file": "",
    }
    assert inputs(make_repo, files, "outer") == (
        "outer/Dockerfile",
        "outer/file",
        "outer/inner-not-an-image/file",
        "outer/mzbuild.yml",
    )
    assert inputs(make_repo, files, "inner") == (
        "outer/inner/Dockerfile",
        "outer/inner/file",
        "outer/inner/mzbuild.yml",
    )


# --- cargo-build ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visible", "shared"),
    [
        pytest.param(
            ["ci/builder/Dockerfile", "ci/builder/sub/deep.sh", "Cargo.toml", "Cargo.lock"],
            ["Cargo.lock", "Cargo.toml", "ci/builder/Dockerfile", "ci/builder/sub/deep.sh"],
            id="builder-and-root-files",
        ),
        pytest.param(
            ["ci/builder-old/x", "ci/other/x", "ci/builder"], [], id="only-under-ci-builder"
        ),
        pytest.param(
            ["src/a/Cargo.toml", "src/a/Cargo.lock", "x/.cargo/config"],
            [],
            id="root-files-only-at-the-root",
        ),
        pytest.param([".cargo/config"], [".cargo/config"], id="cargo-config"),
        pytest.param([".cargo/config.toml"], [], id="cargo-config-toml-is-not"),
        pytest.param([".cargo/other"], [], id="nothing-else-under-dot-cargo"),
        pytest.param([], [], id="none-present"),
    ],
)
def test_cargo_shared_files(visible: list[str], shared: list[str]) -> None:
    """ci/builder/**, Cargo.toml, Cargo.lock and .cargo/config, when visible."""
    assert sorted(cargo_shared_files(static_view(*visible))) == shared


@pytest.mark.parametrize(
    ("path", "visible", "files"),
    [
        pytest.param(
            "app",
            [
                "app/Cargo.toml",
                "app/src/main.rs",
                "app/mzcompose",
                "app/mzcompose.py",
                "app/sub/mzcompose",
                "app/sub/mzcompose.py",
                "app/mzcompose.yml",
                "app/mzcompose.pyc",
                "app-2/x",
                "appx",
            ],
            [
                "app/Cargo.toml",
                "app/mzcompose.pyc",
                "app/mzcompose.yml",
                "app/src/main.rs",
                "app/sub/mzcompose",
                "app/sub/mzcompose.py",
            ],
            id="top-level-mzcompose-files-only",
        ),
        pytest.param(
            "src/a",
            ["src/a/lib.rs", "src/ab/lib.rs", "src/a/b/mzcompose.py", "src/mzcompose.py"],
            ["src/a/b/mzcompose.py", "src/a/lib.rs"],
            id="nested-crate-directory",
        ),
    ],
)
def test_crate_files(path: str, visible: list[str], files: list[str]) -> None:
    """Every visible file under the crate directory, minus mzcompose(.py) directly in it."""
    assert crate_files(static_view(*visible), crate(path)) == files


def test_crate_at_the_repository_root_owns_every_file() -> None:
    """A root crate (path '.') has every visible file, minus the top mzcompose files."""
    view = static_view("Cargo.toml", "src/main.rs", "mzcompose.py", "sub/mzcompose.py")
    assert crate_files(view, crate(".")) == ["Cargo.toml", "src/main.rs", "sub/mzcompose.py"]


WORKSPACE = Workspace(
    Path("/nonexistent"),
    {
        "app": crate("app", bins=("app", "tool"), deps=("lib",), dev=("kit",)),
        "lib": crate("lib", deps=("core",)),
        "core": crate("core"),
        "kit": crate("kit", deps=("core", "kitdep"), dev=("far",)),
        "kitdep": crate("kitdep"),
        "far": crate("far"),
        "ex": crate("ex", examples=("demo",), dev=("kit",)),
        "other": crate("other", bins=("other",)),
    },
)


@pytest.mark.parametrize(
    ("pre_image", "crates"),
    [
        pytest.param(CargoBuild(bins=("app",)), ["app", "core", "lib"], id="bin-no-dev-deps"),
        pytest.param(
            CargoBuild(bins=("app", "tool")), ["app", "core", "lib"], id="two-bins-same-crate"
        ),
        pytest.param(
            CargoBuild(bins=("app", "other")),
            ["app", "core", "lib", "other"],
            id="two-crates",
        ),
        pytest.param(
            CargoBuild(bins=(), examples=("demo",)),
            ["core", "ex", "kit", "kitdep"],
            id="example-adds-dev-deps-one-level",
        ),
        pytest.param(
            CargoBuild(bins=("other",), examples=("demo",)),
            ["core", "ex", "kit", "kitdep", "other"],
            id="bins-and-examples",
        ),
    ],
)
def test_cargo_crates(pre_image: CargoBuild, crates: list[str]) -> None:
    """A pre-image compiles its bins' closures and its examples' closures with dev-deps."""
    assert sorted(c.path for c in cargo_crates(pre_image, WORKSPACE, "m")) == crates


CARGO_VIEW = static_view(
    "img/Dockerfile",
    "img/mzbuild.yml",
    "Cargo.toml",
    "Cargo.lock",
    "ci/builder/stamp",
    "app/Cargo.toml",
    "app/mzcompose.py",
    "lib/lib.rs",
    "core/lib.rs",
    "kit/lib.rs",
    "kitdep/lib.rs",
    "far/lib.rs",
    "ex/examples/demo.rs",
    "other/main.rs",
    "unrelated/file",
)


@pytest.mark.parametrize(
    ("pre_images", "expected"),
    [
        pytest.param((), ["img/Dockerfile", "img/mzbuild.yml"], id="context-only"),
        pytest.param(
            (CargoBuild(bins=("app",)),),
            [
                "Cargo.lock",
                "Cargo.toml",
                "app/Cargo.toml",
                "ci/builder/stamp",
                "core/lib.rs",
                "img/Dockerfile",
                "img/mzbuild.yml",
                "lib/lib.rs",
            ],
            id="cargo-bin",
        ),
        pytest.param(
            (CargoBuild(bins=(), examples=("demo",)), CargoBuild(bins=("app",))),
            [
                "Cargo.lock",
                "Cargo.toml",
                "app/Cargo.toml",
                "ci/builder/stamp",
                "core/lib.rs",
                "ex/examples/demo.rs",
                "img/Dockerfile",
                "img/mzbuild.yml",
                "kit/lib.rs",
                "kitdep/lib.rs",
                "lib/lib.rs",
            ],
            id="two-cargo-pre-images-union",
        ),
        pytest.param(
            (
                Copy(source="core", destination="c"),
                Copy(source="", destination="x", matching="img"),
            ),
            ["core/lib.rs", "img/Dockerfile", "img/mzbuild.yml"],
            id="copies-overlapping-the-context",
        ),
    ],
)
def test_image_inputs_are_sorted_and_distinct(
    pre_images: tuple[PreImage, ...], expected: list[str]
) -> None:
    """Context, shared cargo files, crate files and copied files: one sorted, distinct tuple."""
    found = image_inputs(CARGO_VIEW, "img", [], pre_images, lambda: WORKSPACE, "img/mzbuild.yml")
    assert found == tuple(expected)


def test_workspace_is_read_only_for_cargo_pre_images() -> None:
    """An image without cargo-build never asks for the Cargo workspace."""
    copy = Copy(source="core", destination="c")
    found = image_inputs(CARGO_VIEW, "img", [], [copy], no_workspace, "img/mzbuild.yml")
    assert found == ("core/lib.rs", "img/Dockerfile", "img/mzbuild.yml")


def test_unknown_bin_names_the_manifest() -> None:
    """A bin no crate builds is a CargoError that names the image's manifest."""
    with pytest.raises(CargoError, match=r"^img/mzbuild\.yml: no workspace crate has a binary"):
        image_inputs(
            CARGO_VIEW,
            "img",
            [],
            [CargoBuild(bins=("nope",))],
            lambda: WORKSPACE,
            "img/mzbuild.yml",
        )


CARGO = {
    "a/mzbuild.yml": "name: a\npre-image:\n  - type: cargo-build\n    bin: app\n",
    "a/Dockerfile": "FROM scratch\n",
    "Cargo.toml": '[workspace]\nmembers = ["app", "lib", "kit"]\n',
    "Cargo.lock": "",
    "ci/builder/stamp": "",
    "app/Cargo.toml": PKG.format("app")
    + '[dependencies]\nl = { path = "../lib", package = "lib" }\n'
    + '[dev-dependencies]\nkit = { path = "../kit" }\n',
    "app/src/main.rs": "",
    "app/mzcompose.py": "",
    "app/mzcompose": "",
    "app/sub/mzcompose.py": "a deeper mzcompose.py is an input",
    "lib/Cargo.toml": PKG.format("lib"),
    "lib/src/lib.rs": "",
    "kit/Cargo.toml": PKG.format("kit"),
    "unrelated/file": "",
}


def test_cargo_inputs(make_repo: MakeRepo) -> None:
    """Builder files, root Cargo files and the crates' files, minus top mzcompose files."""
    assert inputs(make_repo, CARGO) == (
        "Cargo.lock",
        "Cargo.toml",
        "a/Dockerfile",
        "a/mzbuild.yml",
        "app/Cargo.toml",
        "app/src/main.rs",
        "app/sub/mzcompose.py",
        "ci/builder/stamp",
        "lib/Cargo.toml",
        "lib/src/lib.rs",
    )


@pytest.mark.parametrize(
    ("extra", "ignore", "included"),
    [
        pytest.param({".cargo/config": ""}, "", True, id="config"),
        pytest.param({".cargo/config.toml": ""}, "", False, id="config-toml-is-not"),
        pytest.param({".cargo/config": ""}, ".cargo/\n", False, id="config-ignored-is-not"),
        pytest.param({}, "", False, id="absent"),
    ],
)
def test_cargo_config_only_at_that_exact_path(
    make_repo: MakeRepo, extra: dict[str, str], ignore: str, included: bool
) -> None:
    """`.cargo/config` is a shared cargo input when it exists and is visible; nothing else is."""
    found = inputs(make_repo, {**CARGO, ".gitignore": ignore, **extra})
    assert (".cargo/config" in found) is included
    assert ".cargo/config.toml" not in found


def test_cargo_config_deleted_from_the_tree_is_not_an_input(make_repo: MakeRepo) -> None:
    """A tracked .cargo/config deleted from the working tree is no input (it does not exist)."""
    root = make_repo({**CARGO, ".cargo/config": ""})
    (root / ".cargo" / "config").unlink()

    async def go() -> tuple[str, ...]:
        return (await Repository.open(root, BuildOptions(arch=Arch.X86_64))).inputs("a")

    assert ".cargo/config" not in anyio.run(go)


# --- copy ----------------------------------------------------------------------------------

COPY = {
    "a/Dockerfile": "FROM scratch\n",
    "misc/www/index.html": "",
    "misc/www/js/app.js": "",
    "misc/www/app.js": "",
    "misc/www-other/x.js": "",
}


@pytest.mark.parametrize(
    ("copy", "expected"),
    [
        pytest.param(
            "source: misc/www\n    destination: www\n",
            ["misc/www/app.js", "misc/www/index.html", "misc/www/js/app.js"],
            id="default-matches-all",
        ),
        pytest.param(
            "source: misc/www/\n    destination: www\n",
            ["misc/www/app.js", "misc/www/index.html", "misc/www/js/app.js"],
            id="source-trailing-slash",
        ),
        pytest.param(
            "source: misc/www\n    destination: www\n    matching: '*.js'\n",
            ["misc/www/app.js", "misc/www/js/app.js"],
            id="star-crosses-slashes-like-git",
        ),
        pytest.param(
            "source: misc/www\n    destination: www\n    matching: js\n",
            ["misc/www/js/app.js"],
            id="literal-directory",
        ),
        pytest.param(
            "source: misc\n    destination: m\n    matching: 'www/*.html'\n",
            ["misc/www/index.html"],
            id="nested-pattern",
        ),
        pytest.param(
            "source: .\n    destination: m\n    matching: 'misc/www/*.html'\n",
            ["misc/www/index.html"],
            id="source-is-the-root",
        ),
    ],
)
def test_copy_inputs_are_repository_relative(
    make_repo: MakeRepo, copy: str, expected: list[str]
) -> None:
    """A copy's inputs are the matching files under its source, as repository paths."""
    manifest = f"name: a\npre-image:\n  - type: copy\n    {copy}"
    found = inputs(make_repo, {**COPY, "a/mzbuild.yml": manifest})
    assert [f for f in found if f.startswith("misc/")] == expected


SOURCE = "misc/www"
WWW = {
    "misc/www/index.html": "",
    "misc/www/app.js": "",
    "misc/www/a b.txt": "",
    "misc/www/jsx": "",
    "misc/www/js/app.js": "",
    "misc/www/js/deep/z.js": "",
    "misc/www/ignored.log": "",
    "misc/www/untracked.js": "",
    "misc/www/deleted.js": "",
    "misc/www-other/x.js": "",
    "misc/top.js": "",
}


@pytest.fixture(scope="module")
def www(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GitView]:
    """A repository with tracked, untracked, ignored and deleted files under misc/www."""
    root = tmp_path_factory.mktemp("www")
    write_tree(root, {**WWW, ".gitignore": "*.log\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A", "--", ".", ":!misc/www/untracked.js")
    git(root, "commit", "-q", "-m", "init")
    (root / "misc/www/deleted.js").unlink()
    return root, anyio.run(load_git_view, root)


def git_pathspec(root: Path, source: str, pattern: str) -> list[str]:
    """What the original gets: its two git calls, run in the source directory."""
    cwd = root / source
    listed = (
        subprocess.run(
            ["git", "diff", "--name-only", "-z", "--relative", EMPTY_TREE, "--", pattern],
            cwd=cwd,
            capture_output=True,
            check=True,
        ).stdout
        + subprocess.run(
            ["git", "ls-files", "--others", "--exclude-standard", "-z", "--", pattern],
            cwd=cwd,
            capture_output=True,
            check=True,
        ).stdout
    )
    return sorted({f"{source}/{p}" for p in listed.decode().split("\0") if p})


PATTERNS = [
    "*",
    "*.js",
    "*s",
    "js",
    "js/",
    "js/deep",
    "js/*.js",
    "*/*.js",
    "**/*.js",
    "j*",
    "j?",
    "?s",
    "jsx",
    "index.html",
    "index",
    "a*",
    "[aj]*",
    "[!a]*",
    "*.log",
    "untracked.js",
    "deleted.js",
    "JS",
]


@pytest.mark.parametrize(
    "pattern",
    [
        *(pytest.param(p, id=p) for p in PATTERNS),
        pytest.param("[^a]*", id="[^a]*"),
        pytest.param("./js", id="./js"),
    ],
)
def test_copy_matching_is_a_git_pathspec(www: tuple[Path, GitView], pattern: str) -> None:
    """`matching` selects exactly what the original's git pathspec selects under `source`."""
    root, view = www
    found = copy_files(view, Copy(source=SOURCE, destination="x", matching=pattern))
    assert found == git_pathspec(root, SOURCE, pattern)


def test_copy_default_selects_the_visible_files(www: tuple[Path, GitView]) -> None:
    """`*` copies every visible file under the source: untracked yes, ignored or deleted no."""
    root, view = www
    expected = [
        "misc/www/a b.txt",
        "misc/www/app.js",
        "misc/www/index.html",
        "misc/www/js/app.js",
        "misc/www/js/deep/z.js",
        "misc/www/jsx",
        "misc/www/untracked.js",
    ]
    assert copy_files(view, Copy(source=SOURCE, destination="x")) == expected
    assert git_pathspec(root, SOURCE, "*") == expected
