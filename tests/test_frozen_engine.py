"""A frozen engine (``kill -STOP`` of its ``dockerd``) never makes a run endless.

Its connections stay open and nothing it was asked answers, so only pings
tell: a pool run loses it within the heartbeat bound and re-queues its
builds elsewhere; ``run`` leaves on SIGTERM with a warning naming the
container it could not remove.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mzbuild_async.builds.scheduler import HEARTBEAT_SECONDS, PING_SECONDS
from mzbuild_async.engine.containers import CLEANUP_SECONDS
from tests.support.demo import Cli
from tests.support.pool import (
    Sleepy,
    docker_on,
    engine_tables,
    engines,
    make_sleepy_repo,
    running_builds,
    running_commands,
    when,
)
from tests.support.registry import Registry

# (the extra engines are shared: their tests run on one worker, in turn)
pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("engines")]

MAIN = "unix:///var/run/docker.sock"
STATE = Path(os.environ.get("MZBUILD_ASYNC_ENGINES_DIR", "/tmp/mzbuild-async-engines"))


def _pid(name: str) -> int:
    return int((STATE / name / "dockerd.pid").read_text())


@pytest.fixture
def frozen() -> Iterator[dict[str, str]]:
    """Engine e4, thawed (SIGCONT) after the test whatever happened."""
    env = engines("e4")
    try:
        yield env
    finally:
        os.kill(_pid("e4"), signal.SIGCONT)
        engines("e4")


def test_a_frozen_engine_is_lost_and_its_builds_run_elsewhere(
    tmp_path: Path, registries: dict[str, Registry], frozen: dict[str, str]
) -> None:
    wide = [Sleepy("base", (), 0), *(Sleepy(f"leaf{i}", ("base",), 6) for i in range(5))]
    repo = make_sleepy_repo(tmp_path / "repo", wide)
    engine_tables(repo, (MAIN, "main", 2), (frozen["E4"], "victim", 2))
    cli = Cli(repo, f"{registries['none'].host}/frozen", tmp_path / "cache")
    report = tmp_path / "report.json"
    process = cli.start("ensure", "--all", "--json", "--report", str(report))
    froze = when(  # two builds run there
        process,
        lambda: len(running_builds(frozen["E4"])) >= 2,
        lambda: os.kill(_pid("e4"), signal.SIGSTOP),
    )
    started = time.monotonic()
    out, err = process.communicate(timeout=300)
    assert froze.is_set(), "the victim engine never ran two builds"
    assert process.returncode == 0, out + err
    images = json.loads(out)["images"]
    assert {n: i["action"] for n, i in images.items()} == {s.name: "built" for s in wide}
    assert all(i["pushed"] for i in images.values())
    document = json.loads(report.read_text())
    assert "gave no answer to a ping" in document["engines"]["victim"]["lost"]
    assert [s for s in document["steps"] if s["status"] == "requeued"]
    # Lost within the bound, then its builds (6 s each) ran on the main engine.
    bound = HEARTBEAT_SECONDS + PING_SECONDS
    assert time.monotonic() - started < 60 + bound, err


def test_run_leaves_on_sigterm_while_its_engine_is_frozen(
    tmp_path: Path, registries: dict[str, Registry], frozen: dict[str, str]
) -> None:
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    cli = Cli(repo, f"{registries['none'].host}/frozenrun", tmp_path / "cache")
    before = set(docker_on(frozen["E4"], "ps", "-aq").split())

    def running() -> bool:
        return "sleep 120" in running_commands(frozen["E4"])

    process = subprocess.Popen(
        cli.args("run", "solo", "--engine", frozen["E4"], "--", "/bin/busybox", "sleep", "120"),
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not running():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the container never ran"
        time.sleep(0.2)
    os.kill(_pid("e4"), signal.SIGSTOP)
    time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _out, err = process.communicate(timeout=60)
    waited = time.monotonic() - sent
    assert process.returncode == 143, err
    assert waited < CLEANUP_SECONDS + 5, waited
    warning = [line for line in err.splitlines() if "left container" in line]
    assert len(warning) == 1, err
    assert "docker rm -f" in warning[0]
    os.kill(_pid("e4"), signal.SIGCONT)
    left = set(docker_on(frozen["E4"], "ps", "-aq").split()) - before
    subprocess.run(
        ["docker", "-H", frozen["E4"], "rm", "-f", *left], capture_output=True, check=False
    )
