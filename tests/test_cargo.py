"""The Cargo workspace: binaries by Cargo's rules, path-dependency closures."""

from __future__ import annotations

import pytest

from mzbuild_async.cargo import Workspace, load_workspace
from mzbuild_async.errors import CargoError
from tests.conftest import MakeRepo


def pkg(name: str, extra: str = "") -> str:
    return f'[package]\nname = "{name}"\nversion = "0.1.0"\n{extra}'


def workspace(make_repo: MakeRepo, files: dict[str, str], members: str) -> Workspace:
    root = make_repo({"Cargo.toml": f"[workspace]\nmembers = [{members}]\n", **files})
    return load_workspace(root)


def test_binaries_by_every_discovery_rule(make_repo: MakeRepo) -> None:
    """[[bin]], src/main.rs (the package name), src/bin/*.rs and src/bin/*/main.rs."""
    ws = workspace(
        make_repo,
        {
            "c/Cargo.toml": pkg("c", '[[bin]]\nname = "explicit"\npath = "src/x.rs"\n'),
            "c/src/main.rs": "",
            "c/src/bin/one.rs": "",
            "c/src/bin/two/main.rs": "",
            "c/src/bin/notes.txt": "",
            "c/examples/ex.rs": "",
            "c/examples/big/main.rs": "",
        },
        '"c"',
    )
    crate = ws.crates["c"]
    assert sorted(crate.bins) == ["c", "explicit", "one", "two"]
    assert sorted(crate.examples) == ["big", "ex"]


def test_autobins_false(make_repo: MakeRepo) -> None:
    """With autobins/autoexamples = false only the explicit targets count."""
    ws = workspace(
        make_repo,
        {
            "c/Cargo.toml": pkg("c", "autobins = false\nautoexamples = false\n")
            + '[[bin]]\nname = "only"\n',
            "c/src/main.rs": "",
            "c/src/bin/skip.rs": "",
            "c/examples/skip.rs": "",
        },
        '"c"',
    )
    assert ws.crates["c"].bins == ("only",)
    assert ws.crates["c"].examples == ()


def test_closure_follows_normal_and_build_path_deps(make_repo: MakeRepo) -> None:
    """Path deps in [dependencies] and [build-dependencies], renamed or not, transitively."""
    ws = workspace(
        make_repo,
        {
            "app/Cargo.toml": pkg(
                "app",
                '[dependencies]\nrenamed = { path = "../lib", package = "lib" }\n'
                'serde = "1"\n[build-dependencies]\ngen = { path = "../gen" }\n'
                '[dev-dependencies]\ntestkit = { path = "../testkit" }\n',
            ),
            "app/src/main.rs": "",
            "lib/Cargo.toml": pkg("lib", '[dependencies]\ncore = { path = "../core" }\n'),
            "gen/Cargo.toml": pkg("gen"),
            "core/Cargo.toml": pkg("core"),
            "testkit/Cargo.toml": pkg("testkit"),
        },
        '"app", "lib", "gen", "core", "testkit"',
    )
    app = ws.crate_for_bin("app", "m")
    assert [c.path for c in ws.closure(app)] == ["app", "core", "gen", "lib"]


def test_examples_add_dev_dependencies_one_level(make_repo: MakeRepo) -> None:
    """An example adds its crate's dev-dependencies and their normal closure, not their dev-deps."""
    ws = workspace(
        make_repo,
        {
            "t/Cargo.toml": pkg("t", '[dev-dependencies]\nkit = { path = "../kit" }\n'),
            "t/examples/demo.rs": "",
            "kit/Cargo.toml": pkg(
                "kit",
                '[dependencies]\nbase = { path = "../base" }\n'
                '[dev-dependencies]\nfar = { path = "../far" }\n',
            ),
            "base/Cargo.toml": pkg("base"),
            "far/Cargo.toml": pkg("far"),
        },
        '"t", "kit", "base", "far"',
    )
    t = ws.crate_for_example("demo", "m")
    assert [c.path for c in ws.closure(t, dev=True)] == ["base", "kit", "t"]
    assert [c.path for c in ws.closure(t)] == ["t"]


def test_member_globs_and_exclude(make_repo: MakeRepo) -> None:
    """`members = ["src/*"]` finds crates; `exclude` drops one."""
    root = make_repo(
        {
            "Cargo.toml": '[workspace]\nmembers = ["src/*"]\nexclude = ["src/skip"]\n',
            "src/a/Cargo.toml": pkg("a"),
            "src/b/Cargo.toml": pkg("b"),
            "src/skip/Cargo.toml": pkg("skip"),
            "src/notacrate/readme": "",
        }
    )
    assert sorted(load_workspace(root).crates) == ["src/a", "src/b"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({"Cargo.toml": "[workspace\n"}, "Cargo.toml: malformed TOML", id="toml"),
        pytest.param(
            {"Cargo.toml": '[workspace]\nmembers = ["gone"]\n'},
            "gone/Cargo.toml: no such file",
            id="missing-member",
        ),
        pytest.param({"Cargo.toml": "[package]\n"}, "Cargo.toml: no [workspace] table", id="no-ws"),
        pytest.param(
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": pkg("a", '[dependencies]\nx = { path = "../../x" }\n'),
            },
            "a/Cargo.toml: path dependency '../x' lies outside the repository",
            id="outside",
        ),
    ],
)
def test_errors_name_the_file(make_repo: MakeRepo, files: dict[str, str], message: str) -> None:
    """Workspace problems are CargoErrors naming the Cargo.toml at fault."""
    root = make_repo(files)

    def load_and_resolve() -> None:
        ws = load_workspace(root)
        for crate in ws.crates.values():
            ws.closure(crate)

    with pytest.raises(CargoError) as info:
        load_and_resolve()
    assert str(info.value).startswith(message)
