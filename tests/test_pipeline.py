"""``pipeline``: Buildkite, GitHub Actions and GitLab CI pipelines, checked; Buildkite's
executed for real.

The emitted YAML is validated against the published schemas that
``check-jsonschema`` ships (offline). Then a small runner executes a
Buildkite pipeline the way Buildkite would: each step as its own process
with its own Docker engine (the main one and the extra ``dockerd``s), all
against one registry, honouring ``depends_on`` and ``concurrency_group``;
in dependency order, and all at once (so steps await parents in the
registry).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import uuid
from collections import Counter
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.conftest import git
from tests.support.demo import Cli
from tests.support.pool import Sleepy, engines, make_sleepy_repo
from tests.support.registry import Registry

# (the extra engines are shared: their tests run on one worker, in turn)
pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("engines")]

WIDE = [
    Sleepy("base", (), 1),
    *(Sleepy(f"lib{i}", ("base",), 1) for i in range(4)),
    Sleepy("hidden", ("base",), 1, publish=False),
    Sleepy("app", ("lib0", "lib1", "hidden"), 1),
    Sleepy("tool", ("lib2", "lib3"), 1),
]
PROGRAM = f"{sys.executable} -m mzbuild_async"


def _schema(name: str) -> dict[str, Any]:
    text = files("check_jsonschema.builtin_schemas.vendor").joinpath(f"{name}.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _pipeline(cli: Cli, *flags: str) -> tuple[str, str]:
    result = cli.run("pipeline", "--all", "--program", PROGRAM, *flags)
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


def _fingerprints(cli: Cli) -> dict[str, str]:
    document: dict[str, Any] = json.loads(cli.run("fingerprint", "--all", "--json").stdout)
    return {name: str(value) for name, value in document.items()}


def _ensure(step: dict[str, Any]) -> str:
    """A Buildkite step's own command (its last; install and logins come first)."""
    return str(step.get("command") or step["commands"][-1])


def _only(command: str) -> dict[str, str]:
    words = shlex.split(command)
    return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "--only")


@pytest.fixture
def cli(tmp_path: Path, registries: dict[str, Registry]) -> Cli:
    repo = make_sleepy_repo(tmp_path / "repo", WIDE)
    return Cli(repo, f"{registries['none'].host}/pipe", tmp_path / "cache")


def test_pipelines_validate_against_the_published_schemas(cli: Cli) -> None:
    fingerprints = _fingerprints(cli)
    small = ("--max-step-seconds", "20", "--startup", "0")
    text, _ = _pipeline(cli, *small)
    buildkite = yaml.safe_load(text)
    jsonschema.Draft7Validator(_schema("buildkite")).validate(buildkite)
    steps = buildkite["steps"]
    assert len(steps) > 1
    # Every image in exactly one step, with the fingerprint of this checkout.
    owned = [_only(_ensure(s)) for s in steps]
    assert Counter(n for o in owned for n in o) == Counter(dict.fromkeys(fingerprints, 1))
    assert {n: fp for o in owned for n, fp in o.items()} == fingerprints
    step_of = {n: s["key"] for s, o in zip(steps, owned, strict=True) for n in o}
    deps = {s.name: set(s.parents) for s in WIDE}
    for step, own in zip(steps, owned, strict=True):
        awaited = {step_of[d] for n in own for d in deps[n]} - {step["key"]}
        assert set(step.get("depends_on") or []) == awaited
        assert step["concurrency"] == 1
        assert step["concurrency_group"].startswith("mzbuild-async/")
        assert step["agents"] == {"queue": "builder-x86_64"}
        assert {r["exit_status"] for r in step["retry"]["automatic"]} == {-1, 255}
    # publish: false images share the step of what needs them.
    assert step_of["hidden"] == step_of["app"]
    # GitHub Actions: a reusable workflow, and its jobs alone.
    text, _ = _pipeline(cli, *small, "--format", "github")
    (cli.repo.parent / "workflow.yml").write_text(text)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(cli.repo.parent / "workflow.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    workflow = yaml.safe_load(text)
    jobs = workflow["jobs"]
    assert set(jobs) == {s["key"] for s in steps}
    for step in steps:
        assert set(jobs[step["key"]].get("needs", [])) == set(step.get("depends_on") or [])
        assert jobs[step["key"]]["concurrency"]["group"] == step["concurrency_group"]
    text, _ = _pipeline(cli, *small, "--format", "github", "--jobs-only")
    assert set(yaml.safe_load(text)) == {"jobs"}
    # GitLab CI: a child pipeline, the same steps wired by needs, checked by its schema.
    text, _ = _pipeline(cli, *small, "--format", "gitlab", "--gitlab-tag", "docker")
    (cli.repo.parent / "gitlab-ci.yml").write_text(text)
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci",
         str(cli.repo.parent / "gitlab-ci.yml")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
    )  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    child = yaml.safe_load(text)
    for step in steps:
        job = child[step["key"]]
        assert set(job["needs"]) == set(step.get("depends_on") or [])
        assert job["resource_group"] == step["concurrency_group"]
        assert job["tags"] == ["docker"]


