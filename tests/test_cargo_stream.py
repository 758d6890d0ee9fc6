"""Cargo images start as their own binaries land, with real cargo and a real engine.

A workspace with a fast binary and a slow one: the slow crate's build
script waits until the test lets it go (a file appears), and the test lets
it go only once the fast image is built and pushed. So the fast image's
Docker build provably ends before cargo does, in one cargo invocation.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import git, write_tree
from tests.support.demo import Cli
from tests.support.engine import _fail_or_skip
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]

BUILD_RS = """
use std::{env, path::Path, thread, time::{Duration, Instant}};
fn main() {
    println!("cargo:rerun-if-env-changed=MZB_GATE");
    let gate = env::var("MZB_GATE").unwrap_or_default();
    let start = Instant::now();
    let limit = Duration::from_secs(240);
    while !gate.is_empty() && !Path::new(&gate).exists() && start.elapsed() < limit {
        thread::sleep(Duration::from_millis(50));
    }
    let out = env::var("OUT_DIR").unwrap();
    std::fs::write(Path::new(&out).join("note.txt"), "from the build script\\n").unwrap();
}
"""


def _workspace(root: Path, *, broken: bool) -> Path:
    """Two crates, two images; ``broken``: the slow crate does not compile."""
    slow_main = (
        'fn main() { println!("slow {}", undefined_name); }\n'
        if broken
        else ('fn main() { println!("slow"); }\n')
    )
    marker = uuid.uuid4().hex[:8]
    package = '[package]\nname = "{}"\nversion = "0.1.0"\nedition = "2021"\n'
    static = '[target.x86_64-unknown-linux-gnu]\nrustflags = ["-C", "target-feature=+crt-static"]\n'
    write_tree(
        root,
        {
            "Cargo.toml": '[workspace]\nmembers = ["src/fast", "src/slow"]\nresolver = "2"\n',
            ".cargo/config.toml": static,
            ".gitignore": "/target\n",
            "src/fast/Cargo.toml": package.format("fast"),
            "src/fast/src/main.rs": f'fn main() {{ println!("fast {marker}"); }}\n',
            "src/slow/Cargo.toml": package.format("slow"),
            "src/slow/build.rs": BUILD_RS,
            "src/slow/src/main.rs": slow_main,
            "images/fast/mzbuild.yml": (
                "name: fast-img\npre-image:\n  - type: cargo-build\n    bin: fast\n"
            ),
            "images/fast/Dockerfile": ('FROM scratch\nCOPY fast /fast\nENTRYPOINT ["/fast"]\n'),
            "images/slow/mzbuild.yml": (
                "name: slow-img\npre-image:\n  - type: cargo-build\n    bin: slow\n"
                "    extract:\n      slow:\n        note.txt: note.txt\n"
            ),
            "images/slow/Dockerfile": (
                'FROM scratch\nCOPY slow /slow\nCOPY note.txt /note.txt\nENTRYPOINT ["/slow"]\n'
            ),
        },
    )
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "two crates")
    return root


def _tags(spec: str) -> list[str]:
    host, _, rest = spec.partition("/")
    response = httpx.get(f"http://{host}/v2/{rest.rsplit(':', 1)[0]}/tags/list", timeout=10)
    if response.status_code == 404:
        return []
    return list(response.json().get("tags") or [])


def _run(
    tmp_path: Path, registries: dict[str, Registry], *, broken: bool
) -> tuple[int, str, str, dict[str, Any]]:
    """``ensure --all`` with the gate opened once fast-img is pushed; its outcome."""
    if subprocess.run(["cargo", "--version"], capture_output=True, check=False).returncode:
        _fail_or_skip("cargo is not installed")
    repo = _workspace(tmp_path / "repo", broken=broken)
    gate = tmp_path / "gate"
    cli = Cli(
        repo, f"{registries['none'].host}/stream", tmp_path / "cache", env={"MZB_GATE": str(gate)}
    )
    report = tmp_path / "report.json"
    proc = cli.start("ensure", "--all", "--json", "--report", str(report), "--jobs", "2")
    assert proc.stderr is not None
    err: list[str] = []
    deadline = time.monotonic() + 300
    for line in proc.stderr:
        err.append(line)
        if "fast-img: push done" in line:
            gate.touch()  # the slow crate's build script may finish now
            break
        assert time.monotonic() < deadline, "".join(err)
    gate.touch()
    out, rest = proc.communicate(timeout=300)
    return proc.returncode, out, "".join(err) + rest, json.loads(report.read_text())


def test_the_fast_image_is_built_before_cargo_ends(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    status, out, err, report = _run(tmp_path, registries, broken=False)
    assert status == 0, err
    images = json.loads(out)["images"]
    assert {n: i["action"] for n, i in images.items()} == {"fast-img": "built", "slow-img": "built"}
    steps = report["steps"]
    cargo = next(
        s
        for s in steps
        if s["track"] == "cargo" and s["phase"] == "cargo" and s["status"] == "done"
    )
    fast_build = next(s for s in steps if s["track"] == "fast-img" and s["phase"] == "build")
    assert fast_build["end"] < cargo["end"], (fast_build, cargo)
    # The cargo track shows when each image's artifacts landed; the report keeps it.
    landed = {s["detail"]: s["start"] for s in steps if s["status"] == "landed"}
    assert landed["fast-img"] < landed["slow-img"] <= cargo["end"]
    # The image's record says the moment its track shows (one clock: exactly).
    assert report["images"]["fast-img"]["artifacts_landed"] == round(landed["fast-img"], 3)
    # Both images run and print their line; the build script's output was extracted.
    for name, expected in (("fast-img", "fast"), ("slow-img", "slow")):
        result = subprocess.run(
            ["docker", "run", "--rm", images[name]["spec"]],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        assert result.stdout.split()[0] == expected


def test_a_cargo_error_fails_only_the_images_whose_artifacts_never_came(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    status, out, err, _report = _run(tmp_path, registries, broken=True)
    assert status == 1, err
    images = json.loads(out)["images"]
    assert images["fast-img"]["action"] == "built"
    assert images["fast-img"]["pushed"] is True
    assert images["fast-img"]["spec"].rsplit(":", 1)[1] in _tags(images["fast-img"]["spec"])
    assert images["slow-img"]["action"] == "failed"
    assert "crate slow" in images["slow-img"]["error"]
    assert "undefined_name" in images["slow-img"]["error"]
    assert images["slow-img"]["spec"].rsplit(":", 1)[1] not in _tags(images["slow-img"]["spec"])
    assert "Traceback" not in err


def test_sigterm_after_an_image_landed_stops_cargo_and_pushes_nothing_unfinished(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """SIGTERM while cargo still runs (the slow build script waits forever) and the
    fast image was released: exit 143, cargo and its build script gone, the slow
    image not pushed, nothing staged left behind."""
    if subprocess.run(["cargo", "--version"], capture_output=True, check=False).returncode:
        _fail_or_skip("cargo is not installed")
    repo = _workspace(tmp_path / "repo", broken=False)
    never = tmp_path / "never"  # the gate stays shut
    cli = Cli(
        repo, f"{registries['none'].host}/term", tmp_path / "cache", env={"MZB_GATE": str(never)}
    )
    staged_before = set(cli.tmp.glob("mzbuild-*"))
    proc = subprocess.Popen(
        cli.args("ensure", "--all", "--json"),
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 300
    for line in proc.stderr:
        if "cargo landed: fast-img" in line:
            break
        assert time.monotonic() < deadline
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    left = subprocess.run(
        ["pgrep", "-f", str(repo)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert left == [], left  # cargo, rustc and the build script are gone
    host = registries["none"].host
    assert _tags(f"{host}/term/slow-img:x") == []
    assert set(cli.tmp.glob("mzbuild-*")) <= staged_before
