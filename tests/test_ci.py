"""The CI systems: each one module behind one protocol, each pipeline checked against
the schema its system publishes (shipped by check-jsonschema, read offline)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mzbuild_async.ci import NAMES, by_name, detect, pipeline_run
from mzbuild_async.ci import build_url as ci_build_url
from mzbuild_async.model.steps import Step, StepDecision
from mzbuild_async.pipeline.emit import Job, StepSettings, build_jobs
from mzbuild_async.pipeline.partition import Partition, partition

IMAGES = ["base", "lib", "hidden", "app", "tool"]
DEPS = {
    "base": set(),
    "lib": {"base"},
    "hidden": {"base"},
    "app": {"lib", "hidden"},
    "tool": {"lib"},
}
SECONDS = dict.fromkeys(IMAGES, 30.0)
SPECS = {n: f"reg.test/{n}:mzbuild-{n.upper()}" for n in IMAGES}
SCHEMAS = {
    "azure": "azure-pipelines",
    "buildkite": "buildkite",
    "github": "github-workflows",
    "gitlab": "gitlab-ci",
}


def _jobs(
    cut: Partition, settings: StepSettings, fingerprints: dict[str, str] | None = None
) -> list[Job]:
    return build_jobs(cut, SPECS, fingerprints or {}, settings)


def _cut() -> Partition:
    return partition(IMAGES, DEPS, SECONDS, sticky={"hidden"}, agents=3, startup=0.0, jobs=1)


def _check(document: object, schema: str, tmp_path: Path) -> None:
    path = tmp_path / f"{schema}.yml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    closed = "http://127.0.0.1:9"  # (offline: a schema must not be fetched)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            f"vendor.{schema}",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HTTPS_PROXY": closed, "HTTP_PROXY": closed},
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("name", NAMES)
def test_every_system_writes_a_pipeline_its_schema_accepts(name: str, tmp_path: Path) -> None:
    cut = _cut()
    assert len(cut.steps) > 1
    settings = StepSettings(
        program="mzbuild-async",
        flags=("--image-registry", "reg.test"),
        tags=("docker",),
        demands=("docker",),
    )
    document = by_name(name).pipeline(_jobs(cut, settings, {n: n.upper() for n in IMAGES}))
    _check(document, SCHEMAS[name], tmp_path)
    empty = by_name(name).pipeline([])
    _check(empty, SCHEMAS[name], tmp_path)


def test_azure_jobs_wait_for_each_other_and_demand_the_tags() -> None:
    cut = _cut()
    document = by_name("azure").pipeline(_jobs(cut, StepSettings(demands=("docker",))))
    jobs = {job["job"]: job for job in document["jobs"]}
    assert len(jobs) == len(cut.steps)
    for step in cut.steps:
        job = jobs[step.key.replace("-", "_")]
        assert job["dependsOn"] == [d.replace("-", "_") for d in step.depends_on]
        assert all(d in jobs for d in job["dependsOn"])
        assert job["pool"] == {"demands": ["docker"]}
        run = job["steps"][-1]
        assert f"--step {step.key}" in run["script"]
        assert run["retryCountOnTaskFailure"] == "2"
    assert by_name("azure").pipeline(_jobs(cut, StepSettings()), jobs_only=True).keys() == {"jobs"}


def test_gitlab_jobs_wait_retry_and_hold_a_resource_group() -> None:
    cut = _cut()
    document = by_name("gitlab").pipeline(_jobs(cut, StepSettings(tags=("docker",))))
    for step in cut.steps:
        job = document[step.key]
        assert job["needs"] == list(step.depends_on)
        assert job["resource_group"].startswith("mzbuild-async/")
        assert "runner_system_failure" in job["retry"]["when"]
        assert job["tags"] == ["docker"]
        assert f"--step {step.key}" in job["script"][0]


@pytest.mark.parametrize(
    ("environ", "system", "run"),
    [
        pytest.param(
            {"BUILDKITE": "true", "BUILDKITE_BUILD_ID": "b"}, "buildkite", "buildkite:b", id="bk"
        ),
        pytest.param(
            {"GITHUB_ACTIONS": "true", "GITHUB_RUN_ID": "7", "GITHUB_RUN_ATTEMPT": "2"},
            "github",
            "github:7.2",
            id="gh",
        ),
        pytest.param({"GITLAB_CI": "true", "CI_PIPELINE_ID": "42"}, "gitlab", "gitlab:42", id="gl"),
        pytest.param({"TF_BUILD": "True", "BUILD_BUILDID": "7"}, "azure", "azure:7", id="az"),
        pytest.param({}, None, "", id="none"),
    ],
)
def test_detection_and_the_pipeline_run(
    environ: dict[str, str], system: str | None, run: str
) -> None:
    found = detect(environ)
    assert (found.name if found else None) == system
    assert pipeline_run(environ) == run


def test_only_github_takes_a_step_summary() -> None:
    environ = {"GITHUB_STEP_SUMMARY": "/tmp/summary.md"}
    assert by_name("github").summary_path(environ) == "/tmp/summary.md"
    assert by_name("buildkite").summary_path(environ) is None
    assert by_name("gitlab").summary_path(environ) is None


def test_the_parser_knows_every_system_without_loading_one() -> None:
    code = (
        "import sys\n"
        "from mzbuild_async.cli.parser import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in sys.modules if m.startswith('mzbuild_async.ci.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_text = subprocess.run(
        [sys.executable, "-m", "mzbuild_async", "pipeline", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "{azure,buildkite,github,gitlab}" in help_text


def test_ci_build_urls() -> None:
    """Each CI system's page of the run, the detected system's first."""
    assert ci_build_url({"BUILDKITE_BUILD_URL": "https://bk.test/b/1"}) == "https://bk.test/b/1"
    github = {
        "GITHUB_SERVER_URL": "https://gh.test",
        "GITHUB_REPOSITORY": "org/repo",
        "GITHUB_RUN_ID": "99",
    }
    assert ci_build_url(github) == "https://gh.test/org/repo/actions/runs/99"
    assert ci_build_url({"CI_JOB_URL": "https://gl.test/j/5"}) == "https://gl.test/j/5"
    assert ci_build_url({}) == ""
    azure = {
        "TF_BUILD": "True",
        "SYSTEM_COLLECTIONURI": "https://dev.test/org/",
        "SYSTEM_TEAMPROJECT": "proj",
        "BUILD_BUILDID": "12",
        "CI_JOB_URL": "https://gl.test/j/5",  # (not GitLab's job: Azure is detected)
    }
    assert ci_build_url(azure) == "https://dev.test/org/proj/_build/results?buildId=12"


DECISIONS = [
    StepDecision(Step("app-tests", ":rocket: app tests", command="make test-app"), True, "app"),
    StepDecision(Step("docs", "docs"), False, "nothing it uses (docs/*) changed since " + "x" * 80),
]


@pytest.mark.parametrize("name", ["azure", "buildkite", "gitlab"])
def test_affected_documents_are_pipelines_their_schema_accepts(name: str, tmp_path: Path) -> None:
    """``affected --format NAME``: every step, the skipped ones marked so, as a pipeline
    the system's published schema accepts."""
    text = by_name(name).affected(DECISIONS)
    assert text is not None
    document = yaml.safe_load(text)
    _check(document, SCHEMAS[name], tmp_path)
    if name == "gitlab":
        assert document["docs"]["rules"] == [{"when": "never"}]
        assert "rules" not in document["app-tests"]
        assert document["app-tests"]["script"] == ["make test-app"]
    elif name == "azure":
        jobs = {job["job"]: job for job in document["jobs"]}
        assert jobs["docs"]["condition"] == "false"
        assert "condition" not in jobs["app_tests"]
    else:
        skips = {step["key"]: step.get("skip") for step in document["steps"]}
        assert skips["app-tests"] is None
        assert len(skips["docs"]) == 70


def test_the_github_affected_document_is_a_matrix_of_the_steps_to_run() -> None:
    text = by_name("github").affected(DECISIONS)
    assert text is not None
    assert json.loads(text) == {
        "include": [{"key": "app-tests", "label": ":rocket: app tests", "command": "make test-app"}]
    }
