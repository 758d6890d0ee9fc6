"""The Cargo workspace: binaries by Cargo's rules, path-dependency closures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mzbuild_async.errors import CargoError
from mzbuild_async.source.cargo import Crate, Workspace, load_crate, load_workspace
from tests.conftest import write_tree


def pkg(name: str, extra: str = "") -> str:
    return f'[package]\nname = "{name}"\nversion = "0.1.0"\n{extra}'


def workspace(tmp_path: Path, files: dict[str, str], members: str) -> Workspace:
    """A workspace on disk (Cargo needs no git) with ``members`` as TOML list items."""
    write_tree(tmp_path, {"Cargo.toml": f"[workspace]\nmembers = [{members}]\n", **files})
    return load_workspace(tmp_path)


def paths(crates: tuple[Crate, ...]) -> list[str]:
    return [c.path for c in crates]


@pytest.mark.parametrize(
    ("extra", "files", "bins"),
    [
        pytest.param('[[bin]]\nname = "explicit"\n', {}, ["explicit"], id="bin-table"),
        pytest.param(
            '[[bin]]\nname = "one"\n[[bin]]\nname = "two"\npath = "x.rs"\n',
            {},
            ["one", "two"],
            id="two-bin-tables",
        ),
        pytest.param("", {"src/main.rs": ""}, ["c"], id="main-rs-is-the-package-name"),
        pytest.param("", {"src/lib.rs": ""}, [], id="library-only"),
        pytest.param("", {"src/bin/tool.rs": ""}, ["tool"], id="bin-dir-file"),
        pytest.param("", {"src/bin/big/main.rs": ""}, ["big"], id="bin-dir-main"),
        pytest.param("", {"src/bin/big/other.rs": ""}, [], id="bin-dir-without-main"),
        pytest.param("", {"src/bin/notes.txt": ""}, [], id="not-rust"),
        pytest.param("", {"src/bin/deep/er/main.rs": ""}, [], id="only-one-level"),
        pytest.param(
            "autobins = false\n",
            {"src/main.rs": "", "src/bin/a.rs": "", "src/bin/b/main.rs": ""},
            [],
            id="autobins-false",
        ),
        pytest.param(
            'autobins = false\n[[bin]]\nname = "only"\n',
            {"src/main.rs": "", "src/bin/a.rs": ""},
            ["only"],
            id="autobins-false-keeps-bin-tables",
        ),
        pytest.param(
            "autobins = true\n", {"src/main.rs": ""}, ["c"], id="autobins-true-is-the-default"
        ),
    ],
)
def test_binaries(tmp_path: Path, extra: str, files: dict[str, str], bins: list[str]) -> None:
    """[[bin]] names, src/main.rs (package name), src/bin/*.rs, src/bin/*/main.rs."""
    write_tree(
        tmp_path, {"c/Cargo.toml": pkg("c", extra), **{f"c/{k}": v for k, v in files.items()}}
    )
    assert sorted(load_crate(tmp_path, "c").bins) == bins


@pytest.mark.parametrize(
    ("extra", "files", "examples"),
    [
        pytest.param('[[example]]\nname = "ex"\n', {}, ["ex"], id="example-table"),
        pytest.param("", {"examples/demo.rs": ""}, ["demo"], id="examples-file"),
        pytest.param("", {"examples/big/main.rs": ""}, ["big"], id="examples-dir-main"),
        pytest.param("", {"examples/big/helper.rs": ""}, [], id="examples-dir-without-main"),
        pytest.param("", {"examples/README.md": ""}, [], id="not-rust"),
        pytest.param(
            "autoexamples = false\n",
            {"examples/demo.rs": "", "examples/big/main.rs": ""},
            [],
            id="autoexamples-false",
        ),
        pytest.param(
            'autoexamples = false\n[[example]]\nname = "kept"\n',
            {"examples/demo.rs": ""},
            ["kept"],
            id="autoexamples-false-keeps-example-tables",
        ),
        pytest.param(
            "autobins = false\n", {"examples/demo.rs": ""}, ["demo"], id="autobins-only-bins"
        ),
    ],
)
def test_examples(tmp_path: Path, extra: str, files: dict[str, str], examples: list[str]) -> None:
    """[[example]] names, examples/*.rs and examples/*/main.rs, unless autoexamples = false."""
    write_tree(
        tmp_path, {"c/Cargo.toml": pkg("c", extra), **{f"c/{k}": v for k, v in files.items()}}
    )
    assert sorted(load_crate(tmp_path, "c").examples) == examples


def test_binaries_by_every_discovery_rule(tmp_path: Path) -> None:
    """All the rules at once; examples are not binaries and binaries are not examples."""
    ws = workspace(
        tmp_path,
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
    assert (crate.name, crate.path) == ("c", "c")
    assert sorted(crate.bins) == ["c", "explicit", "one", "two"]
    assert sorted(crate.examples) == ["big", "ex"]


@pytest.mark.parametrize(
    ("dependencies", "path_deps"),
    [
        pytest.param('[dependencies]\nlib = { path = "../lib" }\n', ["lib"], id="normal"),
        pytest.param('[build-dependencies]\ngen = { path = "../gen" }\n', ["gen"], id="build"),
        pytest.param(
            '[dependencies]\nrenamed = { path = "../lib", package = "lib" }\n',
            ["lib"],
            id="renamed",
        ),
        pytest.param('[dependencies]\nserde = "1"\n', [], id="version-only"),
        pytest.param('[dependencies]\nserde = { version = "1" }\n', [], id="version-table"),
        pytest.param(
            '[dependencies]\nx = { git = "https://example.com/x" }\n', [], id="git-dependency"
        ),
        pytest.param(
            '[dependencies]\nlib = { path = "../lib", optional = true }\n', ["lib"], id="optional"
        ),
        pytest.param('[dependencies]\nlib = { path = "../lib/" }\n', ["lib"], id="trailing-slash"),
        pytest.param('[dependencies]\nlib = { path = "../c/../lib" }\n', ["lib"], id="normalized"),
        pytest.param(
            '[dependencies]\ninner = { path = "inner" }\n', ["c/inner"], id="nested-crate"
        ),
        pytest.param('[dependencies.lib]\npath = "../lib"\n', ["lib"], id="dotted-table"),
        # The spec follows [dependencies] and [build-dependencies] only, as the
        # original does: target-specific tables and workspace inheritance are not read.
        pytest.param(
            "[target.'cfg(unix)'.dependencies]\nlib = { path = \"../lib\" }\n",
            [],
            id="target-table-not-read",
        ),
        pytest.param(
            "[dependencies]\nlib = { workspace = true }\n", [], id="workspace-inherited-not-read"
        ),
    ],
)
def test_path_dependencies(tmp_path: Path, dependencies: str, path_deps: list[str]) -> None:
    """Entries with a `path` become repository-relative directories; others are ignored."""
    write_tree(tmp_path, {"c/Cargo.toml": pkg("c", dependencies)})
    crate = load_crate(tmp_path, "c")
    assert list(crate.path_deps) == path_deps
    assert crate.dev_path_deps == ()


def test_dev_dependencies_are_kept_apart(tmp_path: Path) -> None:
    """[dev-dependencies] path entries are recorded separately from the normal ones."""
    write_tree(
        tmp_path,
        {
            "c/Cargo.toml": pkg(
                "c",
                '[dependencies]\na = { path = "../a" }\n'
                '[dev-dependencies]\nkit = { path = "../kit" }\n'
                'renamed = { path = "../t", package = "t" }\n'
                'criterion = "0.5"\n',
            )
        },
    )
    crate = load_crate(tmp_path, "c")
    assert crate.path_deps == ("a",)
    assert crate.dev_path_deps == ("kit", "t")


def test_features_are_listed(tmp_path: Path) -> None:
    """The crate's [features] names, sorted."""
    write_tree(tmp_path, {"c/Cargo.toml": pkg("c", '[features]\nz = []\ndefault = ["z"]\n')})
    assert load_crate(tmp_path, "c").features == ("default", "z")


