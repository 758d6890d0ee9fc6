"""SIGTERM, as CI systems send on cancel, behaves as Ctrl-C: nothing left running or half-done.

Real runs of ``python -m mzbuild_async ensure`` on the demo repository,
real cargo (a build script that sleeps), the real engine and registry;
the signal is sent from outside, to a process started in its own session
and to one that is PID 1 of its own PID namespace (as in a container).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support.demo import Cli, commit
from tests.support.registry import Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]

SLEEPY_BUILD_SCRIPT = "fn main() { std::thread::sleep(std::time::Duration::from_secs(120)); }\n"


@pytest.fixture
def cli(demo_cli: Cli) -> Cli:
    return demo_cli


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Live processes whose command line mentions ``text`` (cargo, rustc, build scripts)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append((int(entry.name), cmdline))
    return found


def wait_for(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    assert callable(predicate)
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def staging_dirs(cli: Cli) -> set[Path]:
    """What the runs of ``cli`` staged (in their own TMPDIR)."""
    return set(cli.tmp.glob("mzbuild-*"))


def tags(registry: Registry, repository: str) -> list[str]:
    response = httpx.get(f"{registry.url}/v2/{repository}/tags/list")
    if response.status_code == 404:
        return []
    return list(response.json().get("tags") or [])


def child_of(pid: int) -> int | None:
    """The first child of ``pid`` (the process ``unshare --fork`` started)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        if children:
            return int(children[0])
    return None


@pytest.mark.parametrize("how", ["own-session", "pid-1"])
def test_sigterm_during_cargo_kills_its_group_and_exits_143(
    cli: Cli, registries: dict[str, Registry], how: str
) -> None:
    """SIGTERM while cargo runs a build script: cargo's group is gone, exit 143, one line."""
    if how == "pid-1" and shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to run the tool as PID 1")
    greeting = cli.repo / "src" / "greeting"
    (greeting / "build.rs").write_text(SLEEPY_BUILD_SCRIPT)
    commit(cli.repo, "a slow build script")
    before = staging_dirs(cli)
    argv = cli.args("ensure", "--all")
    if how == "pid-1":
        argv = ["unshare", "--pid", "--fork", "--mount-proc", *argv]
    proc = subprocess.Popen(
        argv,
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: any("build-script-build" in c for _, c in processes_mentioning(str(cli.repo))),
            240,
            "the build script to run",
        )
        target = proc.pid if how == "own-session" else child_of(proc.pid)
        assert target is not None
        os.kill(target, signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    assert "Traceback" not in err
    wait_for(lambda: not processes_mentioning(str(cli.repo)), 10, "cargo's processes to end")
    assert staging_dirs(cli) <= before, "a staging directory was left behind"
    registry = registries["none"]
    repository = cli.registry.split("/", 1)[1]
    assert tags(registry, f"{repository}/demo-hello") == []


def test_sigterm_during_a_docker_build_pushes_nothing(
    cli: Cli, registries: dict[str, Registry]
) -> None:
    """SIGTERM while a RUN step runs (on BuildKit, the default here: a process of the
    engine's, not a container): exit 143, the step stopped by the engine once its client
    went away, no push for the unfinished image, no staging left."""
    token = uuid.uuid4().hex
    dockerfile = cli.repo / "images" / "tools" / "Dockerfile"
    # (the shell stays while sleep runs: the token is in its command line)
    dockerfile.write_text(dockerfile.read_text() + f"RUN sleep 60 && echo {token}\n")
    commit(cli.repo, "very slow tools")
    before = staging_dirs(cli)
    proc = cli.start("ensure", "demo-app")
    try:
        wait_for(lambda: processes_mentioning(token), 120, "the slow RUN step to run")
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    wait_for(lambda: not processes_mentioning(token), 30, "the engine to stop the RUN step")
    assert staging_dirs(cli) <= before
    repository = cli.registry.split("/", 1)[1]
    assert tags(registries["none"], f"{repository}/demo-tools") == []
    assert tags(registries["none"], f"{repository}/demo-app") == []
