"""CI steps: ``ensure --only`` builds its own images and awaits the others in the registry.

Real engine, real registry, real processes: a step started before the step
that builds its parents waits for them (HEAD with backoff) and pulls them,
never builds them; fingerprints from another commit stop it with one line;
a parent's step that failed stops it once ``--wait`` runs out, naming the
parent; a step re-run after success does nothing.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.demo import Cli
from tests.support.pool import Sleepy, make_sleepy_repo
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]

DAG = [
    Sleepy("root", (), 1),
    Sleepy("mid1", ("root",), 1),
    Sleepy("mid2", ("root",), 1),
    Sleepy("top", ("mid1", "mid2"), 1),
]


def _cli(tmp_path: Path, registries: dict[str, Registry], name: str) -> Cli:
    repo = make_sleepy_repo(tmp_path / name, DAG)
    return Cli(repo, f"{registries['none'].host}/{name}", tmp_path / f"cache-{name}")


def _fingerprints(cli: Cli) -> dict[str, str]:
    out = cli.run("fingerprint", "--all", "--json").stdout
    document: dict[str, Any] = json.loads(out)
    return {name: str(value) for name, value in document.items()}


def _only(fingerprints: dict[str, str], *names: str) -> list[str]:
    return [arg for name in names for arg in ("--only", f"{name}={fingerprints[name]}")]


def test_a_step_awaits_what_an_earlier_step_builds(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    cli = _cli(tmp_path, registries, "steps")
    fps = _fingerprints(cli)
    # Step B first: it needs root and mid1, which step A builds.
    second = subprocess.Popen(
        cli.args("ensure", "--json", "--step", "B", *_only(fps, "mid2", "top"), "--wait", "300"),
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(2.0)
    assert second.poll() is None  # waiting in the registry
    first = cli.run("ensure", "--json", "--step", "A", *_only(fps, "root", "mid1"))
    assert first.returncode == 0, first.stderr
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    a = json.loads(first.stdout)
    b = json.loads(out)
    assert a["step"] == "A"
    assert b["step"] == "B"
    assert {n: i["action"] for n, i in a["images"].items()} == {"root": "built", "mid1": "built"}
    actions_b = {n: i["action"] for n, i in b["images"].items()}
    assert actions_b == {"root": "pulled", "mid1": "pulled", "mid2": "built", "top": "built"}
    assert b["images"]["root"]["awaited_seconds"] > 1.0
    assert "awaited in the registry" in b["images"]["mid1"]["reason"]
    # Re-running a step after success does nothing.
    again = cli.run("ensure", "--json", "--step", "A", *_only(fps, "root", "mid1"))
    assert again.returncode == 0
    assert {i["action"] for i in json.loads(again.stdout)["images"].values()} == {"none"}


def test_a_step_on_another_commit_stops_with_one_line(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    cli = _cli(tmp_path, registries, "commit")
    result = cli.run("ensure", "--only", "top=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("mzbuild-async")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "image top" in lines[0]
    assert "different commits" in lines[0]


def test_a_parent_that_never_comes_stops_the_step_naming_it(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    cli = _cli(tmp_path, registries, "orphan")
    fps = _fingerprints(cli)
    result = cli.run("ensure", "--json", *_only(fps, "top"), "--wait", "3")
    assert result.returncode == 3  # --wait ran out: not a build failure of this step's
    images = json.loads(result.stdout)["images"]
    assert images["mid1"]["wait_ran_out"] is True
    assert images["top"]["action"] == "skipped"
    failed = {n: i["error"] for n, i in images.items() if i["action"] == "failed"}
    assert set(failed) == {"mid1", "mid2"}
    assert all("was not published within 3 s" in e for e in failed.values())
    assert all(i["action"] != "built" for i in images.values())


def _forge_marker(registry: Registry, spec: str, at: float, run: str = "") -> None:
    """A failure marker of ``spec`` dated ``at``, written straight to the registry."""
    from mzbuild_async.builds.markers import AT, ERROR, RUN, STEP, marker_of

    notes = {STEP: "forged", ERROR: "it failed", AT: f"{at:.3f}", **({RUN: run} if run else {})}
    body = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
            "annotations": notes,
        }
    ).encode()
    repo, _, tag = marker_of(spec).split("/", 1)[1].rpartition(":")
    response = httpx.put(
        f"{registry.url}/v2/{repo}/manifests/{tag}",
        content=body,
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
        timeout=10,
    )
    response.raise_for_status()


def test_a_marker_from_the_future_or_another_run_does_not_fail_a_step(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """A marker dated a day ahead (a clock gone wrong, or a forged one) and a marker of
    another pipeline run are ignored: the step waits for the image and gets it."""
    cli = _cli(tmp_path, registries, "future")
    cli.env["BUILDKITE_BUILD_ID"] = "build-2"
    fps = _fingerprints(cli)
    specs = json.loads(cli.run("spec", "--all", "--json").stdout)
    _forge_marker(registries["none"], specs["mid1"], time.time() + 86400)
    _forge_marker(registries["none"], specs["mid2"], time.time() + 5, run="buildkite:build-1")
    waiting = cli.start("ensure", "--json", *_only(fps, "top"), "--wait", "300")
    time.sleep(3.0)
    assert waiting.poll() is None, waiting.communicate()  # not failed at once
    first = cli.run("ensure", "--json", *_only(fps, "root", "mid1", "mid2"))
    assert first.returncode == 0, first.stderr
    out, err = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err
    assert json.loads(out)["images"]["top"]["action"] == "built"
    assert "a failure marker dated 86" in err
    assert "in the future" in err


def test_wait_bounds_the_first_lookup_of_an_awaited_image_too(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """The registry hangs on the other steps' images from the start: their very first
    lookup would take the whole 90 s --deadline; with --wait 4 the step ends once 4 s
    are gone (the hang shows as the subprocess' own timeout, 60 s), blaming the
    registry."""
    from tests.support.faultproxy import Faults, proxy_thread

    hang = Faults(stalls=10_000, only="/mid", methods=("HEAD", "GET"))
    with proxy_thread(registries["none"].url, hang) as proxy:
        repo = make_sleepy_repo(tmp_path / "hang", DAG)
        cli = Cli(repo, f"{proxy.host}/hang", tmp_path / "cache-hang")
        fps = _fingerprints(cli)
        result = cli.run("ensure", "--json", *_only(fps, "top"), "--wait", "4", timeout=60)
        assert proxy.counts["stalls"] >= 2
    assert result.returncode == 3, result.stderr
    images = json.loads(result.stdout)["images"]
    failed = {n: i for n, i in images.items() if i["action"] == "failed"}
    assert set(failed) == {"mid1", "mid2"}
    for image in failed.values():
        assert "the registry did not tell within 4 s" in image["error"], image
        assert "its lookup got no answer" in image["error"], image


def test_wait_bounds_the_await_when_the_registry_stops_answering(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """--wait 4 while the registry never answers (each HEAD could take the 30 s lookup
    deadline): the step ends after about 4 s, and says the registry was the cause."""
    from tests.support.faultproxy import proxy_thread

    with proxy_thread(registries["none"].url) as proxy:
        repo = make_sleepy_repo(tmp_path / "stall", DAG)
        (repo / "mzbuild-async.toml").write_text("[lookup]\ndeadline = 30\n")
        cli = Cli(repo, f"{proxy.host}/stall", tmp_path / "cache-stall")
        fps = _fingerprints(cli)
        step = cli.start("ensure", "--json", *_only(fps, "top"), "--wait", "4")
        assert step.stderr is not None
        for line in step.stderr:  # planned: the parents are awaited from here on
            if "pull start" in line:
                break
        proxy.faults.only = "/manifests/"
        proxy.faults.methods = ("HEAD", "GET")  # (the step's own failure marker goes in)
        proxy.faults.stalls = 10_000
        started = time.monotonic()
        out, _err = step.communicate(timeout=120)
        took = time.monotonic() - started
    assert step.returncode == 3  # --wait ran out (here: the registry's fault)
    assert took < 4 + 3, took
    images = json.loads(out)["images"]
    failed = {n: i for n, i in images.items() if i["action"] == "failed"}
    assert set(failed) == {"mid1", "mid2"}
    for image in failed.values():
        assert "the registry did not tell within 4 s" in image["error"], image
        assert image["awaited_seconds"] <= 4.5, image