def test_closure_follows_normal_and_build_path_deps(tmp_path: Path) -> None:
    """Path deps in [dependencies] and [build-dependencies], renamed or not, transitively."""
    ws = workspace(
        tmp_path,
        {
            "app/Cargo.toml": pkg(
                "app",
                '[dependencies]\nrenamed = { path = "../lib", package = "lib" }\n'
                'serde = "1"\n[build-dependencies]\ngen = { path = "../gen" }\n'
                '[dev-dependencies]\ntestkit = { path = "../testkit" }\n',
            ),
            "app/src/main.rs": "",
            "lib/Cargo.toml": pkg("lib", '[dependencies]\ncore = { path = "../core" }\n'),
            "gen/Cargo.toml": pkg(
                "gen", '[build-dependencies]\nbuildkit = { path = "../buildkit" }\n'
            ),
            "buildkit/Cargo.toml": pkg("buildkit"),
            "core/Cargo.toml": pkg("core"),
            "testkit/Cargo.toml": pkg("testkit"),
            "unrelated/Cargo.toml": pkg("unrelated"),
        },
        '"app", "lib", "gen", "buildkit", "core", "testkit", "unrelated"',
    )
    app = ws.crate_for_bin("app", "m")
    assert paths(ws.closure(app)) == ["app", "buildkit", "core", "gen", "lib"]


