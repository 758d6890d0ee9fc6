"""Odd trees: devices, FIFOs, huge or non-UTF-8 files, byte paths, deep chains, subdirectories.

Each gives one clear line (or the right answer), never a hang or a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mzbuild_async.cli.main import main
from tests.conftest import MakeRepo, git

IMAGE = {"a/mzbuild.yml": "name: a\n", "a/Dockerfile": "FROM scratch\n"}
OTHER = {"b/mzbuild.yml": "name: b\n", "b/Dockerfile": "FROM scratch\n", "b/x": "x\n"}


def cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real command in a process of its own, so that a hang is a failure, not a stuck run."""
    return subprocess.run(
        [sys.executable, "-m", "mzbuild_async", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        errors="backslashreplace",
    )


def make_chain(root: Path, depth: int) -> Path:
    """A git repository (files added) of ``depth`` images, each MZFROM the one before."""
    for i in range(depth):
        d = root / f"i{i}"
        d.mkdir(parents=True)
        (d / "mzbuild.yml").write_text(f"name: i{i}\n")
        (d / "Dockerfile").write_text("FROM scratch\n" if i == 0 else f"MZFROM i{i - 1}\n")
    git(root, "init", "-q")
    git(root, "add", "-A")
    return root


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mzbuild-async: error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("/dev/zero", "a/input: is a character device (through a symlink)", id="zero"),
        pytest.param("/dev/null", "a/input: is a character device (through a symlink)", id="null"),
        pytest.param("fifo", "a/input: is a FIFO (through a symlink)", id="fifo"),
    ],
)
def test_input_that_is_not_a_regular_file_is_refused(
    make_repo: MakeRepo, target: str, message: str
) -> None:
    """An input symlinked to a device or FIFO is named in one line (it used to hang)."""
    root = make_repo(IMAGE)
    if target == "fifo":
        os.mkfifo(root / "a" / "fifo")
    (root / "a" / "input").symlink_to(target)
    line = one_error_line(cli("spec", "a", "--repo", str(root), "--no-digest-cache"))
    assert message in line
    assert "inputs must be regular files" in line


@pytest.mark.parametrize(
    ("name", "target", "message"),
    [
        pytest.param("mzbuild.yml", "/dev/urandom", "a/mzbuild.yml: not a regular file", id="m"),
        pytest.param("Dockerfile", "/dev/zero", "a/Dockerfile: not a regular file", id="d"),
    ],
)
def test_definition_that_is_not_a_regular_file_is_refused(
    make_repo: MakeRepo, name: str, target: str, message: str
) -> None:
    """A manifest or Dockerfile symlinked to a device: one line (it used to grow to GBs)."""
    root = make_repo(IMAGE)
    (root / "a" / name).unlink()
    (root / "a" / name).symlink_to(target)
    assert message in one_error_line(cli("list", "--repo", str(root)))


@pytest.mark.parametrize("name", ["mzbuild.yml", "Dockerfile"])
def test_oversized_definition_is_refused(make_repo: MakeRepo, name: str) -> None:
    """A manifest or Dockerfile over 1 MiB is an error naming it, not a slow parse."""
    root = make_repo(IMAGE)
    (root / "a" / name).write_text("# padding\n" * 200_000)
    line = one_error_line(cli("list", "--repo", str(root)))
    assert f"a/{name}: larger than 1024 KiB" in line


def test_non_utf8_manifest_is_one_line(make_repo: MakeRepo) -> None:
    """YAML's two-line message about a bad byte becomes one line."""
    root = make_repo({**IMAGE, "a/mzbuild.yml": b"name: \xff\xfe\n"})
    line = one_error_line(cli("spec", "--all", "--repo", str(root)))
    assert "a/mzbuild.yml: malformed YAML" in line


def test_non_utf8_file_name(make_repo: MakeRepo, tmp_path: Path) -> None:
    """A byte path git lists: its image gets one line naming it; other images are unaffected.

    With the digest cache on (it used to crash every command with
    UnicodeEncodeError), and without.
    """
    root = make_repo({**IMAGE, **OTHER})
    bad = os.path.join(os.fsencode(root), b"a", b"caf\xe9.txt")
    with open(bad, "wb") as f:
        f.write(b"data\n")
    os.utime(bad, (1_000_000_000, 1_000_000_000))  # old enough for the cache to keep
    cache = str(tmp_path / "cache")
    for flags in ([], ["--no-digest-cache"], []):
        line = one_error_line(cli("spec", "a", "--repo", str(root), "--cache-dir", cache, *flags))
        assert "a/caf\\xe9.txt: file name is not valid UTF-8" in line
        other = cli("spec", "b", "--repo", str(root), "--cache-dir", cache, *flags)
        assert other.returncode == 0, other.stderr
        assert other.stdout.startswith("ghcr.io/materializeinc/materialize/b:mzbuild-")
    listed = cli("list", "--json", "--repo", str(root), "--cache-dir", cache)
    assert set(json.loads(listed.stdout)) == {"a", "b"}


