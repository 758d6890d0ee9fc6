"""GitLab CI: a child pipeline (``.gitlab-ci.yml``), collapsible log sections."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import yaml

from ..model.steps import StepDecision
from ..pipeline.emit import Job, prepare_commands
from ..support.annotate import Annotation
from .protocol import ChangeBase, Produced

#: Job failures that are the runner's, not the build's: retried.
RUNNER_FAILURES = ("runner_system_failure", "stuck_or_timeout_failure", "api_failure")


#: GitLab.com's registry, and the job variables with credentials for it.
GITLAB_REGISTRY = ("registry.gitlab.com", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD")


class GitLabCi:
    """GitLab CI (``GITLAB_CI=true``)."""

    name = "gitlab"

    def detect(self, environ: Mapping[str, str]) -> bool:
        """Whether this runs as a GitLab CI job."""
        return environ.get("GITLAB_CI") == "true"

    async def affected_outputs(
        self,
        environ: Mapping[str, str],
        out: TextIO,
        affected: Sequence[str],
        decisions: Sequence[StepDecision] | None,
    ) -> None:
        """Nothing: GitLab takes the answer as a child pipeline (``--format gitlab``)
        or an artifact the job declares (``--json``)."""

    async def hand_over(self, environ: Mapping[str, str], produced: Produced) -> None:
        """Nothing: GitLab takes outputs as artifacts the pipeline declares (``--json``
        and ``--metadata-file`` are those)."""

    def run_id(self, environ: Mapping[str, str]) -> str:
        """The pipeline (a retried job keeps it)."""
        pipeline = environ.get("CI_PIPELINE_ID", "")
        return f"gitlab:{pipeline}" if pipeline else ""

    def change_base(self, environ: Mapping[str, str]) -> ChangeBase | None:
        """A merge request's pipeline, a merge train's too: GitLab's own merge-base
        (``CI_MERGE_REQUEST_DIFF_BASE_SHA``), else its target branch."""
        if environ.get("CI_MERGE_REQUEST_DIFF_BASE_SHA"):
            sha = environ["CI_MERGE_REQUEST_DIFF_BASE_SHA"]
            return ChangeBase("commit", sha, "CI_MERGE_REQUEST_DIFF_BASE_SHA")
        if environ.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
            branch = environ["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"]
            return ChangeBase("branch", branch, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
        return None

    def build_url(self, environ: Mapping[str, str]) -> str:
        """The job's page (``$CI_JOB_URL``)."""
        return environ.get("CI_JOB_URL", "")

    def affected(self, decisions: Sequence[StepDecision]) -> str | None:
        """A child pipeline of every step; a skipped one never runs (``rules: when:
        never``) and says why in its job's variables."""
        document: dict[str, Any] = {"stages": ["test"]}
        for d in decisions:
            job: dict[str, Any] = {
                "stage": "test",
                "script": [d.step.command or f"echo {json.dumps(d.step.key)}"],
            }
            if not d.run:
                job["rules"] = [{"when": "never"}]
                job["variables"] = {"MZBUILD_SKIPPED": d.reason}
            document[d.step.key] = job
        return yaml.safe_dump(document, sort_keys=False)

    def annotation(self, note: Annotation) -> str | None:
        """None: GitLab shows no problem on a line from a job log."""
        return None

    def fold(self, out: TextIO, title: str, lines: Sequence[str], *, failed: bool) -> None:
        """A collapsible section (open when it failed)."""
        section = re.sub(r"[^a-z0-9_]", "_", title.lower())[:50]
        now = int(time.time())
        collapsed = "false" if failed else "true"
        out.write(f"\x1b[0Ksection_start:{now}:{section}[collapsed={collapsed}]\r\x1b[0K{title}\n")
        out.writelines(f"{line}\n" for line in lines)
        out.write(f"\x1b[0Ksection_end:{int(time.time())}:{section}\r\x1b[0K\n")

    def summary_path(self, environ: Mapping[str, str]) -> str | None:
        """None: GitLab has no step summary."""
        return None

    def output_files(self, environ: Mapping[str, str]) -> Mapping[str, str]:
        """Nothing: GitLab takes nothing from a job but its log."""
        return {}

    def pipeline(self, jobs: Sequence[Job], *, jobs_only: bool = False) -> dict[str, Any]:
        """A child pipeline: one job per step, wired by ``needs``; a ``resource_group``
        keyed by the step's specs keeps two pipelines from building the same images at
        once; runner failures are retried; each job on runners with the ``--gitlab-tag``s
        and its arch's runner tag."""
        document: dict[str, Any] = {"stages": ["build"]}
        for job in jobs:
            settings = job.settings
            entry: dict[str, Any] = {
                "stage": "build",
                "script": [job.command],
                "needs": list(job.depends_on),
                "retry": {"max": 2, "when": list(RUNNER_FAILURES)},
            }
            if job.group:
                entry["resource_group"] = job.group
            tags = [*settings.tags, *([settings.runner] if settings.runner else [])]
            if tags:
                entry["tags"] = tags
            prepare = prepare_commands(settings, GITLAB_REGISTRY)
            if prepare:
                entry["before_script"] = prepare
            document[job.key] = entry
        if not jobs:  # (a pipeline needs a job; this one says there is nothing to do)
            document["nothing-to-build"] = {
                "stage": "build",
                "script": ["echo 'mzbuild-async: every image is published; nothing to build'"],
            }
        return document