def test_closure_of_a_diamond_lists_each_crate_once(tmp_path: Path) -> None:
    """Crates reached along several paths appear once, sorted by directory."""
    ws = workspace(
        tmp_path,
        {
            "top/Cargo.toml": pkg(
                "top", '[dependencies]\nl = { path = "../l" }\nr = { path = "../r" }\n'
            ),
            "l/Cargo.toml": pkg("l", '[dependencies]\nbase = { path = "../base" }\n'),
            "r/Cargo.toml": pkg("r", '[build-dependencies]\nbase = { path = "../base" }\n'),
            "base/Cargo.toml": pkg("base"),
        },
        '"top", "l", "r", "base"',
    )
    assert paths(ws.closure(ws.crates["top"])) == ["base", "l", "r", "top"]


def test_examples_add_dev_dependencies_one_level(tmp_path: Path) -> None:
    """An example adds its crate's dev-dependencies and their normal closure, not their dev-deps."""
    ws = workspace(
        tmp_path,
        {
            "t/Cargo.toml": pkg(
                "t",
                '[dependencies]\nrt = { path = "../rt" }\n'
                '[dev-dependencies]\nkit = { path = "../kit" }\n',
            ),
            "t/examples/demo.rs": "",
            "rt/Cargo.toml": pkg("rt", '[dev-dependencies]\nrtdev = { path = "../rtdev" }\n'),
            "rtdev/Cargo.toml": pkg("rtdev"),
            "kit/Cargo.toml": pkg(
                "kit",
                '[dependencies]\nbase = { path = "../base" }\n'
                '[build-dependencies]\nbgen = { path = "../bgen" }\n'
                '[dev-dependencies]\nfar = { path = "../far" }\n',
            ),
            "base/Cargo.toml": pkg("base"),
            "bgen/Cargo.toml": pkg("bgen"),
            "far/Cargo.toml": pkg("far"),
        },
        '"t", "rt", "rtdev", "kit", "base", "bgen", "far"',
    )
    t = ws.crate_for_example("demo", "m")
    assert paths(ws.closure(t, dev=True)) == ["base", "bgen", "kit", "rt", "t"]
    assert paths(ws.closure(t)) == ["rt", "t"]