def test_repo_subdirectory_uses_the_top_level(make_repo: MakeRepo) -> None:
    """--repo naming a subdirectory computes the top level's fingerprints, with a note."""
    root = make_repo({**IMAGE, **OTHER})
    top = cli("spec", "--all", "--repo", str(root), "--log-format", "console")
    sub = cli("spec", "--all", "--repo", str(root / "a"), "--log-format", "console")
    assert top.returncode == sub.returncode == 0, sub.stderr
    assert sub.stdout == top.stdout
    assert f"is inside the git repository at {root}; using its top level" in sub.stderr
    assert top.stderr == ""


@pytest.mark.real
def test_ten_thousand_image_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 10,000-image MZFROM chain: spec, describe and plan of its last image work."""
    root = make_chain(tmp_path / "chain", 10_000)
    base = ["--repo", str(root), "--no-digest-cache", "--arch", "x86_64"]
    assert main(["spec", "i9999", "--json", *base]) == 0
    spec = json.loads(capsys.readouterr().out)["i9999"]
    assert main(["describe", "i9999", "--json", *base]) == 0
    described = json.loads(capsys.readouterr().out)["i9999"]
    assert spec.endswith(f":mzbuild-{described['fingerprint']}")
    assert list(described["dependencies"]) == ["i9998"]
    assert main(["plan", "i9999", "--json", "--image-registry", "127.0.0.1:9/x", *base]) in (0, 1)
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["images"]) == 10_000


def test_cycle_is_still_found_without_recursion(make_repo: MakeRepo) -> None:
    """The explicit-stack walk still names a cycle deep in a chain."""
    files: dict[str, str] = {}
    for i in range(50):
        files[f"i{i}/mzbuild.yml"] = f"name: i{i}\n"
        files[f"i{i}/Dockerfile"] = f"MZFROM i{(i + 1) % 50}\n"
    root = make_repo(files)
    line = one_error_line(cli("spec", "i0", "--repo", str(root)))
    assert "dependency cycle: i0 -> i1 -> " in line
    assert line.count(" -> ") == 50


def _read_bytes(pid: int) -> int:
    """Bytes process ``pid`` has read so far (all its threads: ``rchar``)."""
    try:
        text = Path(f"/proc/{pid}/io").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("rchar")), 0)


def test_huge_input_hashing_stops_promptly_on_sigint(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Ctrl-C while a multi-GB input is being hashed ends the run in moments (was 16 s)."""
    root = make_repo(IMAGE)
    big = root / "a" / "big.bin"
    with open(big, "wb") as f:
        f.truncate(8 << 30)  # sparse: reading it is all page-cache work, no disk
    proc = subprocess.Popen(
        [sys.executable, "-m", "mzbuild_async", "spec", "a", "--repo", str(root),
         "--no-digest-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test runner started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
    )  # fmt: skip
    try:
        import time

        # Well into the file: once it has read 256 MiB (under load, start-up alone can
        # take more than a fixed wait would allow).
        given_up = time.monotonic() + 120
        while _read_bytes(proc.pid) < 256 << 20:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < given_up, "it never started reading the big input"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=5)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err


