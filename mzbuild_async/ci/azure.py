"""Azure Pipelines: a pipeline of jobs wired by ``dependsOn``, ``##[group]`` log groups."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import yaml

from ..model.steps import StepDecision
from ..pipeline.emit import Job, StepSettings, prepare_commands
from ..support.annotate import Annotation
from .protocol import ChangeBase, Produced

#: Times a step is run again when its task failed (an agent lost, a network blip).
RETRIES = 2


def job_name(key: str) -> str:
    """A step's key as an Azure job name (letters, digits and ``_`` only)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", key)


class AzurePipelines:
    """Azure Pipelines (``TF_BUILD=True``)."""

    name = "azure"

    def detect(self, environ: Mapping[str, str]) -> bool:
        """Whether this runs as an Azure Pipelines job."""
        return environ.get("TF_BUILD", "").lower() == "true"

    def run_id(self, environ: Mapping[str, str]) -> str:
        """The build (a re-run of failed jobs keeps it)."""
        build = environ.get("BUILD_BUILDID", "")
        return f"azure:{build}" if build else ""

    def change_base(self, environ: Mapping[str, str]) -> ChangeBase | None:
        """A pull request's build: its target branch (``SYSTEM_PULLREQUEST_TARGETBRANCH``,
        ``refs/heads/`` dropped)."""
        target = environ.get("SYSTEM_PULLREQUEST_TARGETBRANCH", "")
        if target:
            branch = target.removeprefix("refs/heads/")
            return ChangeBase("branch", branch, "SYSTEM_PULLREQUEST_TARGETBRANCH")
        return None

    def build_url(self, environ: Mapping[str, str]) -> str:
        """The build's results page."""
        server = environ.get("SYSTEM_COLLECTIONURI", "")  # (ends with /)
        project, build = environ.get("SYSTEM_TEAMPROJECT", ""), environ.get("BUILD_BUILDID", "")
        if server and project and build:
            return f"{server.rstrip('/')}/{project}/_build/results?buildId={build}"
        return ""

    def affected(self, decisions: Sequence[StepDecision]) -> str | None:
        """A pipeline of every step as a job; a skipped one has ``condition: false``
        and says why in its display name."""
        jobs: list[dict[str, Any]] = []
        for d in decisions:
            job: dict[str, Any] = {
                "job": job_name(d.step.key),
                "displayName": d.step.label if d.run else f"{d.step.label} (skipped: {d.reason})",
                "steps": [{"script": d.step.command or f"echo {json.dumps(d.step.key)}"}],
            }
            if not d.run:
                job["condition"] = "false"
            jobs.append(job)
        return yaml.safe_dump({"jobs": jobs}, sort_keys=False)

    def annotation(self, note: Annotation) -> str | None:
        """A logging command (``##vso[task.logissue type=error;sourcepath=F;linenumber=L;
        columnnumber=C]message``): an error or warning in the build's summary, on the
        file's line."""
        properties = {
            "type": note.kind,
            "sourcepath": note.file,
            "linenumber": note.line,
            "columnnumber": note.col,
        }
        given = "".join(f"{k}={_property(str(v))};" for k, v in properties.items() if v is not None)
        text = f"{note.title}: {note.message}" if note.title else note.message
        return f"##vso[task.logissue {given}]{_data(text)}"

    def fold(self, out: TextIO, title: str, lines: Sequence[str], *, failed: bool) -> None:
        """A ``##[group]`` block."""
        out.write(f"##[group]{title}\n")
        out.writelines(f"{line}\n" for line in lines)
        out.write("##[endgroup]\n")

    def summary_path(self, environ: Mapping[str, str]) -> str | None:
        """None: a summary is uploaded by a task command, not appended to a file."""
        return None

    def output_files(self, environ: Mapping[str, str]) -> Mapping[str, str]:
        """Nothing: Azure takes nothing from a job but its log."""
        return {}

    async def affected_outputs(
        self,
        environ: Mapping[str, str],
        out: TextIO,
        affected: Sequence[str],
        decisions: Sequence[StepDecision] | None,
    ) -> None:
        """Output variables (``##vso[task.setvariable variable=affected;isoutput=true]``):
        ``affected`` (the images, space-separated) and, with steps, ``run`` (the keys
        of the steps to run); later jobs read them through ``dependencies``."""
        values = {"affected": " ".join(affected)}
        if decisions is not None:
            values["run"] = " ".join(d.step.key for d in decisions if d.run)
        for name, value in values.items():
            out.write(f"##vso[task.setvariable variable={name};isoutput=true]{_data(value)}\n")

    async def hand_over(self, environ: Mapping[str, str], produced: Produced) -> None:
        """Nothing: the pipeline publishes ``--json`` and ``--metadata-file`` as
        artifacts where it wants them."""

    def pipeline(self, jobs: Sequence[Job], *, jobs_only: bool = False) -> dict[str, Any]:
        """A pipeline (or, with ``jobs_only``, its ``jobs:`` to template in): one job per
        step, wired by ``dependsOn``; the agents must meet the ``--azure-demand``s (and
        the arch's runner, as a demand); a failed step task is run again."""
        written: list[dict[str, Any]] = []
        for job in jobs:
            settings = job.settings
            entry: dict[str, Any] = {
                "job": job_name(job.key),
                "displayName": job.label,
                "dependsOn": [job_name(d) for d in job.depends_on],
                "steps": [
                    {"checkout": "self"},
                    *_setup(settings),
                    {
                        "script": job.command,
                        "displayName": job.key,
                        "retryCountOnTaskFailure": str(RETRIES),  # (the schema: a string)
                    },
                ],
            }
            demands = [*settings.demands, *([settings.runner] if settings.runner else [])]
            if demands:
                entry["pool"] = {"demands": demands}
            written.append(entry)
        if not written:  # (a pipeline needs a job; this one says there is nothing to do)
            written.append(
                {
                    "job": "nothing_to_build",
                    "steps": [{"script": f"echo '{NOTHING}'"}],
                }
            )
        return {"jobs": written} if jobs_only else {"trigger": "none", "jobs": written}


NOTHING = "mzbuild-async: every image is published; nothing to build"


def _setup(settings: StepSettings) -> list[dict[str, Any]]:
    """The install and the registry logins as script steps; the login secrets mapped
    into their environment (Azure gives secret variables to no script unasked)."""
    lines = prepare_commands(settings)
    if not lines:
        return []
    step: dict[str, Any] = {"script": "\n".join(lines), "displayName": "set up mzbuild-async"}
    if settings.login_user:
        step["env"] = {
            name: f"$({name})" for name in (settings.login_user, settings.login_password)
        }
    return [step]


def _data(text: str) -> str:
    """A logging command's message, escaped as the agent unescapes it."""
    return text.replace("%", "%AZP25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(";", "%3B").replace("]", "%5D")