def test_dev_dependency_cycle_terminates(tmp_path: Path) -> None:
    """A dev-dependency back onto the crate (common for test kits) is no infinite loop."""
    ws = workspace(
        tmp_path,
        {
            "a/Cargo.toml": pkg("a", '[dev-dependencies]\nkit = { path = "../kit" }\n'),
            "a/examples/e.rs": "",
            "kit/Cargo.toml": pkg("kit", '[dependencies]\na = { path = "../a" }\n'),
        },
        '"a", "kit"',
    )
    assert paths(ws.closure(ws.crate_for_example("e", "m"), dev=True)) == ["a", "kit"]


def test_path_dependency_outside_the_members_is_read(tmp_path: Path) -> None:
    """A path dependency that is no workspace member still joins the closure."""
    ws = workspace(
        tmp_path,
        {
            "app/Cargo.toml": pkg("app", '[dependencies]\nv = { path = "../vendor/v" }\n'),
            "app/src/main.rs": "",
            "vendor/v/Cargo.toml": pkg("v"),
        },
        '"app"',
    )
    assert paths(ws.closure(ws.crate_for_bin("app", "m"))) == ["app", "vendor/v"]


@pytest.mark.parametrize(
    ("workspace_toml", "members"),
    [
        pytest.param('members = ["src/*"]\n', ["src/a", "src/b", "src/skip"], id="glob"),
        pytest.param(
            'members = ["src/*"]\nexclude = ["src/skip"]\n', ["src/a", "src/b"], id="glob-exclude"
        ),
        pytest.param(
            'members = ["src/*", "tools/t"]\nexclude = ["src/skip/"]\n',
            ["src/a", "src/b", "tools/t"],
            id="glob-and-literal",
        ),
        pytest.param('members = ["src/a/", "./src/b"]\n', ["src/a", "src/b"], id="normalized"),
        pytest.param('members = ["src/?"]\n', ["src/a", "src/b"], id="question-mark"),
        pytest.param("members = []\n", [], id="empty"),
        pytest.param("", [], id="no-members-key"),
    ],
)
def test_members(tmp_path: Path, workspace_toml: str, members: list[str]) -> None:
    """Members are literal paths or globs over directories holding a Cargo.toml, minus exclude."""
    write_tree(
        tmp_path,
        {
            "Cargo.toml": "[workspace]\n" + workspace_toml,
            "src/a/Cargo.toml": pkg("a"),
            "src/b/Cargo.toml": pkg("b"),
            "src/skip/Cargo.toml": pkg("skip"),
            "src/notacrate/readme": "",
            "tools/t/Cargo.toml": pkg("t"),
        },
    )
    assert sorted(load_workspace(tmp_path).crates) == members


def test_bin_names_in_the_same_crate_twice_are_one_owner(tmp_path: Path) -> None:
    """A [[bin]] named like the package plus src/main.rs is still one crate's binary."""
    ws = workspace(
        tmp_path,
        {
            "c/Cargo.toml": pkg("c", '[[bin]]\nname = "c"\npath = "src/main.rs"\n'),
            "c/src/main.rs": "",
        },
        '"c"',
    )
    assert ws.crate_for_bin("c", "m").path == "c"


TWO = {
    "a/Cargo.toml": pkg("a"),
    "a/src/bin/tool.rs": "",
    "a/examples/demo.rs": "",
    "b/Cargo.toml": pkg("b"),
    "b/src/bin/tool/main.rs": "",
    "b/examples/demo.rs": "",
    "c/Cargo.toml": pkg("c"),
    "c/src/main.rs": "",
}


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        pytest.param(
            lambda ws: ws.crate_for_bin("nope", "img/mzbuild.yml"),
            "img/mzbuild.yml: no workspace crate has a binary named 'nope'",
            id="bin-in-no-crate",
        ),
        pytest.param(
            lambda ws: ws.crate_for_bin("tool", "img/mzbuild.yml"),
            "img/mzbuild.yml: binary 'tool' is defined by two crates, a and b; rename one",
            id="bin-in-two-crates",
        ),
        pytest.param(
            lambda ws: ws.crate_for_example("nope", "img/mzbuild.yml"),
            "img/mzbuild.yml: no workspace crate has an example named 'nope'",
            id="example-in-no-crate",
        ),
        pytest.param(
            lambda ws: ws.crate_for_example("demo", "img/mzbuild.yml"),
            "img/mzbuild.yml: example 'demo' is defined by two crates, a and b; rename one",
            id="example-in-two-crates",
        ),
        pytest.param(
            lambda ws: ws.crate_for_example("c", "img/mzbuild.yml"),
            "img/mzbuild.yml: no workspace crate has an example named 'c'",
            id="a-binary-is-not-an-example",
        ),
    ],
)
def test_target_lookup_errors(
    tmp_path: Path, lookup: Callable[[Workspace], Crate], message: str
) -> None:
    """A bin or example must be found in exactly one crate; the error names the manifest."""
    ws = workspace(tmp_path, TWO, '"a", "b", "c"')
    with pytest.raises(CargoError) as info:
        lookup(ws)
    assert str(info.value).startswith(message)


