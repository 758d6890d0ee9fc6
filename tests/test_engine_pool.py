"""A pool of real Docker engines: the main one, one over mutual-TLS TCP, one over SSH.

End to end through ``python -m mzbuild_async`` against real ``dockerd``
engines (``scripts/engines``), a real ``sshd`` and a real registry: builds
spread over the engines, parents travel through the registry, ``publish:
false`` chains stay on one engine, an engine stopped mid-build is survived.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.demo import Cli
from tests.support.pool import (
    SHOW,
    Sleepy,
    docker_on,
    engine_tables,
    engines,
    make_sleepy_repo,
    running_builds,
    running_commands,
    stop_engine,
    when,
)
from tests.support.registry import PASSWORD, USER, Registry

# (the extra engines are shared: their tests run on one worker, in turn)
pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("engines")]

MAIN = "unix:///var/run/docker.sock"

#: root -> four middles -> top, plus a publish: false chain under top.
DAG = [
    Sleepy("root", (), 1),
    *(Sleepy(f"mid{i}", ("root",), 2) for i in range(1, 5)),
    Sleepy("priv", ("root",), 1, publish=False),
    Sleepy("privtop", ("priv",), 1, publish=False),
    Sleepy("top", ("mid1", "mid2", "mid3", "mid4", "privtop"), 1),
]


def _tags(spec: str) -> list[str]:
    host, _, rest = spec.partition("/")
    response = httpx.get(f"http://{host}/v2/{rest.rsplit(':', 1)[0]}/tags/list", timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return list(response.json().get("tags") or [])


def _show(spec: str) -> list[str]:
    """What every image below ``spec`` wrote: pulled into the main engine and run there."""
    subprocess.run(["docker", "pull", spec], capture_output=True, check=True, timeout=120)
    return subprocess.run(
        ["docker", "run", "--rm", spec, *SHOW],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.split()


def _report(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def _builds(report: dict[str, Any]) -> Counter[str]:
    """Finished builds per image, from the report's steps."""
    return Counter(
        s["track"] for s in report["steps"] if s["phase"] == "build" and s["status"] == "done"
    )


