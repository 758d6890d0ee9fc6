"""GitHub Actions: a reusable workflow, ``::group::`` log groups, the step summary."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from ..model.steps import StepDecision
from ..pipeline.emit import Job, StepSettings
from ..support.annotate import Annotation
from .protocol import ChangeBase, Produced


class GitHubActions:
    """GitHub Actions (``GITHUB_ACTIONS=true``)."""

    name = "github"

    def detect(self, environ: Mapping[str, str]) -> bool:
        """Whether this runs as a GitHub Actions job."""
        return environ.get("GITHUB_ACTIONS") == "true"

    def run_id(self, environ: Mapping[str, str]) -> str:
        """The run and its attempt (a re-run is a new attempt)."""
        run = environ.get("GITHUB_RUN_ID", "")
        return f"github:{run}.{environ.get('GITHUB_RUN_ATTEMPT', '1')}" if run else ""

    def change_base(self, environ: Mapping[str, str]) -> ChangeBase | None:
        """A merge queue's group: its base commit (the event's ``merge_group.base_sha``);
        a pull request: its target branch (``GITHUB_BASE_REF``)."""
        if environ.get("GITHUB_EVENT_NAME") == "merge_group":
            event = _event(environ)
            group = event.get("merge_group") if isinstance(event, dict) else None
            base = group.get("base_sha") if isinstance(group, dict) else None
            if isinstance(base, str) and base:
                return ChangeBase("commit", base, "the merge_group event's base_sha")
        if environ.get("GITHUB_BASE_REF"):
            return ChangeBase("branch", environ["GITHUB_BASE_REF"], "GITHUB_BASE_REF")
        return None

    def build_url(self, environ: Mapping[str, str]) -> str:
        """The run's page, from the server, the repository and the run id."""
        server, repository, run = (
            environ.get("GITHUB_SERVER_URL"),
            environ.get("GITHUB_REPOSITORY"),
            environ.get("GITHUB_RUN_ID"),
        )
        return f"{server}/{repository}/actions/runs/{run}" if server and repository and run else ""

    def affected(self, decisions: Sequence[StepDecision]) -> str | None:
        """A job matrix (JSON) of the steps to run (``include``: key, label, command)."""
        return json.dumps(matrix(decisions)) + "\n"

    def annotation(self, note: Annotation) -> str | None:
        """A workflow command (``::error file=F,line=L,col=C,title=T::message``), which
        the runner reads on stdout or stderr (we write stderr: stdout may be ``--json``)."""
        properties = {"file": note.file, "line": note.line, "col": note.col, "title": note.title}
        given = ",".join(f"{k}={_property(str(v))}" for k, v in properties.items() if v is not None)
        return f"::{note.kind}{' ' + given if given else ''}::{_data(note.message)}"

    def fold(self, out: TextIO, title: str, lines: Sequence[str], *, failed: bool) -> None:
        """A ``::group::`` block."""
        out.write(f"::group::{title}\n")
        out.writelines(f"{line}\n" for line in lines)
        out.write("::endgroup::\n")

    def summary_path(self, environ: Mapping[str, str]) -> str | None:
        """``$GITHUB_STEP_SUMMARY``."""
        return environ.get("GITHUB_STEP_SUMMARY") or None

    def output_files(self, environ: Mapping[str, str]) -> Mapping[str, str]:
        """``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY``, where set."""
        found = {
            name: environ[name]
            for name in ("GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY")
            if environ.get(name)
        }
        return found

    async def affected_outputs(
        self,
        environ: Mapping[str, str],
        out: TextIO,
        affected: Sequence[str],
        decisions: Sequence[StepDecision] | None,
    ) -> None:
        """``$GITHUB_OUTPUT``: ``affected`` (the images, space-separated) and, with
        steps, ``matrix`` (a job matrix of those to run: ``fromJSON`` it)."""
        outputs = {"affected": " ".join(affected)}
        if decisions is not None:
            outputs["matrix"] = json.dumps(matrix(decisions))
        write_outputs(environ, outputs)

    async def hand_over(self, environ: Mapping[str, str], produced: Produced) -> None:
        """``$GITHUB_OUTPUT``: one output per image (``name@digest``) and ``images``
        (all of them, a line each)."""
        if not produced.references:
            return
        outputs = {output_name(n): ref for n, ref in produced.references.items()}
        outputs["images"] = "\n".join(produced.references.values())
        write_outputs(environ, outputs)

    def pipeline(self, jobs: Sequence[Job], *, jobs_only: bool = False) -> dict[str, Any]:
        """A reusable workflow (``on: workflow_call``), or its ``jobs:``."""
        written: dict[str, Any] = {}
        for job in jobs:
            entry: dict[str, Any] = {"name": job.label, "runs-on": runs_on(job.settings)}
            if job.depends_on:
                entry["needs"] = list(job.depends_on)
            if job.group:
                entry["concurrency"] = {"group": job.group, "cancel-in-progress": False}
            entry["permissions"] = permissions(job.settings)
            entry["steps"] = [
                {"uses": "actions/checkout@v4"},
                *setup_steps(job.settings),
                {"run": job.command},
            ]
            written[job.key] = entry
        if not written:  # (a workflow needs a job; this one says there is nothing to do)
            written["nothing-to-build"] = {
                "runs-on": runs_on(StepSettings()),
                "steps": [{"run": f"echo '{NOTHING}'"}],
            }
        if jobs_only:
            return {"jobs": written}
        return {"name": "mzbuild-async builds", "on": {"workflow_call": {}}, "jobs": written}


