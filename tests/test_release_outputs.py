"""Digests everywhere: --metadata-file, GitHub step outputs, Buildkite meta-data and
annotations; each digest checked against skopeo's reading of the registry."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.demo import Cli, commit
from tests.support.skopeo import digest_of, raw_manifest

pytestmark = [pytest.mark.slow, pytest.mark.real]
NAMES = ("demo-base", "demo-lib", "demo-tools")
SCHEMA = Path(__file__).parents[1] / "mzbuild_async" / "report" / "schemas" / "metadata.json"


def _skopeo_digest(ref: str) -> str:
    digest = digest_of(ref)
    assert digest is not None, ref
    return digest


def _metadata(cli: Cli, path: Path, *rest: str) -> dict[str, Any]:
    result = cli.run("ensure", *NAMES, "--metadata-file", str(path), *rest)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(path.read_text())
    jsonschema.validate(document, json.loads(SCHEMA.read_text()))
    return document


def test_metadata_digests_are_the_registrys_built_or_found(demo_cli: Cli, tmp_path: Path) -> None:
    cli = demo_cli
    built = _metadata(cli, tmp_path / "built.json")
    found = _metadata(cli, tmp_path / "found.json")
    for document in (built, found):
        assert set(document) == set(NAMES)
        for name, image in document.items():
            digest = _skopeo_digest(image["spec"])
            assert image["digest"] == digest, name
            assert image["platform"] == "linux/amd64"
            assert image["size"] > 0
            (registry, entry), *_ = image["registries"].items()
            assert registry == cli.registry
            assert entry["reference"] == image["spec"].rsplit(":", 1)[0] + "@" + digest
            # buildx's keys, as its metadata file has them (skopeo says the digest).
            assert image["containerimage.digest"] == digest
            assert image["image.name"] == image["spec"]
            raw = json.loads(raw_manifest(image["spec"]))
            assert image["containerimage.descriptor"] == {
                "mediaType": raw["mediaType"], "digest": digest, "size": image["size"]
            }  # fmt: skip
    assert {i["registries"][cli.registry]["state"] for i in built.values()} == {"pushed"}
    assert {i["registries"][cli.registry]["state"] for i in found.values()} == {"present"}


def test_github_actions_gets_step_outputs_and_digests_in_the_summary(
    demo_cli: Cli, tmp_path: Path
) -> None:
    cli = demo_cli
    outputs, summary = tmp_path / "output", tmp_path / "summary.md"
    cli.env.update(
        {
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(outputs),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
    )
    result = cli.run("ensure", *NAMES, "--json")
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    text = outputs.read_text()
    for name in NAMES:
        pinned = images[name]["spec"].rsplit(":", 1)[0] + "@" + _skopeo_digest(images[name]["spec"])
        assert f"{name}={pinned}\n" in text
        assert f"`{pinned}`" in summary.read_text()
    block = text.split("images<<", 1)[1].splitlines()
    assert block[-1] == block[0]  # the delimiter closes it
    assert len(block) == len(NAMES) + 2


def _fake_agent(directory: Path) -> Path:
    """A buildkite-agent that records each call (argv and stdin) as a JSON line."""
    directory.mkdir()
    log = directory / "calls.jsonl"
    agent = directory / "buildkite-agent"
    agent.write_text(
        "#!/usr/bin/env python3\n"
        "import json, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    body = sys.stdin.read() if sys.argv[1] == 'annotate' else ''\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'stdin': body}) + '\\n')\n"
    )
    agent.chmod(agent.stat().st_mode | stat.S_IXUSR)
    return log


def test_buildkite_gets_meta_data_and_one_annotation(demo_cli: Cli, tmp_path: Path) -> None:
    cli = demo_cli
    log = _fake_agent(tmp_path / "bin")
    cli.env.update(
        {"BUILDKITE": "true", "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    )
    result = cli.run("ensure", *NAMES, "--json")
    assert result.returncode == 0, result.stderr
    images = json.loads(result.stdout)["images"]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    meta = {c["argv"][2]: c["argv"][3] for c in calls if c["argv"][:2] == ["meta-data", "set"]}
    assert meta == {
        f"mzbuild:{n}": images[n]["spec"].rsplit(":", 1)[0] + "@" + images[n]["digest"]
        for n in NAMES
    }
    (annotation,) = [c for c in calls if c["argv"][0] == "annotate"]
    assert annotation["argv"][1:] == ["--context", "mzbuild-run", "--style", "success"]
    for reference in meta.values():
        assert f"`{reference}`" in annotation["stdin"]

    # A failure: the annotation is in the error style and names it.
    dockerfile = cli.repo / "images" / "lib" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN exit 3\n")
    commit(cli.repo, "break lib")
    log.unlink()
    failed = cli.run("ensure", *NAMES)
    assert failed.returncode == 1
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    (annotation,) = [c for c in calls if c["argv"][0] == "annotate"]
    assert annotation["argv"][-1] == "error"
    assert "**demo-lib failed**" in annotation["stdin"]


def test_a_failing_agent_is_one_line(demo_cli: Cli, tmp_path: Path) -> None:
    cli = demo_cli
    (tmp_path / "bin").mkdir()
    agent = tmp_path / "bin" / "buildkite-agent"
    agent.write_text("#!/bin/sh\necho 'agent: no access token' >&2\nexit 7\n")
    agent.chmod(0o755)
    cli.env.update(
        {"BUILDKITE": "true", "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    )
    result = cli.run("ensure", "demo-base")
    assert result.returncode == 1
    assert "buildkite-agent meta-data exited 7: agent: no access token" in result.stderr
    assert "Traceback" not in result.stderr
