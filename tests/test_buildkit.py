"""Builds with the engine's own BuildKit (the default on this machine's dockerd):
a cache mount that keeps its files between builds, independent stages that build at
the same time, the builder said per engine, and the classic builder when asked for."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MakeRepo
from tests.support.demo import Cli, commit
from tests.support.engine import BUSYBOX
from tests.support.registry import Registry
from tests.support.schemas import validate

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("test_buildkit")]

CACHE_MOUNT = """FROM scratch
COPY busybox /bin/busybox
COPY round.txt /round.txt
RUN --mount=type=cache,target=/cache ["/bin/busybox", "sh", "-c", \\
    "/bin/busybox cat /round.txt >> /cache/log && /bin/busybox cat /cache/log"]
"""

STAGES = """FROM scratch AS one
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "for i in 1 2 3 4; do echo one-$i; /bin/busybox sleep 0.4; done"]

FROM scratch AS two
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "for i in 1 2 3 4; do echo two-$i; /bin/busybox sleep 0.4; done"]

FROM scratch
COPY --from=one /bin/busybox /bin/busybox
COPY --from=two /bin/busybox /bin/b2
"""


def _repo(make_repo: MakeRepo, dockerfile: str, token: str) -> Path:
    repo = make_repo(
        {
            "img/mzbuild.yml": "name: img\n",
            "img/Dockerfile": dockerfile,
            "img/busybox": BUSYBOX.read_bytes(),
            "img/round.txt": f"{token} round 1\n",
        }
    )
    (repo / "img" / "busybox").chmod(0o755)
    commit(repo, "busybox runs")
    return repo


def _build_lines(cli: Cli, *flags: str) -> list[str]:
    result = cli.run("build", "img", "-v", "--log-format", "console", *flags)
    assert result.returncode == 0, result.stderr
    return [x.split("img | ", 1)[1] for x in result.stderr.splitlines() if "    img | " in x]


def test_a_cache_mount_keeps_its_files_between_builds(
    make_repo: MakeRepo, tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """``RUN --mount=type=cache`` (cargo's and pip's caches live there): the second
    build of an edited image finds what the first wrote."""
    token = uuid.uuid4().hex
    repo = _repo(make_repo, CACHE_MOUNT, token)
    cli = Cli(repo, f"{registries['none'].host}/bk{token[:8]}", tmp_path / "cache")
    first = _build_lines(cli)
    assert any(line.endswith(f"{token} round 1") for line in first), first
    (repo / "img" / "round.txt").write_text(f"{token} round 2\n")
    commit(repo, "round 2")
    second = [line for line in _build_lines(cli) if token in line]
    assert [line.rsplit(" ", 3)[-3:] for line in second] == [
        [token, "round", "1"],
        [token, "round", "2"],
    ], second


def test_independent_stages_build_at_the_same_time(
    make_repo: MakeRepo, tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """Two stages that need nothing of each other: their RUN output interleaves, and
    each of BuildKit's steps is a step of the image's build in ``--progress rawjson``,
    the report, the trace (the two RUNs on two tracks, as they overlap) and the
    timeline."""
    token = uuid.uuid4().hex
    stages = STAGES.replace("echo one-", f"echo {token}; echo one-")
    repo = _repo(make_repo, stages.replace("echo two-", f"echo {token}; echo two-"), token)
    cli = Cli(repo, f"{registries['none'].host}/bk{token[:8]}", tmp_path / "cache")
    files = {name: tmp_path / name for name in ("report.json", "trace.json", "page.html")}
    result = cli.run(
        "build", "img", "--progress", "rawjson", "--report", str(files["report.json"]),
        "--trace", str(files["trace.json"]), "--timeline", str(files["page.html"]),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    events = [json.loads(x) for x in result.stderr.splitlines() if x.startswith("{")]
    lines = [e["detail"] for e in events if e["status"] == "line" and e["image"] == "img"]
    said = [m.group(1) for x in lines if (m := re.search(r" ((?:one|two)-\d)$", x))]
    assert sorted(said) == [f"{s}-{i}" for s in ("one", "two") for i in range(1, 5)]
    firsts = {said.index("one-1"), said.index("two-1")}
    assert firsts == {0, 1}, said  # both started before either went on

    steps = {e["step"]["name"]: e for e in events if e["status"] == "step"}
    runs = [n for n in steps if re.match(r"\[(one|two) 2/2\] RUN ", n)]
    assert len(runs) == 2, list(steps)
    for name in runs:  # four sleeps of 0.4 s each, by BuildKit's clock
        assert steps[name]["step"]["outcome"] == "done"
        assert steps[name]["step"]["seconds"] >= 1.5, steps[name]
        assert (steps[name]["image"], steps[name]["phase"]) == ("img", "build")
    assert any(n.startswith("exporting to image") for n in steps), list(steps)
    build_done = next(e for e in events if e["status"] == "done" and e["phase"] == "build")
    assert all(e["at"] <= build_done["at"] for e in steps.values())

    report = json.loads(files["report.json"].read_text())
    validate(report, "report.json")
    inner = {s["name"]: s for s in report["steps"] if s["phase"] == "build step"}
    build = next(s for s in report["steps"] if s["phase"] == "build" and s["track"] == "img")
    assert set(inner) == set(steps)
    one, two = (inner[n] for n in runs)
    assert max(one["start"], two["start"]) < min(one["end"], two["end"])  # they overlapped
    assert all(build["start"] <= s["start"] <= s["end"] <= build["end"] for s in inner.values())
    assert not any(s["phase"] == "build step" for s in report["slowest"])

    trace = json.loads(files["trace.json"].read_text())["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in trace if e.get("name") == "thread_name"}
    tids = {e["tid"] for e in trace if e.get("name") in runs}
    assert sorted(names[t] for t in tids) == ["img steps", "img steps 2"]
    for tid, track in names.items():  # spans on a track nest or follow: never cross
        spans = sorted(
            (e["ts"], e["ts"] + e["dur"]) for e in trace if e["ph"] == "X" and e["tid"] == tid
        )
        stack: list[float] = []
        for start, end in spans:
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1] + 0.001, (track, spans)
            stack.append(end)

    page = files["page.html"].read_text()
    assert page.count('data-phase="build step"') == len(steps)
    # As many lanes as the trace has step tracks (two at least: the RUNs overlap; a
    # loaded machine may overlap a third step with them).
    lanes = sum(name.startswith("img steps") for name in names.values())
    assert page.count("\u21b3 steps") == lanes >= 2


def test_the_builder_is_said_and_classic_can_be_chosen(
    make_repo: MakeRepo, tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """-v names the builder of the engine; ``--builder classic`` builds the classic
    way (its "Step N/M" lines), with the same fingerprint."""
    token = uuid.uuid4().hex
    plain = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY round.txt /round.txt\n"
    repo = _repo(make_repo, plain + 'RUN ["/bin/busybox", "true"]\n', token)
    cli = Cli(repo, f"{registries['none'].host}/bk{token[:8]}", tmp_path / "cache")
    default = cli.run("build", "img", "-v", "--log-format", "console")
    assert default.returncode == 0, default.stderr
    assert "the Docker engine: builds with BuildKit (the engine API, version 2)" in default.stderr
    assert re.search(r"img \| #\d+ \[(stage-0 )?3/3\] RUN ", default.stderr)
    spec = cli.run("spec", "img").stdout
    classic = cli.run(
        "build", "img", "--force", "-v", "--log-format", "console", "--builder", "classic", "--json"
    )
    assert classic.returncode == 0, classic.stderr
    assert "the Docker engine: builds with the classic builder" in classic.stderr
    assert re.search(r"img \| Step \d+/\d+ : RUN ", classic.stderr)
    assert json.loads(classic.stdout)["images"]["img"]["spec"] == spec.strip()  # (the same)
    # --log-format json: every line on stderr is JSON (logs, progress, the build's lines).
    logged = cli.run("build", "img", "--force", "-v", "--log-format", "json")
    assert logged.returncode == 0, logged.stderr
    lines = logged.stderr.splitlines()
    assert any('"status": "line"' in line for line in lines)
    assert all(isinstance(json.loads(line), dict) for line in lines), logged.stderr


SECRET_MOUNT = """FROM scratch
COPY busybox /bin/busybox
COPY round.txt /round.txt
RUN --mount=type=secret,id=npm ["/bin/busybox", "sh", "-c", \\
    "/bin/busybox sha256sum /run/secrets/npm | /bin/busybox cut -d' ' -f1 > /digest"]