def runs_on(settings: StepSettings) -> str | list[str]:
    """A job's ``runs-on``: its arch's runner, else the ``--runs-on`` labels."""
    if settings.runner:
        return settings.runner
    return settings.runs_on[0] if len(settings.runs_on) == 1 else list(settings.runs_on)


NOTHING = "mzbuild-async: every image is published; nothing to build"

#: GitHub's own registry: the job's token logs in to it (``packages: write``).
GHCR = "ghcr.io"


def permissions(settings: StepSettings) -> dict[str, str]:
    """What a step's token may do: read the checkout, push packages (ghcr.io), and with
    ``--keyless`` ask for the OIDC token sigstore signs with."""
    granted = {"contents": "read", "packages": "write"}
    if "--keyless" in settings.extra:
        granted["id-token"] = "write"
    return granted


def setup_steps(settings: StepSettings) -> list[dict[str, Any]]:
    """The install, then ``docker/login-action`` for each registry: with the ``--login``
    secrets, else ghcr.io with the job's own token."""
    steps: list[dict[str, Any]] = []
    if settings.install:
        steps.append({"name": "Install mzbuild-async", "run": settings.install})
    for host in settings.registries:
        if settings.login_user:
            user = f"${{{{ secrets.{settings.login_user} }}}}"
            password = f"${{{{ secrets.{settings.login_password} }}}}"
        elif host == GHCR:
            user, password = "${{ github.actor }}", "${{ secrets.GITHUB_TOKEN }}"
        else:
            continue
        steps.append(
            {
                "name": f"Log in to {host}",
                "uses": "docker/login-action@v3",
                "with": {"registry": host, "username": user, "password": password},
            }
        )
    return steps


def matrix(decisions: Sequence[StepDecision]) -> dict[str, Any]:
    """A job matrix of the steps to run (``include``: key, label, command)."""
    return {
        "include": [
            {
                "key": d.step.key,
                "label": d.step.label,
                **({"command": d.step.command} if d.step.command else {}),
            }
            for d in decisions
            if d.run
        ]
    }


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def write_outputs(environ: Mapping[str, str], outputs: Mapping[str, str]) -> bool:
    """Append step outputs to ``$GITHUB_OUTPUT`` (a multi-line value with a random
    delimiter); False when not under GitHub Actions."""
    path = environ.get("GITHUB_OUTPUT")
    if not path:
        return False
    lines: list[str] = []
    for name, value in outputs.items():
        if "\n" in value:
            delimiter = f"mzbuild_{uuid.uuid4().hex}"
            lines += [f"{name}<<{delimiter}", value, delimiter]
        else:
            lines.append(f"{name}={value}")
    with open(path, "a", encoding="utf-8") as out:
        out.writelines(f"{line}\n" for line in lines)
    return True


def output_name(image: str) -> str:
    """An image name as a step output's name (letters, digits, ``-`` and ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", image)


def _event(environ: Mapping[str, str]) -> object:
    """The triggering event's payload (``GITHUB_EVENT_PATH``; None when unreadable)."""
    path = environ.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None
