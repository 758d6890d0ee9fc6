"""End to end: the workflows on the real Docker engine, registry and cargo.

Each test builds the bundled demo repository (examples/demo: a chain, a
diamond, a ``publish: false`` image and a cargo-built binary, all ``FROM
scratch``) under its own image path in a real ``docker-registry``, through
``python -m mzbuild_async`` as a user runs it.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import git
from tests.support.demo import Cli, commit, make_demo
from tests.support.registry import PASSWORD, USER, Registry

pytestmark = [pytest.mark.slow, pytest.mark.real]

ALL = {
    "demo-base",
    "demo-tools",
    "demo-lib",
    "demo-app",
    "demo-hello",
    "demo-scratchpad",
    "demo-report",
}
PUBLISHED = ALL - {"demo-scratchpad"}


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def engine_up() -> None:
    """A running engine (fails under CI=true when there is none)."""
    import anyio

    from tests.support.engine import engine

    async def check() -> None:
        docker = await engine()
        await docker.close()

    anyio.run(check)


@pytest.fixture
def cli(tmp_path: Path, registries: dict[str, Registry], engine_up: None) -> Iterator[Cli]:
    """The demo repository and a CLI runner with its own image path."""
    repo = make_demo(tmp_path / "demo")
    prefix = f"{registries['none'].host}/t{uuid.uuid4().hex[:10]}"
    yield Cli(repo, prefix, tmp_path / "cache")
    images = _docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    mine = [i for i in images if i.startswith(prefix)]
    if mine:
        _docker("rmi", "-f", "--no-prune", *mine)


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.stdout, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def _json_of(out: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(out)
    return document


def _actions(document: dict[str, Any]) -> dict[str, str]:
    return {name: r["action"] for name, r in document["images"].items()}


def _tags(registry: Registry, spec: str) -> list[str]:
    host, _, rest = spec.partition("/")
    repo = rest.rsplit(":", 1)[0]
    response = httpx.get(f"http://{host}/v2/{repo}/tags/list", timeout=10)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return list(response.json().get("tags") or [])


def _local(spec: str) -> bool:
    return _docker("image", "inspect", spec).returncode == 0


def test_ensure_cold_then_warm(cli: Cli, registries: dict[str, Registry]) -> None:
    # (A remote with credentials in it: the source label must not carry them.)
    git(cli.repo, "remote", "add", "origin", "https://ci:s3cret@git.example.test/org/demo.git")
    cold = cli.run("ensure", "--all", "--json")
    assert cold.returncode == 0, cold.stderr
    first = _json(cold)
    assert _actions(first) == dict.fromkeys(ALL, "built")
    pushed = {name for name, r in first["images"].items() if r["pushed"]}
    assert pushed == PUBLISHED
    for name in ALL:
        spec = first["images"][name]["spec"]
        tag = spec.rsplit(":", 1)[1]
        assert (tag in _tags(registries["none"], spec)) == (name in PUBLISHED), name
        assert _local(spec)
    labels = json.loads(
        _docker(
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            first["images"]["demo-app"]["spec"],
        ).stdout
    )
    assert labels["io.mzbuild.fingerprint"] == first["images"]["demo-app"]["spec"].rsplit("-", 1)[1]
    assert labels["io.mzbuild.inputs-digest"].startswith("sha256:")
    assert labels["org.opencontainers.image.source"] == "https://git.example.test/org/demo"
    head = git(cli.repo, "rev-parse", "HEAD").strip()
    assert labels["org.opencontainers.image.revision"] == head

    warm = cli.run("ensure", "--all", "--json")
    assert warm.returncode == 0, warm.stderr
    second = _json(warm)
    assert _actions(second) == dict.fromkeys(ALL, "none")
    assert not any(r["pushed"] for r in second["images"].values())


def test_cargo_image_runs_and_prints(cli: Cli) -> None:
    result = cli.run("run", "demo-hello", "-q", "--", "ci")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from mzbuild_async, ci!"
    app = cli.run("run", "demo-app", "-q")
    assert app.returncode == 0, app.stderr
    assert app.stdout.split("\n")[:3] == ["tools v1", "lib v1", "hi DEV amd64"]


def test_acquire_pulls_only_what_the_target_needs(cli: Cli) -> None:
    first = _json(cli.run("ensure", "--all", "--json"))
    specs = {name: r["spec"] for name, r in first["images"].items()}
    removed = _docker("rmi", "-f", "--no-prune", *specs.values())
    assert removed.returncode == 0, removed.stderr
    result = cli.run("acquire", "demo-app", "--json")
    assert result.returncode == 0, result.stderr
    # The target is published: it is pulled and its dependencies are not needed at all.
    assert _actions(_json(result)) == {"demo-app": "pulled"}
    assert _local(specs["demo-app"])
    assert not _local(specs["demo-base"])
    assert not _local(specs["demo-lib"])
    report = cli.repo.parent / "again.json"
    again = _json(cli.run("acquire", "demo-app", "--json", "--report", str(report)))
    assert _actions(again) == {"demo-app": "none"}
    # A found target's dependencies are not even looked up: one lookup in all.
    tiers = json.loads(report.read_text())["lookups"]["tiers"]
    assert tiers["memory"]["count"] == 1, tiers


def test_an_edit_rebuilds_exactly_that_image_and_its_dependents(cli: Cli) -> None:
    assert cli.run("ensure", "--all").returncode == 0
    (cli.repo / "images" / "lib" / "lib.txt").write_text("lib v2\n")
    commit(cli.repo, "lib v2")
    result = cli.run("ensure", "--all", "--json")
    assert result.returncode == 0, result.stderr
    actions = _actions(_json(result))
    assert {n for n, a in actions.items() if a == "built"} == {"demo-lib", "demo-app"}
    assert {n for n, a in actions.items() if a != "built"} == ALL - {"demo-lib", "demo-app"}
    app = cli.run("run", "demo-app", "-q")
    assert app.stdout.split("\n")[1] == "lib v2"


def test_a_failed_build_skips_its_dependents_and_the_rest_goes_on(cli: Cli) -> None:
    dockerfile = cli.repo / "images" / "lib" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN exit 3\n")
    commit(cli.repo, "break lib")
    result = cli.run("ensure", "--all", "--json")
    assert result.returncode == 1
    document = _json(result)
    images = document["images"]
    assert images["demo-lib"]["action"] == "failed"
    assert "RUN exit 3" in images["demo-lib"]["error"]
    assert images["demo-app"]["action"] == "skipped"
    assert "demo-lib" in images["demo-app"]["error"]
    for name in ALL - {"demo-lib", "demo-app"}:
        assert images[name]["action"] == "built", name
    assert not document["ok"]
    assert not _tags_contain(images["demo-app"]["spec"])
    text = cli.run("ensure", "--all")
    assert text.returncode == 1
    assert "FAILED" in text.stdout
    # The failing step's last output lines follow its failure line.
    tail = [line for line in text.stderr.splitlines() if line.startswith("    demo-lib | ")]
    # (3 of the Dockerfile's steps, then one LABEL step per label the classic builder adds)
    # (the classic builder's "Step 3/3 : RUN", BuildKit's "[3/3] RUN")
    assert any(re.search(r"(Step 3/\d+ : |\[3/\d+\] )RUN exit 3", line) for line in tail), (
        text.stderr
    )
    assert "Traceback" not in text.stderr


def _tags_contain(spec: str) -> bool:
    host, _, rest = spec.partition("/")
    repo, tag = rest.rsplit(":", 1)
    response = httpx.head(f"http://{host}/v2/{repo}/manifests/{tag}", timeout=10)
    return response.status_code == 200


def test_build_force_rebuilds_the_target_only(cli: Cli) -> None:
    assert cli.run("ensure", "--all").returncode == 0
    result = cli.run("build", "demo-tools", "--force", "--json")
    assert result.returncode == 0, result.stderr
    # The dependency is needed locally (it is there), the target rebuilt regardless.
    assert _actions(_json(result)) == {"demo-base": "none", "demo-tools": "built"}


def test_a_cargo_error_names_the_crate(cli: Cli) -> None:
    main = cli.repo / "src" / "greeting" / "src" / "lib.rs"
    main.write_text(main.read_text().replace("format!", "formatt!"))
    commit(cli.repo, "break greeting")
    result = cli.run("acquire", "demo-hello", "demo-tools", "--json")
    assert result.returncode == 1
    images = _json(result)["images"]
    assert images["demo-hello"]["action"] == "failed"
    assert "crate greeting" in images["demo-hello"]["error"]
    assert "formatt" in images["demo-hello"]["error"]
    assert images["demo-tools"]["action"] == "built"


def test_two_processes_building_one_image_wait_for_each_other(cli: Cli) -> None:
    # Each slow step is unique (uuid): the engine keeps the layers of a RUN step
    # even when its client went away, so a repeated step would be a cache hit.
    dockerfile = cli.repo / "images" / "tools" / "Dockerfile"
    token = uuid.uuid4()
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {token} && sleep 2\n")
    commit(cli.repo, "slow tools")
    assert cli.run("acquire", "demo-base").returncode == 0
    first = cli.start("acquire", "demo-tools", "--json", "-v")
    second = cli.start("acquire", "demo-tools", "--json", "-v")
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    # Only one ran the Dockerfile: the other waited for the lock, then found
    # the image, and says so (not "built").
    stderr = [err for _out, err in outs]
    assert sum(f"RUN echo {token} && sleep 2" in err for err in stderr) == 1, stderr
    assert sum("built by another process" in err for err in stderr) == 1, stderr
    actions = sorted(_actions(_json_of(out))["demo-tools"] for out, _err in outs)
    assert actions == ["built", "built-elsewhere"]


def test_ctrl_c_cancels_and_pushes_nothing_unfinished(cli: Cli) -> None:
    dockerfile = cli.repo / "images" / "tools" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {uuid.uuid4()} && sleep 60\n")
    commit(cli.repo, "very slow tools")
    process = cli.start("ensure", "demo-app")
    assert process.stderr is not None
    deadline = time.monotonic() + 120
    for line in process.stderr:
        if "demo-tools: build start" in line:
            break
        assert time.monotonic() < deadline
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted" in err
    assert "Traceback" not in err
    leftovers = list(cli.tmp.glob("mzbuild-demo-tools-*"))
    assert not leftovers, "the staging directory of the cancelled build was left behind"
    for name in ("demo-tools", "demo-app"):
        spec = cli.run("spec", name).stdout.strip()
        assert not _tags_contain(spec), spec
        assert not _local(spec), spec


def test_no_engine_is_a_clear_error(cli: Cli) -> None:
    cli.env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    result = cli.run("ensure", "demo-base")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("mzbuild-async: error: the Docker engine could not be reached")
    assert "Traceback" not in result.stderr


def test_layer_cache_registry_is_written_and_used(
    cli: Cli, registries: dict[str, Registry]
) -> None:
    cache = f"{cli.registry}-cache"
    result = cli.run("ensure", "demo-tools", "--cache-registry", cache, "--json")
    assert result.returncode == 0, result.stderr
    assert "buildcache" in _tags(registries["none"], f"{cache}/demo-tools:buildcache")
    assert "buildcache" in _tags(registries["none"], f"{cache}/demo-base:buildcache")


def test_push_with_credentials(
    tmp_path: Path, registries: dict[str, Registry], engine_up: None
) -> None:
    registry = registries["htpasswd"]
    repo = make_demo(tmp_path / "demo")
    cli = Cli(
        repo,
        f"{registry.host}/t{uuid.uuid4().hex[:10]}",
        tmp_path / "cache",
        env={
            "MZBUILD_ASYNC_REGISTRY_USERNAME": USER,
            "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD,
            "DOCKER_CONFIG": str(tmp_path / "docker-config"),
        },
    )
    result = cli.run("ensure", "demo-base", "--json")
    assert result.returncode == 0, result.stderr
    assert _json(result)["images"]["demo-base"]["pushed"] is True
    assert PASSWORD not in result.stdout + result.stderr
    anonymous = Cli(
        repo, cli.registry, tmp_path / "cache2", env={"DOCKER_CONFIG": str(tmp_path / "dc")}
    )
    denied = anonymous.run("ensure", "demo-lib", "--json")
    assert denied.returncode == 1
    assert _json(denied)["images"]["demo-lib"]["action"] == "failed"


class _EngineProxy:
    """TCP on loopback to the engine's unix socket; :meth:`kill` drops it all."""

    def __init__(self, target: str = "/var/run/docker.sock") -> None:
        import socket
        import threading

        self.target = target
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.sockets: list[socket.socket] = [self.server]
        self.alive = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while self.alive:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            upstream.connect(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: Any, sink: Any) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()

    def kill(self) -> None:
        import socket

        self.alive = False
        for s in self.sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()