def _run_step(
    step: dict[str, Any], cwd: Path, env: dict[str, str], cache: Path, out: dict[str, Any]
) -> None:
    result = subprocess.run(
        [*shlex.split(_ensure(step)), "--json", "--cache-dir", str(cache)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    out[step["key"]] = result


class Runner:
    """Runs a Buildkite pipeline's steps as Buildkite would, on several engines."""

    def __init__(self, cli: Cli, hosts: list[dict[str, str]], tmp: Path) -> None:
        self.cli, self.hosts, self.tmp = cli, hosts, tmp
        self.groups: dict[str, threading.Lock] = {}

    def environ(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in self.cli.environ().items() if not k.startswith("DOCKER_")}
        return {**env, **self.hosts[index % len(self.hosts)]}

    def run(self, steps: list[dict[str, Any]], *, all_at_once: bool) -> dict[str, Any]:
        results: dict[str, Any] = {}
        threads: dict[str, threading.Thread] = {}

        def one(i: int, step: dict[str, Any]) -> None:
            if not all_at_once:
                for key in step.get("depends_on") or []:
                    threads[key].join()
                    if results[key].returncode != 0:  # Buildkite: dependents do not run
                        results[step["key"]] = None
                        return
            group = step.get("concurrency_group") or step["key"]
            lock = self.groups.setdefault(group, threading.Lock())
            with lock:  # concurrency: 1 per concurrency_group
                _run_step(step, self.cli.repo, self.environ(i), self.tmp / f"c{i}", results)

        for i, step in enumerate(steps):
            threads[step["key"]] = threading.Thread(target=one, args=(i, step))
        for thread in threads.values():
            thread.start()
        for thread in threads.values():
            thread.join()
        return results


def _built(results: dict[str, Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for result in results.values():
        if result is not None and result.stdout:
            for name, image in json.loads(result.stdout)["images"].items():
                if image["action"] == "built":
                    counts[name] += 1
    return counts


def test_a_pipeline_runs_on_several_engines_and_builds_each_image_once(
    cli: Cli, tmp_path: Path
) -> None:
    env = engines("e2", "e4")
    hosts = [{}, {"DOCKER_HOST": env["E2"]}, {"DOCKER_HOST": env["E4"]}]
    fingerprints = _fingerprints(cli)
    text, _ = _pipeline(cli, "--max-step-seconds", "20", "--startup", "0")
    steps = yaml.safe_load(text)["steps"]
    assert len(steps) >= 3
    runner = Runner(cli, hosts, tmp_path)
    results = runner.run(steps, all_at_once=False)
    assert all(r.returncode == 0 for r in results.values()), {
        k: r.stderr[-2000:] for k, r in results.items() if r.returncode
    }
    assert _built(results) == Counter(dict.fromkeys(fingerprints, 1))
    # The same fingerprints as one `ensure --all` computes; everything published.
    planned = json.loads(cli.run("plan", "--all", "--json").stdout)["images"]
    assert {n: i["fingerprint"] for n, i in planned.items()} == fingerprints
    assert all(i["published"] in ("present", "never (publish: false)") for i in planned.values())
    # Re-running the pipeline: nothing to build, no step.
    text, err = _pipeline(cli)
    assert yaml.safe_load(text)["steps"] == []
    assert "nothing to build" in err


def test_steps_started_all_at_once_await_each_other_in_the_registry(
    cli: Cli, tmp_path: Path
) -> None:
    env = engines("e2", "e4")
    hosts = [{}, {"DOCKER_HOST": env["E2"]}, {"DOCKER_HOST": env["E4"]}]
    text, _ = _pipeline(cli, "--max-step-seconds", "20", "--startup", "0")
    steps = yaml.safe_load(text)["steps"]
    results = Runner(cli, hosts, tmp_path).run(steps, all_at_once=True)
    assert all(r.returncode == 0 for r in results.values()), {
        k: r.stderr[-2000:] for k, r in results.items() if r.returncode
    }
    assert _built(results) == Counter({s.name: 1 for s in WIDE})
    waited = [
        i
        for r in results.values()
        for i in json.loads(r.stdout)["images"].values()
        if "awaited_seconds" in i
    ]
    assert waited  # some step did wait for another's images


def test_two_pipelines_at_once_share_concurrency_groups(cli: Cli, tmp_path: Path) -> None:
    """Two pipelines of one commit, run together: their concurrency groups make each
    image built once."""
    env = engines("e2", "e4")
    hosts = [{}, {"DOCKER_HOST": env["E2"]}, {"DOCKER_HOST": env["E4"]}]
    text, _ = _pipeline(cli, "--max-step-seconds", "20", "--startup", "0")
    steps = yaml.safe_load(text)["steps"]
    runner = Runner(cli, hosts, tmp_path)  # one runner: its locks are the groups
    results: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda: results.append(runner.run(steps, all_at_once=False)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    built = _built(results[0]) + _built(results[1])
    assert built == Counter({s.name: 1 for s in WIDE})


def test_a_failed_step_stops_its_dependents_with_one_line(cli: Cli, tmp_path: Path) -> None:
    """All steps at once, base broken: its step leaves a failure marker in the registry;
    the steps awaiting base (or what needs it) stop at once, naming the failed step."""
    broken = cli.repo / "images" / "base" / "Dockerfile"
    broken.write_text(broken.read_text() + 'RUN ["/bin/busybox", "sh", "-c", "exit 3"]\n')
    git(cli.repo, "commit", "-qam", "break base")
    text, _ = _pipeline(cli, "--max-step-seconds", "20", "--startup", "0", "--wait", "600")
    steps = yaml.safe_load(text)["steps"]
    results = Runner(cli, [{}], tmp_path).run(steps, all_at_once=True)
    first = next(r for r in results.values() if "base" in json.loads(r.stdout)["images"])
    assert json.loads(first.stdout)["images"]["base"]["action"] == "failed"
    for key, result in results.items():
        images = json.loads(result.stdout)["images"]
        if "base" not in images or images["base"]["action"] != "failed":
            # A step that awaited base (or what needs it) stopped at once (not after
            # --wait), naming the image and the failed step.
            errors = [i.get("error", "") for i in images.values()]
            assert any("the step that builds it failed (step build-" in e for e in errors), key
            assert result.returncode == 1
    assert max(json.loads(r.stdout)["seconds"] for r in results.values()) < 300
    # Fixed and re-run (a new commit, new fingerprints): the pipeline completes.
    git(cli.repo, "revert", "--no-edit", "HEAD")
    text, _ = _pipeline(cli, "--max-step-seconds", "20", "--startup", "0")
    again = Runner(cli, [{}], tmp_path / "again").run(
        yaml.safe_load(text)["steps"], all_at_once=True
    )
    assert all(r.returncode == 0 for r in again.values())
    assert _built(again) == Counter({s.name: 1 for s in WIDE})


def test_a_pipeline_for_any_commit_covers_every_image_without_fingerprints(cli: Cli) -> None:
    """--any-commit (a workflow kept in the repository): every image in a step, even the
    published ones, and no fingerprint pinned to this commit."""
    built = cli.run("ensure", "base")  # one image published already
    assert built.returncode == 0, built.stderr
    text, _ = _pipeline(cli, "--format", "github", "--any-commit", "--max-step-seconds", "20")
    workflow = yaml.safe_load(text)
    jsonschema.Draft7Validator(_schema("github-workflows")).validate(
        {**workflow, "on": workflow[True]} if True in workflow else workflow
    )
    commands = [s["run"] for j in workflow["jobs"].values() for s in j["steps"] if "run" in s]
    words = [w for c in commands for w in shlex.split(c)]
    only = [words[i + 1] for i, w in enumerate(words) if w == "--only"]
    assert sorted(only) == sorted(s.name for s in WIDE)  # base too; bare names, no =FP


def test_bad_pipeline_numbers_are_one_line(cli: Cli) -> None:
    for flags in (
        ("--step-jobs", "0"),
        ("--agents", "0"),
        ("--startup", "-1"),
        ("--max-step-seconds", "nan"),
    ):
        result = cli.run("pipeline", "--all", *flags)
        assert result.returncode == 2, flags
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert flags[0] in lines[0]
        assert "Traceback" not in result.stderr


def test_attestation_flags_reach_every_step(cli: Cli, tmp_path: Path) -> None:
    """--attest, --require-attested and --sign-key's path (never the key) in each step."""
    key = tmp_path / "sign.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot-read-here\n-----END PRIVATE KEY-----\n")
    text, _ = _pipeline(cli, "--format", "github", "--require-attested", "--sign-key", str(key))
    workflow = yaml.safe_load(text)
    commands = [
        s["run"]
        for j in workflow["jobs"].values()
        for s in j["steps"]
        if "run" in s and not s.get("name")
    ]
    assert commands
    for command in commands:
        words = shlex.split(command)
        assert "--require-attested" in words
        assert words[words.index("--sign-key") + 1] == str(key)
    assert "not-read-here" not in text


@pytest.mark.parametrize(
    "url",
    [
        "http://otel:s3cr3t-value@127.0.0.1:4318",
        "https://127.0.0.1:4318/v1/traces?api_key=s3cr3t-value",
    ],
)
def test_otlp_credentials_never_go_into_the_pipeline(cli: Cli, url: str) -> None:
    """An --otlp URL with credentials would be in clear in every step: refused in one
    line that does not show them; a plain URL goes to every step, and the headers
    the agents need come from their own environment (never the file)."""
    result = cli.run("pipeline", "--all", "--format", "github", "--otlp", url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "s3cr3t-value" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "carries credentials" in lines[0]
    assert "OTEL_EXPORTER_OTLP_HEADERS" in lines[0]
    cli.env["OTEL_EXPORTER_OTLP_HEADERS"] = "Authorization=Basic%20s3cr3t-value"
    text, _ = _pipeline(cli, "--format", "github", "--otlp", "http://127.0.0.1:9")
    assert "s3cr3t-value" not in text
    jobs = yaml.safe_load(text)["jobs"].values()
    commands = [s["run"] for j in jobs for s in j["steps"] if " ensure " in s.get("run", "")]
    assert commands
    assert all("--otlp http://127.0.0.1:9" in c for c in commands)


def test_a_pipelines_steps_on_several_engines_are_one_trace(cli: Cli, tmp_path: Path) -> None:
    """The pipeline's root span and every step's spans, sent by separate processes on
    separate engines, arrive at a real OTLP receiver as one trace: each step's run
    under the pipeline's root, every span's parent among them."""
    from mzbuild_async.ci import pipeline_run
    from mzbuild_async.support.tracecontext import for_run
    from tests.support.otlp import receiver

    env = engines("e2", "e4")
    hosts = [{}, {"DOCKER_HOST": env["E2"]}, {"DOCKER_HOST": env["E4"]}]
    build = {"BUILDKITE": "true", "BUILDKITE_BUILD_ID": f"b-{tmp_path.name}"}
    with receiver() as otlp:
        cli.env.update({**build, "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url})
        text, _ = _pipeline(cli, "--max-step-seconds", "20", "--startup", "0")
        steps = yaml.safe_load(text)["steps"]
        trace = for_run(pipeline_run(build))
        assert len(steps) >= 3
        assert all(f"TRACEPARENT={trace.header()}" in _ensure(s) for s in steps)
        results = Runner(cli, hosts, tmp_path).run(steps, all_at_once=False)
        assert all(r.returncode == 0 for r in results.values()), {
            k: r.stderr[-2000:] for k, r in results.items() if r.returncode
        }
    traces = otlp.traces()
    assert list(traces) == [f"{trace.trace_id:032x}"]
    spans = traces[f"{trace.trace_id:032x}"]
    (root,) = [s for s in spans if s.name == "mzbuild-async pipeline"]
    assert root.span_id == f"{trace.span_id:016x}"
    assert root.parent_id == ""
    runs = [s for s in spans if s.name == "mzbuild-async ensure"]
    assert len(runs) == len(steps)
    assert all(r.parent_id == root.span_id for r in runs)
    assert {r.attributes["mzbuild.step"] for r in runs} == {s["key"] for s in steps}
    ids = {s.span_id for s in spans}
    assert all(s.parent_id in ids for s in spans if s is not root)
    # Separate processes (one per step, and the pipeline's).
    assert otlp.requests == len(steps) + 1
    builds = [s for s in spans if s.name.startswith("build ")]
    assert {b.attributes["mzbuild.image"] for b in builds} == {s.name for s in WIDE}
    # The timeline page draws the whole trace from the collected OTLP JSON: a group
    # of lanes per step, every image's build in it.
    from mzbuild_async.report.traceview import page, read_otlp_json

    drawn = page(read_otlp_json(otlp.json_lines))
    for step in steps:
        assert f'data-engine="{step["key"]}">step {step["key"]}</div>' in drawn
    assert drawn.count('data-phase="build"') == len(builds)
    (tmp_path / "trace.jsonl").write_text("\n".join(otlp.json_lines) + "\n")


def _check_jsonschema(path: Path, schema: str) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_steps_install_and_log_in_as_generated(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """Each system's steps install mzbuild-async (this version, unless --install) and log
    in to the registry with the named secrets (never their values), or with the
    system's own credentials for its own registry; each document passes its vendor's
    schema, and the login line a shell system runs logs in for real."""
    from mzbuild_async.support.version import VERSION
    from tests.support.registry import PASSWORD, USER

    registry = registries["htpasswd"]
    repo = make_sleepy_repo(tmp_path / "repo", WIDE)
    cli = Cli(repo, f"{registry.host}/login", tmp_path / "cache")
    cli.env.update(
        {"MZBUILD_ASYNC_REGISTRY_USERNAME": USER, "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD}
    )
    login = ("--login", "REG_USER:REG_TOKEN", "--keyless")
    github = yaml.safe_load(_pipeline(cli, "--format", "github", *login)[0])
    (tmp_path / "github.yml").write_text(yaml.safe_dump(github))
    _check_jsonschema(tmp_path / "github.yml", "vendor.github-workflows")
    for job in github["jobs"].values():
        assert job["permissions"] == {
            "contents": "read", "packages": "write", "id-token": "write"
        }  # fmt: skip
        install, log_in = job["steps"][1:3]
        assert install["run"] == f"python3 -m pip install --quiet mzbuild-async=={VERSION}"
        assert log_in["uses"] == "docker/login-action@v3"
        assert log_in["with"] == {
            "registry": registry.host,
            "username": "${{ secrets.REG_USER }}",
            "password": "${{ secrets.REG_TOKEN }}",
        }
    gitlab = yaml.safe_load(_pipeline(cli, "--format", "gitlab", *login, "--install", "none")[0])
    (tmp_path / "gitlab.yml").write_text(yaml.safe_dump(gitlab))
    _check_jsonschema(tmp_path / "gitlab.yml", "vendor.gitlab-ci")
    jobs = [j for k, j in gitlab.items() if k != "stages"]
    assert jobs
    (line,) = {tuple(j["before_script"]) for j in jobs}
    assert line == (f'printf %s "$REG_TOKEN" | docker login {registry.host} -u "$REG_USER"'
                    " --password-stdin",)  # fmt: skip
    # The login line, run by a shell as the runner would: it logs in.
    config = tmp_path / "docker-config"
    ran = subprocess.run(
        ["sh", "-c", line[0]], capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "REG_USER": USER, "REG_TOKEN": PASSWORD, "DOCKER_CONFIG": str(config)},
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "Login Succeeded" in ran.stdout
    assert PASSWORD not in json.dumps(gitlab)
    buildkite = yaml.safe_load(_pipeline(cli, *login)[0])
    jsonschema.Draft7Validator(_schema("buildkite")).validate(buildkite)
    for step in buildkite["steps"]:
        assert step["commands"][0].startswith("python3 -m pip install --quiet mzbuild-async==")
        assert step["commands"][1] == line[0]
    azure = yaml.safe_load(_pipeline(cli, "--format", "azure", *login)[0])
    (tmp_path / "azure.yml").write_text(yaml.safe_dump(azure))
    _check_jsonschema(tmp_path / "azure.yml", "vendor.azure-pipelines")
    for job in azure["jobs"]:
        setup = job["steps"][1]
        assert setup["env"] == {"REG_USER": "$(REG_USER)", "REG_TOKEN": "$(REG_TOKEN)"}
        assert line[0] in setup["script"]
    bad = cli.run("pipeline", "--all", "--login", "user-only")
    assert bad.returncode == 2
    assert "pipeline --login user-only: give USER:PASSWORD" in bad.stderr


def _copy_only_repo(dest: Path) -> Path:
    """Images with no ``RUN`` (FROM scratch, COPY): any arch builds on this engine."""
    token = uuid.uuid4().hex
    for name, parent in (("base", None), ("app", "base"), ("tool", "base")):
        directory = dest / "images" / name
        directory.mkdir(parents=True)
        (directory / "mzbuild.yml").write_text(f"name: {name}\n")
        (directory / f"{name}.txt").write_text(f"{name} {token}\n")
        start = f"MZFROM {parent}" if parent else "FROM scratch"
        (directory / "Dockerfile").write_text(f"{start}\nCOPY {name}.txt /{name}.txt\n")
    git(dest, "init", "-q", "-b", "main")
    git(dest, "add", "-A")
    git(dest, "commit", "-q", "-m", "copy only")
    return dest


def test_a_runner_per_arch_then_one_job_merges_them_into_an_index(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """``--arch-runner`` per arch: each arch's builds are its own jobs (on its runner),
    then one job runs ``promote`` over every arch; run as Buildkite would, the index
    skopeo reads points at each arch's build; GitHub's document passes its schema."""
    from tests.support.skopeo import digest_of, raw_manifest

    repo = _copy_only_repo(tmp_path / "repo")
    cli = Cli(repo, f"{registries['none'].host}/arch{uuid.uuid4().hex[:8]}", tmp_path / "cache")
    arches = ("--arch-runner", "x86_64=amd-pool", "--arch-runner", "aarch64=arm-pool")
    flags = (*arches, "--index-tag", "v1.0", "--install", "none")
    steps = yaml.safe_load(_pipeline(cli, *flags)[0])["steps"]
    jsonschema.Draft7Validator(_schema("buildkite")).validate({"steps": steps})
    *builds, index = steps
    assert {s["agents"]["queue"] for s in builds} == {"amd-pool", "arm-pool"}
    assert all(s["key"].startswith(("x86_64-", "aarch64-")) for s in builds)
    assert index["key"] == "index"
    assert set(index["depends_on"]) == {s["key"] for s in builds}
    words = shlex.split(_ensure(index))
    assert words[: words.index("promote")] == shlex.split(PROGRAM)
    assert [words[i + 1] for i, w in enumerate(words) if w == "--arch"] == ["x86_64", "aarch64"]
    assert words[-4:] == ["v1.0", "app", "base", "tool"]

    results = Runner(cli, [{}], tmp_path).run(steps, all_at_once=False)
    assert all(r is not None and r.returncode == 0 for r in results.values()), {
        k: (r.stderr[-2000:] if r else None) for k, r in results.items()
    }
    for name in ("base", "app", "tool"):
        released = cli.run("spec", name).stdout.strip().rsplit(":", 1)[0] + ":v1.0"
        manifest = json.loads(raw_manifest(released))
        by_arch = {m["platform"]["architecture"]: m["digest"] for m in manifest["manifests"]}
        assert by_arch == {
            "amd64": digest_of(cli.run("spec", name, "--arch", "x86_64").stdout.strip()),
            "arm64": digest_of(cli.run("spec", name, "--arch", "aarch64").stdout.strip()),
        }, name

    github = yaml.safe_load(_pipeline(cli, *flags, "--format", "github", "--any-commit")[0])
    (tmp_path / "github.yml").write_text(yaml.safe_dump(github))
    _check_jsonschema(tmp_path / "github.yml", "vendor.github-workflows")
    jobs = github["jobs"]
    assert {j["runs-on"] for k, j in jobs.items() if k != "index"} == {"amd-pool", "arm-pool"}
    assert set(jobs["index"]["needs"]) == set(jobs) - {"index"}
    missing = cli.run("pipeline", "--all", *arches)
    assert missing.returncode == 2
    assert "give --index-tag TAG" in missing.stderr
    bad = cli.run("pipeline", "--all", "--arch-runner", "sparc=big", "--index-tag", "v1")
    assert bad.returncode == 2
    assert "pipeline --arch-runner sparc=big: give ARCH=RUNNER" in bad.stderr