def test_three_engines_build_each_image_once_and_move_parents_through_the_registry(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    env = engines("e2", "e3", "ssh")
    repo = make_sleepy_repo(tmp_path / "repo", DAG)
    cli = Cli(
        repo,
        f"{registries['none'].host}/pool",
        tmp_path / "cache",
        env={
            "HOME": env["SSH_HOME"],  # the client key and known_hosts of the ssh engine
            "DOCKER_CERT_PATH": env["E3_CERTS"],  # TLS for tcp:// as the docker CLI does it
            "DOCKER_TLS_VERIFY": "1",
        },
    )
    pool = ["--engine", MAIN, "--engine", env["E3"], "--engine", env["SSH"], "--jobs", "1"]

    planned = cli.run("plan", "--all", "--json", *pool)
    assert planned.returncode == 0, planned.stderr
    placement = {n: i.get("engine") for n, i in json.loads(planned.stdout)["images"].items()}
    assert set(placement.values()) <= {"docker", "127.0.0.1:23763", "127.0.0.1:22022"}
    assert len(set(placement.values())) > 1

    report_path = tmp_path / "report.json"
    result = cli.run("ensure", "--all", "--json", "--report", str(report_path), *pool, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    images = json.loads(result.stdout)["images"]
    report = _report(report_path)

    # Every image built exactly once, on more than one engine.
    assert {n: i["action"] for n, i in images.items()} == {s.name: "built" for s in DAG}
    assert _builds(report) == Counter({s.name: 1 for s in DAG})
    where = {n: i["engine"] for n, i in images.items()}
    assert len(set(where.values())) > 1, where
    assert set(report["engines"]) == {"docker", "127.0.0.1:23763", "127.0.0.1:22022"}
    assert sum(e["builds"] for e in report["engines"].values()) == len(DAG)
    assert all(e["lost"] is None for e in report["engines"].values())

    # Parents reached their children's engines through the registry.
    transfers = {
        (s["detail"], s["engine"])
        for s in report["steps"]
        if s["phase"] == "transfer" and s["status"] == "done"
    }
    for image in DAG:
        for parent in image.parents:
            if where[parent] != where[image.name]:
                assert (parent, where[image.name]) in transfers, (parent, image.name)
    assert sum(e["transfers"] for e in report["engines"].values()) == len(transfers) > 0

    # publish: false chains stay on one engine (with what needs them), never pushed.
    assert where["priv"] == where["privtop"] == where["top"]
    for name in ("priv", "privtop"):
        assert images[name]["pushed"] is False
        assert _tags(images[name]["spec"]) == []
    for image in DAG:
        if image.publish:
            assert images[image.name]["pushed"] is True
            assert images[image.name]["spec"].rsplit(":", 1)[1] in _tags(images[image.name]["spec"])

    # The result is right: the top image prints what every image below it wrote.
    assert sorted(_show(images["top"]["spec"])) == sorted(s.name for s in DAG)

    # The summary names each image's engine; a second run finds everything.
    again = cli.run("ensure", "--all", *pool)
    assert again.returncode == 0, again.stderr
    assert "ENGINE" in again.stdout.splitlines()[0]


def test_an_engine_stopped_mid_build_is_survived(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    env = engines("e4")
    wide = [Sleepy("base", (), 1), *(Sleepy(f"leaf{i}", ("base",), 8) for i in range(6))]
    repo = make_sleepy_repo(tmp_path / "repo", wide)
    engine_tables(repo, (MAIN, "main", 2), (env["E4"], "victim", 2))
    cli = Cli(repo, f"{registries['none'].host}/lost", tmp_path / "cache")
    report_path = tmp_path / "report.json"
    process = cli.start("ensure", "--all", "--json", "--report", str(report_path))
    # Stopped once a RUN step runs there.
    stopped = when(process, lambda: bool(running_commands(env["E4"])), lambda: stop_engine("e4"))
    try:
        out, err = process.communicate(timeout=600)
    finally:
        engines("e4")  # back up for whoever comes next
    assert stopped.is_set(), "the victim engine never ran a build"
    assert process.returncode == 0, out + err
    images = json.loads(out)["images"]
    assert {n: i["action"] for n, i in images.items()} == {s.name: "built" for s in wide}
    assert all(i["pushed"] and i["engine"] == "main" for n, i in images.items() if n != "base")
    report = _report(report_path)
    assert report["engines"]["victim"]["lost"], report["engines"]
    assert report["engines"]["main"]["lost"] is None
    requeued = [s for s in report["steps"] if s["status"] == "requeued"]
    assert requeued
    assert all(s["engine"] == "victim" for s in requeued)
    assert "engine victim lost" in err


def test_unreachable_engines(tmp_path: Path, registries: dict[str, Registry]) -> None:
    """One engine down: a warning and the run goes on; none up: one line, exit 2."""
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    cli = Cli(repo, f"{registries['none'].host}/unreach", tmp_path / "cache")
    gone = f"unix://{tmp_path}/no-such.sock"
    result = cli.run("ensure", "--all", "--engine", gone, "--engine", MAIN)
    assert result.returncode == 0, result.stderr
    assert f"engine no-such ({gone}) could not be reached" in result.stderr
    assert "left out of this run" in result.stderr

    result = cli.run("ensure", "--all", "--engine", gone)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("mzbuild-async")]
    assert len(lines) == 1, result.stderr
    assert "none of the 1 engines answered" in lines[0]
    assert "Traceback" not in result.stderr

    result = cli.run("ensure", "--all", "--engine", "no-such-context")
    assert result.returncode == 2
    assert "is not a URL" in result.stderr
    assert "Docker context" in result.stderr


def test_engine_tables_are_checked(tmp_path: Path, registries: dict[str, Registry]) -> None:
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    cli = Cli(repo, f"{registries['none'].host}/tables", tmp_path / "cache")
    for table, message in (
        ('[[engine]]\nurl = "ftp://x"\n', "unknown scheme 'ftp'"),
        ('[[engine]]\nurl = "unix:///x.sock"\nslots = 0\n', "slots must be a positive integer"),
        ('[[engine]]\nurl = "unix:///x.sock"\ncolour = 1\n', "unknown setting 'colour'"),
        ('[[engine]]\nurl = "tcp://h:1"\ntls-dir = "nowhere"\n', "tls-dir"),
        ('[engine]\nurl = "unix:///x.sock"\n', "array of tables"),
    ):
        (repo / "mzbuild-async.toml").write_text(table)
        result = cli.run("ensure", "--all")
        assert result.returncode == 2, (table, result.stderr)
        assert message in result.stderr, (table, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_docker_context_names_an_engine(tmp_path: Path, registries: dict[str, Registry]) -> None:
    """``docker context create`` contexts work as engine names (their TLS files too)."""
    env = engines("e3")
    home = tmp_path / "home"
    certs = env["E3_CERTS"]
    subprocess.run(
        [
            "docker",
            "context",
            "create",
            "pool-e3",
            "--docker",
            f"host={env['E3']},ca={certs}/ca.pem,cert={certs}/cert.pem,key={certs}/key.pem",
        ],
        env={"HOME": str(home), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"},
        capture_output=True,
        check=True,
        timeout=60,
    )
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    cli = Cli(repo, f"{registries['none'].host}/ctx", tmp_path / "cache", env={"HOME": str(home)})
    result = cli.run("ensure", "--all", "--json", "--engine", "pool-e3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"]["solo"]["engine"] == "pool-e3"


def test_sigterm_stops_the_work_on_every_engine(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """SIGTERM with builds running on two engines: exit 143, no build left running on
    either, nothing pushed for the unfinished images."""
    env = engines("e2")
    slow = [Sleepy("base", (), 0), *(Sleepy(f"slow{i}", ("base",), 60) for i in range(4))]
    repo = make_sleepy_repo(tmp_path / "repo", slow)
    cli = Cli(repo, f"{registries['none'].host}/term", tmp_path / "cache")
    proc = subprocess.Popen(
        cli.args("ensure", "--all", "--jobs", "2", "--engine", MAIN, "--engine", env["E2"]),
        env=cli.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    hosts = (MAIN, env["E2"])

    def running() -> list[set[str]]:
        return [running_builds(host) for host in hosts]

    before = running()  # (other work on the main engine is not ours)
    deadline = time.monotonic() + 120
    while not all(now - was for now, was in zip(running(), before, strict=True)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "builds never ran on both engines"
        time.sleep(0.2)
    ours = [now - was for now, was in zip(running(), before, strict=True)]
    proc.send_signal(15)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err
    deadline = time.monotonic() + 30
    # The engines stop the builds whose client went away.
    while any(mine & now for mine, now in zip(ours, running(), strict=True)):
        assert time.monotonic() < deadline, f"builds still running: {ours}"
        time.sleep(0.5)
    spec_of = f"{registries['none'].host}/term/slow0:x"
    assert _tags(spec_of) == []


def test_a_transfer_registry_lets_publish_false_images_move(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    env = engines("e2")
    dag = [
        Sleepy("hidden", (), 1, publish=False),
        *(Sleepy(f"user{i}", ("hidden",), 3) for i in range(2)),
    ]
    repo = make_sleepy_repo(tmp_path / "repo", dag)
    host = registries["none"].host
    cli = Cli(repo, f"{host}/moving", tmp_path / "cache")
    result = cli.run(
        "ensure",
        "--all",
        "--json",
        "--jobs",
        "1",
        "--engine",
        MAIN,
        "--engine",
        env["E2"],
        "--transfer-registry",
        f"{host}/transfer",
    )
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    assert images["user0"]["engine"] != images["user1"]["engine"]
    fingerprint = images["hidden"]["spec"].rsplit(":mzbuild-", 1)[1]
    assert _tags(f"{host}/transfer/hidden:x") == [f"mzbuild-{fingerprint}"]
    assert _tags(images["hidden"]["spec"]) == []  # never in the image registry


def test_podman_serves_as_an_engine_of_the_pool(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """Debian's podman (``podman system service``) next to dockerd: it builds, pushes
    (its push stream names the digest only in text) and fetches parents."""
    host = registries["none"].host
    env = engines("podman", insecure=[host])
    dag = [
        Sleepy("root", (), 1),
        *(Sleepy(f"mid{i}", ("root",), 2) for i in range(3)),
        Sleepy("top", ("mid0", "mid1", "mid2"), 1),
    ]
    repo = make_sleepy_repo(tmp_path / "repo", dag)
    cli = Cli(repo, f"{host}/podman", tmp_path / "cache")
    result = cli.run(
        "ensure", "--all", "--json", "--jobs", "1", "--engine", MAIN, "--engine", env["PODMAN"],
        "-v", "--log-format", "console",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    images = json.loads(result.stdout)["images"]
    assert {i["engine"] for i in images.values()} == {"docker", "mzbuild-async-podman"}
    # Each engine says which builder it has: podman's Docker API builds the classic way.
    said = [line for line in result.stderr.splitlines() if ": builds with " in line]
    assert any("the classic builder" in line and "podman" in line for line in said), said
    assert any("BuildKit" in line and "podman" not in line for line in said), said
    assert all(i["action"] == "built" and i["pushed"] for i in images.values())
    assert sorted(_show(images["top"]["spec"])) == sorted(s.name for s in dag)


def test_run_over_a_pool_leaves_its_target_in_the_home_engine(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """``run`` (acquire, then run): built across the pool, the target comes home
    (the first engine) through the registry and runs there."""
    env = engines("e2")
    dag = [Sleepy("root", (), 1), *(Sleepy(f"mid{i}", ("root",), 2) for i in range(3))]
    dag.append(Sleepy("top", ("mid0", "mid1", "mid2"), 1))
    repo = make_sleepy_repo(tmp_path / "repo", dag)
    cli = Cli(repo, f"{registries['none'].host}/home", tmp_path / "cache")
    # e2 first: it is the home engine; the main engine helps.
    pool = ["--jobs", "1", "--engine", env["E2"], "--engine", MAIN]
    report = tmp_path / "report.json"
    result = cli.run("run", "top", "--report", str(report), *pool, "--", *SHOW)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(result.stdout.split()) == sorted(s.name for s in dag)
    document = _report(report)
    assert list(document["engines"]) == ["mzbuild-async-e2", "docker"]
    assert all(e["builds"] > 0 for e in document["engines"].values())
    spec = document["images"]["top"]["spec"]
    assert docker_on(env["E2"], "image", "inspect", "--format", "{{.Id}}", spec).strip()


def test_slots_and_platforms_come_from_each_engine_unless_configured(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """Slots default to the engine's CPU count (/info), --jobs sets them; an engine of
    another platform gets no builds (one warning); none of the run's platform: exit 2."""
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    cli = Cli(repo, f"{registries['none'].host}/slots", tmp_path / "cache")
    cpus = int(
        subprocess.run(
            ["docker", "info", "--format", "{{.NCPU}}"], capture_output=True, text=True, check=True
        ).stdout
    )
    report = tmp_path / "report.json"
    result = cli.run("ensure", "--all", "--engine", MAIN, "--report", str(report))
    assert result.returncode == 0, result.stderr
    engines_seen = _report(report)["engines"]
    assert engines_seen["docker"]["slots"] == cpus
    assert engines_seen["docker"]["platform"] == "linux/amd64"
    result = cli.run("plan", "--all", "--json", "--engine", MAIN, "--jobs", "3")
    assert result.returncode == 0, result.stderr
    (repo / "mzbuild-async.toml").write_text(
        f'[[engine]]\nurl = "{MAIN}"\nname = "arm"\nplatform = "linux/arm64"\n'
    )
    result = cli.run("plan", "--all")
    assert result.returncode == 2
    assert "no engine of the pool builds linux/amd64" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_engine_under_several_urls_counts_once(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """The main engine named three ways (two socket paths and a ``..`` path): one member
    with --jobs 1 slots, one build at a time, no transfers; a warning for each repeat."""
    repo = make_sleepy_repo(
        tmp_path / "repo",
        [Sleepy("base", (), 0), Sleepy("a", ("base",), 1), Sleepy("b", ("base",), 1)],
    )
    cli = Cli(repo, f"{registries['none'].host}/alias", tmp_path / "cache")
    report_path = tmp_path / "report.json"
    urls = [MAIN, "unix:///run/docker.sock", "unix:///var/run/../run/docker.sock"]
    pool = [arg for url in urls for arg in ("--engine", url)]
    result = cli.run("ensure", "--all", "--jobs", "1", "--report", str(report_path), *pool)
    assert result.returncode == 0, result.stderr
    report = _report(report_path)
    assert list(report["engines"]) == ["docker"], report["engines"]
    assert report["engines"]["docker"]["transfers"] == 0
    assert result.stderr.count("is the same Docker engine as docker") == 2, result.stderr
    builds = sorted(
        (s["start"], s["end"])
        for s in report["steps"]
        if s["phase"] == "build" and s["status"] == "done"
    )
    assert len(builds) == 3
    assert all(end <= start + 0.01 for (_, end), (start, _) in itertools.pairwise(builds))


def test_a_lost_publish_false_parent_is_built_again(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """The engine holding the only copy of a publish: false parent is stopped while the
    child builds there: the parent is built again on the live engine, then the child;
    the run succeeds (no --transfer-registry needed)."""
    env = engines("e4")
    # priv is decided first (nothing to look up) and goes to the first engine, the
    # victim; the chain l1-l3 then keeps the main engine busy.
    dag = [
        Sleepy("l1", (), 0),
        Sleepy("l2", ("l1",), 0),
        Sleepy("l3", ("l2",), 4),
        Sleepy("priv", (), 1, publish=False),
        Sleepy("child", ("priv",), 6),
    ]
    repo = make_sleepy_repo(tmp_path / "repo", dag)
    engine_tables(repo, (env["E4"], "victim", 1), (MAIN, "main", 1))
    cli = Cli(repo, f"{registries['none'].host}/lostpriv", tmp_path / "cache")
    report_path = tmp_path / "report.json"
    process = cli.start("ensure", "--all", "--json", "--report", str(report_path))
    stopped = when(
        process,
        lambda: "child.txt" in running_commands(env["E4"]),  # the child builds there
        lambda: stop_engine("e4"),
    )
    try:
        out, err = process.communicate(timeout=600)
    finally:
        engines("e4")
    assert stopped.is_set(), "the child never built on the victim engine"
    assert process.returncode == 0, out + err
    images = json.loads(out)["images"]
    assert {n: (i["action"], i["engine"]) for n, i in images.items()} == {
        **{n: ("built", "main") for n in ("l1", "l2", "l3")},
        "priv": ("built", "main"),
        "child": ("built", "main"),
    }
    report = _report(report_path)
    assert any(
        s["track"] == "priv" and "now lost" in (s.get("detail") or "") for s in report["steps"]
    ), report["steps"]
    assert sorted(_show(images["child"]["spec"])) == ["child", "priv"]


def test_buildkit_inline_cache_crosses_engines_through_the_registry(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """--cache-registry on BuildKit: the image carries its inline cache to the cache
    registry (one that wants a login); a second engine that never saw it builds it
    again with its RUN step taken from that cache (no pull of the cache image first:
    BuildKit reads it with the credentials the build's session gives it), and a cache
    image that is not there is a miss, not a failure."""
    import uuid

    env = engines("e2")
    host = registries["htpasswd"].host
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 3)])
    run = uuid.uuid4().hex[:8]
    cli = Cli(repo, f"{host}/ic{run}", tmp_path / "cache")
    login = {"MZBUILD_ASYNC_REGISTRY_USERNAME": USER, "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD}
    cli.env.update(login)
    flags = ("--cache-registry", f"{host}/cache{run}", "-v", "--log-format", "console")

    def run_step(result: subprocess.CompletedProcess[str]) -> list[str]:
        """The RUN step's lines of solo's build (``#N [2/2] RUN ...``, ``#N ...``)."""
        lines = [x.split("solo | ", 1)[1] for x in result.stderr.splitlines() if "solo | #" in x]
        number = next(x.split()[0] for x in lines if "] RUN " in x)
        return [x for x in lines if x.split()[0] == number]

    first = cli.run("build", "solo", "--engine", MAIN, *flags)
    assert first.returncode == 0, first.stderr
    assert not any(x.endswith(" CACHED") for x in run_step(first))  # (it ran: 3 s)
    second = cli.run("build", "solo", "--engine", env["E2"], *flags)
    assert second.returncode == 0, second.stderr
    assert "builds with BuildKit" in second.stderr
    assert any(x.endswith(" CACHED") for x in run_step(second)), run_step(second)
    assert "layer cache" not in second.stderr  # (no warning: nothing pulled first)
    assert PASSWORD not in first.stderr + second.stderr
    missing = Cli(repo, f"{host}/ic{run}b", tmp_path / "cache2")
    missing.env.update(login)
    third = missing.run(
        "build", "solo", "--engine", env["E2"], "--cache-registry", f"{host}/none{run}"
    )
    assert third.returncode == 0, third.stderr