@pytest.mark.real
def test_explain_down_a_long_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A change at the bottom of a 1,500-image chain is explained, as text and as JSON."""
    depth = 1_500
    root = make_chain(tmp_path / "chain", depth)
    git(root, "commit", "-q", "-m", "chain")
    (root / "i0" / "Dockerfile").write_text("FROM scratch\nRUN true\n")
    top = f"i{depth - 1}"
    base = ["explain", top, "--against", "HEAD", "--repo", str(root), "--no-digest-cache"]
    assert main(base) == 0
    text = capsys.readouterr().out
    assert text.count(" changed:") == depth - 1
    assert text.rstrip().endswith("changed   i0/Dockerfile")
    assert main([*base, "--json"]) == 0
    out = capsys.readouterr().out
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(20 * depth)  # only for reading it back here
    try:
        document = json.loads(out)
    finally:
        sys.setrecursionlimit(limit)
    node, levels = document, 0
    while node["dependencies"]:
        [node] = node["dependencies"]
        levels += 1
    assert levels == depth - 1
    assert node["image"] == "i0"
    assert [c["path"] for c in node["changed"]] == ["i0/Dockerfile"]


CARGO_IMAGE = "a/mzbuild.yml"


@pytest.mark.parametrize(
    ("extract", "side", "value"),
    [
        pytest.param("{'gen.txt': '../../escaped'}", "destination", "../../escaped", id="dst-up"),
        pytest.param("{'gen.txt': '/tmp/escaped'}", "destination", "/tmp/escaped", id="dst-abs"),
        pytest.param("{'/etc/passwd': 'passwd'}", "source", "/etc/passwd", id="src-abs"),
        pytest.param(
            "{'x/../../../etc/passwd': 'p'}", "source", "x/../../../etc/passwd", id="src-up"
        ),
    ],
)
def test_extract_paths_stay_inside(
    make_repo: MakeRepo, extract: str, side: str, value: str
) -> None:
    """Both sides of a cargo-build ``extract`` are confined: one line naming the
    manifest's line and column, before anything is built or written."""
    manifest = (
        "name: a\npre-image:\n  - type: cargo-build\n    bin: hello\n"
        f"    extract:\n      greet: {extract}\n"
    )
    root = make_repo({**IMAGE, CARGO_IMAGE: manifest})
    line = one_error_line(cli("list", "--repo", str(root)))
    assert "a/mzbuild.yml:6:" in line, line
    assert f"extract {side} {value!r} in cargo-build pre-image 1 points outside" in line


BILLION_LAUGHS = (
    "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
    + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    + "name: j\nbuild-args: *i\n"
)


def test_nested_yaml_anchors_are_refused_at_once(make_repo: MakeRepo) -> None:
    """A few hundred bytes of nested anchors (a billion nodes once expanded) are one
    line in well under the time a single expansion would take, not gigabytes."""
    assert len(BILLION_LAUGHS) < 400
    root = make_repo({"a/mzbuild.yml": BILLION_LAUGHS, "a/Dockerfile": "FROM scratch\n"})
    line = one_error_line(cli("list", "--repo", str(root), timeout=20))
    assert "a/mzbuild.yml:" in line
    assert "YAML aliases expand this manifest past 100,000 nodes" in line


def test_recursive_yaml_alias_is_refused(make_repo: MakeRepo) -> None:
    root = make_repo({"a/mzbuild.yml": "name: a\nx: &x [*x]\n", "a/Dockerfile": "FROM scratch\n"})
    line = one_error_line(cli("list", "--repo", str(root)))
    assert "recursive alias" in line


def test_a_huge_value_is_not_quoted_whole(make_repo: MakeRepo) -> None:
    """A wrong value of 300 KB gives a short line that names it, not the value."""
    huge = "[" + ",".join(["'" + "x" * 100 + "'"] * 3000) + "]"
    root = make_repo(
        {"a/mzbuild.yml": f"name: a\npublish: {huge}\n", "a/Dockerfile": "FROM scratch\n"}
    )
    line = one_error_line(cli("list", "--repo", str(root)))
    assert "a/mzbuild.yml:2:10: 'publish' must be true or false" in line
    assert len(line) < 400, len(line)
    aliased = "name: a\nv: &v " + huge + "\nw: &w [*v, *v, *v, *v, *v, *v, *v, *v]\npublish: *w\n"
    root = make_repo({"a/mzbuild.yml": aliased, "a/Dockerfile": "FROM scratch\n"})
    line = one_error_line(cli("list", "--repo", str(root)))
    assert len(line) < 400, len(line)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="flow-sequences"),
        pytest.param("{a: " * 50_000 + "1" + "}" * 50_000, id="flow-mappings"),
        pytest.param(
            "\n" + "".join(" " * i + f"k{i}:\n" for i in range(1, 1300)) + " " * 1300 + "v",
            id="block-mappings",
        ),
    ],
)
def test_deep_nesting_is_one_line_not_a_crash(make_repo: MakeRepo, value: str) -> None:
    """A manifest nested 100,000 levels deep crashed the YAML library's C composer
    (a segmentation fault): refused before it is composed."""
    root = make_repo({"a/mzbuild.yml": f"name: a\nx: {value}\n", "a/Dockerfile": "FROM scratch\n"})
    line = one_error_line(cli("list", "--repo", str(root)))
    assert "a/mzbuild.yml:" in line
    assert "nested more than 64 levels deep" in line
