"""`check`: per image status and tier, totals, --json, --trace, exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mzbuild_async.cli.main import main
from tests.support.registry import Registry


def check(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["check", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def published(
    fixture_repo: Path, registries: dict[str, Registry], capsys: pytest.CaptureFixture[str]
) -> tuple[str, dict[str, str]]:
    """The fixture repository's specs under the no-auth registry, base and server pushed."""
    registry = registries["none"]
    prefix = f"{registry.host}/check{id(capsys) % 100000}"
    assert (
        main(
            [
                "spec",
                "--all",
                "--json",
                "--repo",
                str(fixture_repo),
                "--image-registry",
                prefix,
                "--arch",
                "x86_64",
            ]
        )
        == 0
    )
    specs: dict[str, str] = json.loads(capsys.readouterr().out)
    for name in ("base", "server"):
        repo, tag = specs[name].split("/", 1)[1].rsplit(":", 1)
        registry.push(repo, tag)
    return prefix, specs


@pytest.mark.real
def test_check_json(
    fixture_repo: Path,
    published: tuple[str, dict[str, str]],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """--json: each image's spec, status, tier and seconds; requests per host; a valid trace."""
    prefix, specs = published
    trace = tmp_path / "trace.json"
    status, out, _ = check(
        capsys, "--all", "--json", "--repo", str(fixture_repo), "--image-registry", prefix,
        "--arch", "x86_64", "--tiers", "memory,registry", "--trace", str(trace),
    )  # fmt: skip
    assert status == 0
    data = json.loads(out)
    images = data["images"]
    assert set(images) == set(specs)
    for name, entry in images.items():
        assert entry["spec"] == specs[name]
        assert entry["status"] == ("present" if name in ("base", "server") else "absent")
        assert entry["tier"] == "registry"
        assert entry["seconds"] >= 0
    host = prefix.split("/")[0]
    assert data["requests"] == {host: len(specs) + 1}
    assert data["totals"]["present"] == 2
    assert set(data["tiers"]) == {"memory", "registry"}
    events = json.loads(trace.read_text())["traceEvents"]
    spans = [e for e in events if e["ph"] == "X"]
    tracks = {e["tid"]: e["args"]["name"] for e in events if e["name"] == "thread_name"}
    # One span per image per tier it went through, on that tier's track.
    assert sorted((tracks[e["tid"]], e["args"]["spec"]) for e in spans) == sorted(
        (tier, spec) for spec in specs.values() for tier in ("memory", "registry")
    )
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in spans)


def test_check_text_and_unknown_exit_status(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unreachable registry: every image unknown, a reason line each, exit status 1."""
    status, out, _ = check(
        capsys, "base", "--repo", str(fixture_repo), "--image-registry", "127.0.0.1:1/none",
        "--tiers", "registry",
    )  # fmt: skip
    assert status == 1
    assert "1 image: 0 present, 0 absent, 1 unknown" in out
    assert "base: unknown: 127.0.0.1:1: connection failed" in out


def test_check_bad_tiers(fixture_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown tier name is a one-line usage error."""
    status, out, err = check(
        capsys, "--all", "--repo", str(fixture_repo), "--tiers", "memory,cloud"
    )
    assert (status, out) == (2, "")
    assert err.strip() == (
        "mzbuild-async: error: unknown tier 'cloud';"
        " choose from memory, disk, daemon, registry, manifest"
    )


def test_check_uses_the_settings_file(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Tiers and retries come from mzbuild-async.toml when no flag says otherwise."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(fixture_repo, repo, symlinks=True)
    (repo / "mzbuild-async.toml").write_text('[lookup]\ntiers = ["memory"]\nretries = 1\n')
    status, out, _ = check(capsys, "base", "--json", "--repo", str(repo))
    assert status == 1  # the memory tier alone cannot answer
    data = json.loads(out)
    assert data["images"]["base"]["status"] == "unknown"
    assert set(data["tiers"]) == {"memory"}
    assert data["requests"] == {}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        pytest.param(["--deadline", "nan"], "'nan' is not a positive, finite number", id="nan"),
        pytest.param(["--deadline", "-1"], "'-1' is not a positive, finite number", id="neg"),
        pytest.param(["--deadline", "inf"], "'inf' is not a positive, finite number", id="inf"),
        pytest.param(["--retries", "0"], "'0' is not a whole number of at least 1", id="zero"),
        pytest.param(["--retries", "-3"], "'-3' is not a whole number of at least 1", id="neg3"),
        pytest.param(["--retries", "x"], "'x' is not a whole number of at least 1", id="text"),
    ],
)
def test_bad_deadline_and_retries_flags(
    fixture_repo: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    """Nonsense deadlines and retry counts are one line and exit status 2, before any work."""
    with pytest.raises(SystemExit) as exited:
        main(["check", "--all", "--repo", str(fixture_repo), *flags])
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mzbuild-async check: error: argument") or err.startswith(
        "mzbuild-async: error: argument"
    ), err
    assert message in err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        pytest.param("deadline = nan", "deadline must be a positive number", id="nan"),
        pytest.param("deadline = inf", "deadline must be a positive number", id="inf"),
        pytest.param("deadline = -1", "deadline must be a positive number", id="negative"),
        pytest.param("retries = 0", "retries must be a positive integer", id="zero"),
        pytest.param("retries = -3", "retries must be a positive integer", id="negative-retries"),
    ],
)
@pytest.mark.parametrize("command", ["check", "plan"])
def test_bad_lookup_settings_in_the_file(
    fixture_repo: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    setting: str,
    message: str,
    command: str,
) -> None:
    """The same nonsense in mzbuild-async.toml: one line naming the file, exit status 2."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(fixture_repo, repo, symlinks=True)
    (repo / "mzbuild-async.toml").write_text(f"[lookup]\n{setting}\n")
    status = main([command, "--all", "--repo", str(repo)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.splitlines() == [
        f"mzbuild-async: error: mzbuild-async.toml: [lookup] {message}"
    ] or (len(err.splitlines()) == 1 and message in err), err


def test_counts_are_said_in_words() -> None:
    """One image, two images: the messages and summaries count so."""
    from mzbuild_async.support.words import counted

    assert counted(1, "image") == "1 image"
    assert counted(0, "image") == "0 images"
    assert counted(2, "target") == "2 targets"
    assert counted(2, "child", "children") == "2 children"
