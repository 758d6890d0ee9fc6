"""Progress on stderr: live on a terminal, lines without one, folded groups on CI."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import uuid
from pathlib import Path

import anyio
import pytest

from mzbuild_async.ci import by_name
from mzbuild_async.report.progress import LineProgress, LiveProgress, make_progress
from mzbuild_async.support.events import Event, EventStatus, Phase
from mzbuild_async.testing import FakeClock
from tests.support.demo import Cli, make_demo
from tests.support.registry import Registry


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(progress: LineProgress | LiveProgress, clock: FakeClock) -> None:
    events = [
        Event(0.0, "base", Phase.BUILD, EventStatus.START),
        Event(0.0, "base", Phase.BUILD, EventStatus.LINE, "Step 1/2 : FROM scratch"),
        Event(0.0, "base", Phase.BUILD, EventStatus.LINE, "Step 2/2 : COPY busybox /bin/"),
        Event(0.0, "base", Phase.BUILD, EventStatus.DONE),
        Event(0.0, "app", Phase.BUILD, EventStatus.START),
        Event(0.0, "app", Phase.BUILD, EventStatus.LINE, "Step 1/1 : RUN false"),
        Event(
            0.0, "app", Phase.BUILD, EventStatus.FAILED, "docker build of app failed at Step 1/1"
        ),
        Event(0.0, "tool", Phase.BUILD, EventStatus.SKIPPED, "dependency app failed"),
    ]
    for event in events:
        clock.now += 0.5
        progress(event)


def test_make_progress_picks_the_view() -> None:
    assert isinstance(make_progress(Tty(), environ={}), LiveProgress)
    assert isinstance(make_progress(io.StringIO(), environ={}), LineProgress)
    assert make_progress(Tty(), quiet=True, environ={}) is None
    assert isinstance(make_progress(Tty(), environ={"TERM": "dumb"}), LineProgress)


def test_lines_without_a_terminal() -> None:
    out, clock = io.StringIO(), FakeClock(100.0)
    progress = LineProgress(out, clock=clock)
    feed(progress, clock)
    text = out.getvalue()
    assert "\x1b" not in text
    lines = text.splitlines()
    assert lines[0] == "[    0.5s] base: build start"
    assert "[    2.0s] base: build done" in lines
    assert "[    3.5s] app: build failed: docker build of app failed at Step 1/1" in lines
    assert "    app | Step 1/1 : RUN false" in lines  # the failure's last lines
    assert "Step 2/2 : COPY busybox /bin/" not in text  # other output only with -v
    assert "[    4.0s] tool: build skipped: dependency app failed" in lines


def test_periodic_status_lines() -> None:
    out, clock = io.StringIO(), FakeClock(100.0)
    progress = LineProgress(out, clock=clock)
    progress.interval = 0.01
    progress(Event(0.0, "base", Phase.BUILD, EventStatus.START))
    progress(Event(0.0, "lib", Phase.PULL, EventStatus.START))

    async def tick() -> None:
        with anyio.move_on_after(0.05):
            await progress.ticker()

    anyio.run(tick)
    status = [line for line in out.getvalue().splitlines() if "building" in line]
    assert status
    assert status[0].endswith("1 building, 1 pulling")


def test_live_block_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")  # (the terminal's width, whatever runs the test)
    out, clock = Tty(), FakeClock(100.0)
    progress = LiveProgress(out, clock=clock)
    progress(Event(0.0, "base", Phase.BUILD, EventStatus.START))
    clock.now += 1.0
    progress(Event(0.0, "base", Phase.BUILD, EventStatus.LINE, "Step 2/2 : COPY busybox /bin/"))
    progress.draw(force=True)
    text = out.getvalue()
    block = text.rsplit("\x1b[J", 1)[-1]
    assert "1 building" in block
    assert "base" in block
    assert "Step 2/2 : COPY busybox /bin/" in block  # the latest line of the image
    assert "1.0s" in block
    progress(Event(0.0, "base", Phase.BUILD, EventStatus.DONE))
    progress.close()
    assert out.getvalue().endswith("\x1b[J")  # the block is gone before the summary


def test_github_actions_groups() -> None:
    out, clock = io.StringIO(), FakeClock(100.0)
    progress = LineProgress(out, clock=clock, folding=by_name("github"))
    feed(progress, clock)
    lines = out.getvalue().splitlines()
    start = lines.index("::group::base build done")
    assert lines[start + 1 : start + 4] == [
        "Step 1/2 : FROM scratch",
        "Step 2/2 : COPY busybox /bin/",
        "::endgroup::",
    ]
    assert "::group::app build failed" in lines


def test_buildkite_sections_expand_failures() -> None:
    out, clock = io.StringIO(), FakeClock(100.0)
    progress = LineProgress(out, clock=clock, folding=by_name("buildkite"))
    feed(progress, clock)
    lines = out.getvalue().splitlines()
    assert "--- base build done" in lines
    assert "+++ app build failed" in lines


def test_gitlab_sections_expand_failures() -> None:
    out, clock = io.StringIO(), FakeClock(100.0)
    progress = LineProgress(out, clock=clock, folding=by_name("gitlab"))
    feed(progress, clock)
    text = out.getvalue()
    assert "section_start:" in text
    assert "[collapsed=true]\r\x1b[0Kbase build done" in text
    assert "[collapsed=false]\r\x1b[0Kapp build failed" in text
    assert text.count("section_start:") == text.count("section_end:")


def _read_all(fd: int, process: subprocess.Popen[str]) -> bytes:
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    return b"".join(chunks)


@pytest.mark.slow
@pytest.mark.real
def test_a_real_run_on_a_pseudo_terminal_and_without(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    repo = make_demo(tmp_path / "demo")
    cli = Cli(repo, f"{registries['none'].host}/p{uuid.uuid4().hex[:10]}", tmp_path / "cache")
    cli.env["TERM"] = "xterm"
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        cli.args("ensure", "demo-tools"),
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=secondary,
        text=True,
    )
    os.close(secondary)
    shown = _read_all(primary, process).decode(errors="replace")
    os.close(primary)
    summary, _ = process.communicate(timeout=120)
    assert process.returncode == 0
    assert "\x1b[J" in shown  # redrawn in place
    assert "building" in shown
    assert "ensure: ok" in summary  # the summary goes to stdout, not into the block

    (repo / "images" / "tools" / "tools.txt").write_text("v2\n")
    subprocess.run(["git", "-C", str(repo), "commit", "-qam", "v2"], check=True)
    plain = cli.run("ensure", "demo-tools")
    assert plain.returncode == 0, plain.stderr
    assert "\x1b" not in plain.stderr
    assert "demo-tools: build start" in plain.stderr
    assert "demo-tools: build done" in plain.stderr