"""


@pytest.mark.parametrize("how", ["src", "env", "table"])
def test_a_secret_reaches_its_run_step_and_nothing_else(
    make_repo: MakeRepo, tmp_path: Path, registries: dict[str, Registry], how: str
) -> None:
    """``RUN --mount=type=secret,id=npm`` reads the value given by --secret (a file, a
    variable, a [[secret]] table), served over a BuildKit session: the step saw it (the
    image holds its digest), and the value is in no layer of the saved image, not in
    its history, the output, the report or the trace; the fingerprint ignores it."""
    import hashlib
    import io
    import subprocess
    import tarfile

    token = uuid.uuid4().hex
    value = f"npm-token-{token}"
    repo = _repo(make_repo, SECRET_MOUNT, token)
    cli = Cli(repo, f"{registries['none'].host}/bks{token[:8]}", tmp_path / "cache")
    spec = cli.run("spec", "img").stdout.strip()
    secret_file = tmp_path / "npm.txt"
    secret_file.write_text(value)
    if how == "src":
        flags: tuple[str, ...] = ("--secret", f"id=npm,src={secret_file}")
    elif how == "env":
        cli.env["NPM_TOKEN"] = value
        flags = ("--secret", "id=npm,env=NPM_TOKEN")
    else:
        (repo / "mzbuild-async.toml").write_text(f'[[secret]]\nid = "npm"\nsrc = "{secret_file}"\n')
        flags = ()
    report, trace = tmp_path / "report.json", tmp_path / "trace.json"
    result = cli.run(
        "ensure", "img", "-v", "--report", str(report), "--trace", str(trace), "--json", *flags
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"]["img"]["spec"] == spec  # (not an input)
    ran = cli.run("run", "img", *flags, "--", "/bin/busybox", "cat", "/digest")
    assert ran.stdout.strip() == hashlib.sha256(value.encode()).hexdigest(), ran.stderr
    saved = tmp_path / "saved.tar"
    subprocess.run(["docker", "save", "-o", str(saved), spec], check=True, capture_output=True)
    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            data = outer.extractfile(member)
            if data is None:
                continue
            content = data.read()
            if member.name.endswith(".tar"):
                with tarfile.open(fileobj=io.BytesIO(content)) as layer:
                    for item in layer.getmembers():
                        inner = layer.extractfile(item)
                        assert inner is None or value.encode() not in inner.read(), item.name
            assert value.encode() not in content, member.name
    history = subprocess.run(
        ["docker", "history", "--no-trunc", spec], capture_output=True, text=True, check=True
    ).stdout
    assert value not in history
    for text in (result.stdout, result.stderr, report.read_text(), trace.read_text()):
        assert value not in text


def test_a_secret_not_given_is_one_line_before_the_build(
    make_repo: MakeRepo, tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """The Dockerfile mounts a secret nobody gave: one line naming its file and line,
    before the build; a secret file that does not exist: one line before any work."""
    token = uuid.uuid4().hex
    repo = _repo(make_repo, SECRET_MOUNT, token)
    cli = Cli(repo, f"{registries['none'].host}/bks{token[:8]}", tmp_path / "cache")
    result = cli.run("build", "img", "--json")
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)["images"]["img"]["error"]
    assert error.startswith("img/Dockerfile:4: the secret 'npm' is not given; pass --secret")
    missing = cli.run("build", "img", "--secret", f"id=npm,src={tmp_path / 'nowhere'}")
    assert missing.returncode == 2
    assert missing.stderr.strip().endswith("(No such file or directory)")
    assert "secret npm: cannot read" in missing.stderr
    bad = cli.run("build", "img", "--secret", "npm")
    assert bad.returncode == 2
    assert "--secret 'npm': write id=NAME,src=PATH or id=NAME,env=VARIABLE" in bad.stderr
    classic = cli.run(
        "build", "img", "--builder", "classic", "--secret", "id=npm,env=HOME", "--json"
    )
    assert classic.returncode == 1
    assert "mounts need BuildKit" in json.loads(classic.stdout)["images"]["img"]["error"]


AGENT_COUNT = Path(__file__).parent / "agentcount"


@pytest.fixture(scope="module")
def agentcount(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The static program that asks an SSH agent how many keys it holds (cargo)."""
    import shutil
    import subprocess

    where = tmp_path_factory.mktemp("agentcount")
    shutil.copytree(AGENT_COUNT, where, dirs_exist_ok=True)
    built = subprocess.run(
        ["cargo", "build", "--release", "-q", "--offline", "--target", "x86_64-unknown-linux-gnu"],
        cwd=where,
        env={**os.environ, "RUSTFLAGS": "-C target-feature=+crt-static"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return where / "target" / "x86_64-unknown-linux-gnu" / "release" / "agentcount"


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real ssh-agent holding one new key; its environment (stopped afterwards)."""
    import subprocess

    key = tmp_path / "key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
        check=True,
        capture_output=True,
    )
    socket = tmp_path / "agent.sock"
    started = subprocess.run(
        ["ssh-agent", "-s", "-a", str(socket)], check=True, capture_output=True, text=True
    ).stdout
    pid = int(re.search(r"SSH_AGENT_PID=(\d+)", started).group(1))  # type: ignore[union-attr]
    env = {"SSH_AUTH_SOCK": str(socket)}
    try:
        subprocess.run(
            ["ssh-add", "-q", str(key)], check=True, capture_output=True, env={**os.environ, **env}
        )
        yield env
    finally:
        os.kill(pid, 15)


def test_an_ssh_agent_is_forwarded_to_its_run_step(
    make_repo: MakeRepo,
    tmp_path: Path,
    registries: dict[str, Registry],
    agentcount: Path,
    agent: dict[str, str],
) -> None:
    """``RUN --mount=type=ssh`` talks to the agent given by ``--ssh default`` through the
    build session: the step's program asks it for its keys and sees one. A required
    agent not given is one line before the build."""
    import shutil

    token = uuid.uuid4().hex
    dockerfile = (
        "FROM scratch\nCOPY agentcount /agentcount\nCOPY round.txt /round.txt\n"
        'RUN --mount=type=ssh,required=true ["/agentcount"]\n'
    )
    repo = _repo(make_repo, dockerfile, token)
    shutil.copy2(agentcount, repo / "img" / "agentcount")
    commit(repo, "the agent's client")
    cli = Cli(repo, f"{registries['none'].host}/ssh{token[:8]}", tmp_path / "cache")
    cli.env.update(agent)
    lines = _build_lines(cli, "--ssh", "default")
    assert any(line.endswith(" keys: 1") for line in lines), lines
    missing = cli.run("build", "img", "--force", "--json")
    assert missing.returncode == 1
    error = json.loads(missing.stdout)["images"]["img"]["error"]
    assert error.startswith("img/Dockerfile:4: the SSH agent 'default' is not given; pass --ssh")
    nowhere = cli.run("build", "img", "--ssh", f"other={tmp_path / 'no.sock'}")
    assert nowhere.returncode == 2
    assert "is not an SSH agent's socket" in nowhere.stderr