def test_target_lookup_finds_the_owner(tmp_path: Path) -> None:
    """Unique targets resolve to their crate."""
    ws = workspace(tmp_path, TWO, '"a", "b", "c"')
    assert ws.crate_for_bin("c", "m").path == "c"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        pytest.param({"Cargo.toml": "[workspace\n"}, "Cargo.toml: malformed TOML", id="toml"),
        pytest.param({}, "Cargo.toml: no such file", id="no-root-manifest"),
        pytest.param(
            {"Cargo.toml": '[workspace]\nmembers = ["gone"]\n'},
            "gone/Cargo.toml: no such file",
            id="missing-member",
        ),
        pytest.param(
            {"Cargo.toml": '[workspace]\nmembers = ["a"]\n', "a/Cargo.toml": "[package\nname="},
            "a/Cargo.toml: malformed TOML",
            id="member-toml",
        ),
        pytest.param({"Cargo.toml": "[package]\n"}, "Cargo.toml: no [workspace] table", id="no-ws"),
        pytest.param(
            {"Cargo.toml": '[workspace]\nmembers = "a"\n'},
            "Cargo.toml: no [workspace] table with a 'members' list",
            id="members-not-a-list",
        ),
        pytest.param(
            {"Cargo.toml": "[workspace]\nmembers = [1]\n"},
            "Cargo.toml: [workspace] members must be strings",
            id="member-not-a-string",
        ),
        pytest.param(
            {"Cargo.toml": '[workspace]\nmembers = ["a"]\n', "a/Cargo.toml": "[workspace]\n"},
            "a/Cargo.toml: no [package] with a 'name'",
            id="member-without-package",
        ),
        pytest.param(
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": pkg("a", "[[bin]]\npath = 'x.rs'\n"),
            },
            "a/Cargo.toml: every [[bin]] needs a string 'name'",
            id="bin-without-name",
        ),
        pytest.param(
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": "dependencies = 1\n" + pkg("a"),
            },
            "a/Cargo.toml: [dependencies] must be a table",
            id="dependencies-not-a-table",
        ),
        pytest.param(
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": pkg("a", '[dependencies]\nx = { path = "../../x" }\n'),
            },
            "a/Cargo.toml: path dependency '../x' lies outside the repository",
            id="outside",
        ),
        pytest.param(
            {
                "Cargo.toml": '[workspace]\nmembers = ["a"]\n',
                "a/Cargo.toml": pkg("a", '[dependencies]\nx = { path = "../x" }\n'),
            },
            "x/Cargo.toml: no such file",
            id="dependency-missing",
        ),
    ],
)
def test_errors_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    """Workspace problems are CargoErrors naming the Cargo.toml at fault."""
    write_tree(tmp_path, files)

    def load_and_resolve() -> None:
        ws = load_workspace(tmp_path)
        for crate in list(ws.crates.values()):
            ws.closure(crate)

    with pytest.raises(CargoError) as info:
        load_and_resolve()
    assert str(info.value).startswith(message)
