"""Logs: structured fields on every event, and never a credential."""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path

import anyio
import pytest
import structlog
from structlog.testing import capture_logs

from mzbuild_async.builds.decisions import Workflow
from mzbuild_async.model.options import BuildOptions, Profile
from mzbuild_async.registry.auth import CredentialStore
from mzbuild_async.registry.client import RegistryClient
from mzbuild_async.source.repository import Repository
from mzbuild_async.support import logs
from mzbuild_async.workflow.options import RunOptions
from mzbuild_async.workflow.run import run_workflow
from tests.support.demo import make_demo
from tests.support.registry import PASSWORD, USER, Registry


def test_the_redaction_processor_masks_credentials() -> None:
    out = io.StringIO()
    logs.configure(1, fmt="json", stream=out)
    logs.get_logger().info(
        "request to https://ci-user:s3cret@registry.test/v2/ with Bearer abc.def-ghi",
        authorization="Basic Y2ktdXNlcjpzM2NyZXQ=",
        headers={"Authorization": "Bearer xyz", "Accept": "json"},
        password="hunter2",
        image="demo-app",
    )
    record = json.loads(out.getvalue())
    text = out.getvalue()
    for secret in ("s3cret", "abc.def-ghi", "Y2ktdXNlcjpzM2NyZXQ", "xyz", "hunter2"):
        assert secret not in text, secret
    assert record["authorization"] == record["password"] == "[redacted]"
    assert record["headers"] == {"Authorization": "[redacted]", "Accept": "json"}
    assert "Bearer [redacted]" in record["event"]
    assert "https://[redacted]@registry.test/v2/" in record["event"]
    assert record["image"] == "demo-app"


@pytest.mark.slow
@pytest.mark.real
def test_a_real_run_with_credentials_logs_none_of_them(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    from tests.support.engine import engine

    registry = registries["htpasswd"]
    repo_root = make_demo(tmp_path / "demo")
    environ = {
        "MZBUILD_ASYNC_REGISTRY_USERNAME": USER,
        "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD,
        "DOCKER_CONFIG": str(tmp_path / "docker-config"),
    }

    async def main() -> None:
        docker = await engine()
        await docker.close()
        options = BuildOptions(
            profile=Profile.DEV, image_registry=f"{registry.host}/s{uuid.uuid4().hex[:8]}"
        )
        repo = await Repository.open(repo_root, options)
        client = RegistryClient(credentials=CredentialStore(environ=environ))
        try:
            result = await run_workflow(
                repo,
                Workflow.ENSURE,
                ["demo-tools", "demo-hello"],
                cache_dir=tmp_path / "cache",
                options=RunOptions(jobs=2),
                client=client,
            )
        finally:
            await client.aclose()
        assert result.ok, result.to_json()
        assert all(r.pushed for r in result.images.values())

    structlog.reset_defaults()
    with capture_logs() as captured:
        anyio.run(main)
    assert captured, "the run logged nothing"
    text = repr(captured)
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, basic, "Authorization", "X-Registry-Auth"):
        assert secret not in text, secret
    # Every step event says which image, fingerprint and phase it is about.
    steps = [e for e in captured if e.get("phase") in ("build", "push", "pull", "cargo")]
    assert steps
    for event in steps:
        assert {"image", "fingerprint", "phase"} <= set(event)
        if event["image"] is not None:
            assert len(event["fingerprint"]) == 32


@pytest.mark.slow
@pytest.mark.real
def test_credentials_a_registry_echoes_reach_no_output(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """A registry whose push error quotes the Basic header and ``user:password``: the
    summary, --json, --report, the log and the failure marker carry neither."""
    from tests.support.demo import Cli
    from tests.support.faultproxy import Faults, proxy_thread
    from tests.support.pool import Sleepy, make_sleepy_repo

    registry = registries["htpasswd"]
    repo = make_sleepy_repo(tmp_path / "repo", [Sleepy("solo", (), 0)])
    basic = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    with proxy_thread(registry.url, Faults(echo_credentials=True)) as proxy:
        cli = Cli(
            repo,
            f"{proxy.host}/echo",
            tmp_path / "cache",
            env={
                "MZBUILD_ASYNC_REGISTRY_USERNAME": USER,
                "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD,
                "DOCKER_CONFIG": str(tmp_path / "docker-config"),
            },
        )
        fingerprint = cli.run("fingerprint", "solo").stdout.strip()
        outputs = []
        for extra in ((), ("--json",)):
            result = cli.run(
                "ensure", "--step", "s1", "--only", f"solo={fingerprint}",
                "--report", str(tmp_path / "report.json"), *extra,
            )  # fmt: skip
            assert result.returncode == 1, result.stderr
            outputs += [result.stdout, result.stderr, (tmp_path / "report.json").read_text()]
        assert proxy.counts["echoed"] >= 2, outputs
    assert "may not push here" in outputs[0]  # the registry's error is shown...
    assert "[redacted]" in outputs[0]
    spec = json.loads(outputs[3])["images"]["solo"]["spec"]
    repo_path, _, tag = spec.split("/", 1)[1].rpartition(":")
    with registry._client(repo_path) as client:  # the marker, as anyone who can pull reads it
        marker = client.get(
            f"/v2/{repo_path}/manifests/{tag}.failed",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
    assert marker.status_code == 200
    outputs.append(marker.text)
    assert "may not push here" in marker.text
    for text in outputs:  # ...without the credentials it quoted
        for secret in (PASSWORD, basic, f"{USER}:{PASSWORD}"):
            assert secret not in text, (secret, text)


@pytest.mark.parametrize("preload", [False, True], ids=["without-structlog", "through-structlog"])
def test_a_json_warning_is_the_same_line_with_or_without_structlog(preload: bool) -> None:
    """The warning a command prints before structlog is loaded (it is not imported for
    one JSON line) has the same keys, order, values and redaction as structlog's."""
    import subprocess
    import sys

    code = (
        "import sys, json\n"
        + ("import structlog\n" if preload else "")
        + "from mzbuild_async.support import logs\n"
        "logs.configure(0, fmt='json')\n"
        "logs.warning('a/mzbuild.yml: odd, see https://u:pw@h/x', image='a', n=3)\n"
        "print('structlog' in sys.modules, file=sys.stdout)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    record = json.loads(result.stderr)
    assert list(record) == ["image", "n", "event", "level", "timestamp"]
    assert record["event"] == "a/mzbuild.yml: odd, see https://[redacted]@h/x"
    assert (record["image"], record["n"], record["level"]) == ("a", 3, "warning")
    assert record["timestamp"].endswith("Z")
    assert result.stdout.strip() == str(preload)