def test_an_engine_that_dies_mid_run_is_a_clear_error(cli: Cli) -> None:
    dockerfile = cli.repo / "images" / "tools" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"RUN echo {uuid.uuid4()} && sleep 30\n")
    commit(cli.repo, "slow tools")
    proxy = _EngineProxy()
    cli.env["DOCKER_HOST"] = f"tcp://127.0.0.1:{proxy.port}"
    process = cli.start("ensure", "demo-tools", "demo-hello")
    assert process.stderr is not None
    for line in process.stderr:
        if "demo-tools: build start" in line:
            break
    time.sleep(1.0)
    proxy.kill()
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 2, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("mzbuild-async: error: the Docker engine could not be reached"), err
    assert "Traceback" not in err
    spec = cli.run("spec", "demo-tools").stdout.strip()
    assert not _tags_contain(spec)


def test_plan_says_what_ensure_would_do_and_does_nothing(cli: Cli) -> None:
    before = cli.run("plan", "--all", "--json")
    assert before.returncode == 0, before.stderr
    images = _json(before)["images"]
    assert {n: i["action"] for n, i in images.items()} == {
        **dict.fromkeys(PUBLISHED, "build+push"),
        "demo-scratchpad": "build",
    }
    assert images["demo-scratchpad"]["published"] == "never (publish: false)"
    assert images["demo-app"]["dependencies"] == ["demo-lib", "demo-tools"]
    for name, image in images.items():
        assert image["spec"].endswith(f"{name}:mzbuild-{image['fingerprint']}")
        assert not _local(image["spec"])  # planning built nothing
        assert not _tags_contain(image["spec"])
    assert cli.run("ensure", "demo-tools").returncode == 0
    after = _json(cli.run("plan", "demo-app", "--json"))["images"]
    assert after["demo-app"]["action"] == "build+push"
    assert after["demo-tools"]["action"] == "none"
    assert after["demo-tools"]["published"] == "present"
    table = cli.run("plan", "demo-app", "--workflow", "acquire")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == [
        "IMAGE",
        "FINGERPRINT",
        "LOCAL",
        "PUBLISHED",
        "ACTION",
        "WHY",
    ]
    assert "plan (acquire): 4 images: 2 build, 2 none" in table.stdout
