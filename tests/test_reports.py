"""What a run leaves behind: --json, plan --json, --report, --trace, --timeline, summaries.

One real run of the demo repository (real engine, registry and cargo)
feeds every check; the JSON outputs are validated against the schemas in
mzbuild_async/report/schemas, the trace is parsed back, and the timeline
page is rendered in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.demo import Cli, make_demo
from tests.support.registry import Registry
from tests.support.schemas import validate

pytestmark = [pytest.mark.slow, pytest.mark.real, pytest.mark.xdist_group("test_reports")]


@dataclass
class Run:
    cli: Cli
    json_out: dict[str, Any]
    report: dict[str, Any]
    trace: dict[str, Any]
    timeline: Path
    markdown: str
    plan: dict[str, Any]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, registries: dict[str, Registry]) -> Run:
    from tests.support.engine import BUSYBOX

    del BUSYBOX  # make_demo fails under CI=true without it
    base = tmp_path_factory.mktemp("reports")
    repo = make_demo(base / "demo")
    summary = base / "step-summary.md"
    cli = Cli(
        repo,
        f"{registries['none'].host}/r{uuid.uuid4().hex[:10]}",
        base / "cache",
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    plan = cli.run("plan", "--all", "--json")
    assert plan.returncode == 0, plan.stderr
    result = cli.run(
        "ensure",
        "--all",
        "--json",
        "--report",
        str(base / "report.json"),
        "--trace",
        str(base / "trace.json"),
        "--timeline",
        str(base / "timeline.html"),
    )
    assert result.returncode == 0, result.stderr
    return Run(
        cli,
        json.loads(result.stdout),
        json.loads((base / "report.json").read_text()),
        json.loads((base / "trace.json").read_text()),
        base / "timeline.html",
        summary.read_text(),
        json.loads(plan.stdout),
    )


def test_json_outputs_match_their_schemas(run: Run) -> None:
    validate(run.json_out, "run.json")
    validate(run.plan, "plan.json")
    validate(run.report, "report.json")
    with pytest.raises(jsonschema.ValidationError):
        validate({**run.json_out, "images": {"x": {"action": "maybe"}}}, "run.json")


def test_the_report_has_the_plan_results_and_lookup_statistics(run: Run) -> None:
    report = run.report
    assert report["exit_status"] == 0
    assert set(report["plan"]) == set(report["images"]) == set(run.json_out["images"])
    assert report["plan"]["demo-app"]["action"] == "build+push"
    assert report["images"]["demo-app"]["action"] == "built"
    assert set(report["lookups"]["tiers"]) >= {"memory", "registry"}
    assert report["lookups"]["tiers"]["registry"]["count"] == 6  # publishable images only
    assert sum(report["lookups"]["requests"].values()) > 0
    phases = {(s["track"], s["phase"]) for s in report["steps"]}
    for name in run.json_out["images"]:
        assert (name, "build") in phases
    assert ("cargo", "cargo") in phases
    assert ("fingerprint", "fingerprint") in phases
    # Per-tier lookup spans share the run's clock: they lie inside the lookup phase.
    [phase] = [s for s in report["steps"] if s["track"] == "lookup"]
    tiers = [s for s in report["steps"] if s["track"].startswith("lookup: ")]
    assert tiers
    for step in tiers:
        assert phase["start"] - 0.005 <= step["start"] <= step["end"] <= phase["end"] + 0.005
    slowest = [s["end"] - s["start"] for s in report["slowest"]]
    assert slowest == sorted(slowest, reverse=True)


def test_the_trace_nests_and_has_one_span_per_step(run: Run) -> None:
    events = run.trace["traceEvents"]
    names = {e["tid"]: e["args"]["name"] for e in events if e.get("name") == "thread_name"}
    spans = [e for e in events if e["ph"] == "X"]
    by_tid: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_tid.setdefault(names[span["tid"]], []).append(span)
    # The run span contains fingerprinting and the lookup phase.
    [root] = [s for s in by_tid["run"] if s["cat"] == "run"]
    for inner in by_tid["run"]:
        assert root["ts"] <= inner["ts"]
        assert inner["ts"] + inner["dur"] <= root["ts"] + root["dur"] + 1
    assert {s["cat"] for s in by_tid["run"]} == {"run", "fingerprint", "lookup"}
    # Each image: one enclosing span, one span per step inside it; the steps inside
    # its BuildKit build on tracks of their own ("IMAGE steps", "IMAGE steps 2"...).
    report_steps = [s for s in run.report["steps"] if s["track"] in run.json_out["images"]]
    for image in run.json_out["images"]:
        own = by_tid[image]
        [outer] = [s for s in own if s["cat"] == "image"]
        parts = [s for s in own if s["cat"] != "image"]
        assert sorted(s["cat"] for s in parts) == sorted(
            s["phase"] for s in report_steps if s["track"] == image and s["phase"] != "build step"
        )
        inside = [
            s for t, o in by_tid.items() if re.fullmatch(f"{image} steps( \\d+)?", t) for s in o
        ]
        if run.json_out["images"][image]["action"] == "built":
            assert inside, image  # (built with BuildKit: its steps are there)
        assert sorted(s["name"] for s in inside) == sorted(
            s["name"] for s in report_steps if s["track"] == image and s["phase"] == "build step"
        )
        for span in parts + inside:
            assert outer["ts"] <= span["ts"]
            assert span["ts"] + span["dur"] <= outer["ts"] + outer["dur"] + 1
    assert [s["cat"] for s in by_tid["cargo"]] == ["cargo"]
    assert any(name.startswith("lookup: ") for name in by_tid)


def test_the_timeline_renders_one_bar_per_step_in_chromium(run: Run) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "chromium is not installed; run scripts/setup-system"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    dom = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--window-size=1200,800",
            "--dump-dom",
            run.timeline.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    steps = run.report["steps"]
    assert f'data-bars="{len(steps)}"' in dom  # set by the page's script after layout
    widths = [float(w) for w in re.findall(r'data-px="([0-9.]+)"', dom)]
    assert len(widths) == len(steps)
    assert all(w > 0 for w in widths)
    tracks = re.findall(r'class="label">([^<]+)<', dom)
    assert set(run.json_out["images"]) <= set(tracks)
    assert tracks.index("cargo") < tracks.index("demo-hello")


def test_the_github_step_summary_is_a_markdown_table(run: Run) -> None:
    lines = run.markdown.splitlines()
    assert lines[0] == "### mzbuild-async ensure: ok"
    assert "| image | action | pushed | tier | seconds | why |" in lines
    rows = [line for line in lines if line.startswith("| `")]
    assert len(rows) == len(run.json_out["images"])
    assert any(line.startswith("ensure: ok: 7 images") for line in lines)


def test_the_text_summary_has_tiers_slowest_steps_and_exit_status(run: Run) -> None:
    result = run.cli.run("ensure", "--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "ACTION", "PUSHED", "TIER", "SECONDS", "WHY"]
    # ensure confirms what the lookup cache says with the registry...
    assert "demo-app         none    no      registry" in result.stdout
    assert lines[-1].endswith("; exit status 0")
    # ...unless told to trust it.
    trusted = run.cli.run("ensure", "--all", "--trust-cache")
    assert trusted.returncode == 0, trusted.stderr
    assert "demo-app         none    no      disk" in trusted.stdout
