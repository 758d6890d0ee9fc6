"""Which files are an image's inputs: context, cargo-build and copy pre-images."""

from __future__ import annotations

import anyio
import pytest

from mzbuild_async import Arch, BuildOptions, Repository
from tests.conftest import MakeRepo

PKG = '[package]\nname = "{0}"\nversion = "0.1.0"\n'


def inputs(make_repo: MakeRepo, files: dict[str, str], image: str = "a") -> tuple[str, ...]:
    root = make_repo(files)

    async def go() -> tuple[str, ...]:
        return (await Repository.open(root, BuildOptions(arch=Arch.X86_64))).inputs(image)

    return anyio.run(go)


CARGO = {
    "a/mzbuild.yml": "name: a\npre-image:\n  - type: cargo-build\n    bin: app\n",
    "a/Dockerfile": "FROM scratch\n",
    "Cargo.toml": '[workspace]\nmembers = ["app"]\n',
    "Cargo.lock": "",
    "ci/builder/stamp": "",
    "app/Cargo.toml": PKG.format("app"),
    "app/src/main.rs": "",
    "app/mzcompose.py": "",
    "app/mzcompose": "",
    "app/sub/mzcompose.py": "a deeper mzcompose.py is an input",
    "unrelated/file": "",
}


def test_cargo_inputs(make_repo: MakeRepo) -> None:
    """Builder files, root Cargo files and the crate's files, minus its top mzcompose files."""
    assert inputs(make_repo, CARGO) == (
        "Cargo.lock",
        "Cargo.toml",
        "a/Dockerfile",
        "a/mzbuild.yml",
        "app/Cargo.toml",
        "app/src/main.rs",
        "app/sub/mzcompose.py",
        "ci/builder/stamp",
    )


@pytest.mark.parametrize(
    ("extra", "included"),
    [
        pytest.param({".cargo/config": ""}, True, id="config"),
        pytest.param({".cargo/config.toml": ""}, False, id="config-toml-is-not"),
    ],
)
def test_cargo_config_only_at_that_exact_path(
    make_repo: MakeRepo, extra: dict[str, str], included: bool
) -> None:
    """`.cargo/config` is a shared cargo input when it exists; nothing else under .cargo is."""
    found = inputs(make_repo, {**CARGO, **extra})
    assert (".cargo/config" in found) is included
    assert ".cargo/config.toml" not in found


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
    ],
)
def test_copy_inputs_are_repository_relative(
    make_repo: MakeRepo, copy: str, expected: list[str]
) -> None:
    """A copy's inputs are the matching files under its source, as repository paths."""
    manifest = f"name: a\npre-image:\n  - type: copy\n    {copy}"
    found = inputs(make_repo, {**COPY, "a/mzbuild.yml": manifest})
    assert [f for f in found if f.startswith("misc/")] == expected
