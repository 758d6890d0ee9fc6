"""OpenTelemetry: a real ensure (engine, registry, cargo) sends one span tree to a real
OTLP/HTTP receiver, with the attributes and without a credential; TRACEPARENT is
continued; a dead endpoint is one warning; nothing is imported without one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mzbuild_async.support.tracecontext import TraceParent, for_run, inherited, parse
from tests.support.demo import Cli
from tests.support.otlp import receiver
from tests.support.registry import PASSWORD, USER, Registry, free_port


def test_traceparent_parse_and_derive() -> None:
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    parent = parse(header)
    assert parent == TraceParent(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True)
    assert parent.header() == header
    # A later version is read as version 00's fields (the W3C spec's forward rule).
    later = parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")
    assert later == parent
    for bad in (
        "",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "00-0-0-01",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
    ):
        assert parse(bad) is None
    assert for_run("buildkite:1") == for_run("buildkite:1") != for_run("buildkite:2")
    assert inherited({"TRACEPARENT": header}, "buildkite:1") == parent
    assert inherited({}, "buildkite:1") == for_run("buildkite:1")
    assert inherited({}, "") is None


def test_nothing_is_imported_without_an_endpoint() -> None:
    code = (
        "import sys; import mzbuild_async.cli.build, mzbuild_async.cli.main;"
        " print(any(m.startswith('opentelemetry') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert out.stdout.strip() == "False"


@pytest.mark.real
@pytest.mark.slow
def test_a_real_ensure_is_one_span_tree_with_its_attributes(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    from tests.support.demo import make_demo
    from tests.support.engine import remove_images

    registry = registries["htpasswd"]
    prefix = f"{registry.host}/otel{tmp_path.name[-6:]}"
    cli = Cli(make_demo(tmp_path / "demo"), prefix, tmp_path / "cache")
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    try:
        with receiver() as otlp:
            cli.env.update(
                {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
                    "TRACEPARENT": parent,
                    "MZBUILD_ASYNC_REGISTRY_USERNAME": USER,
                    "MZBUILD_ASYNC_REGISTRY_PASSWORD": PASSWORD,
                    "DOCKER_CONFIG": str(tmp_path / "docker-config"),
                }
            )
            result = cli.run("ensure", "demo-hello", "demo-app", "--json")
            assert result.returncode == 0, result.stderr
    finally:
        remove_images(prefix)
    spans = otlp.spans
    assert {s.trace_id for s in spans} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    (root,) = [s for s in spans if s.name == "mzbuild-async ensure"]
    assert root.parent_id == "00f067aa0ba902b7"  # TRACEPARENT continued
    ids = {s.span_id for s in spans}
    assert all(s.parent_id in ids for s in spans if s is not root)
    assert {s.service for s in spans} == {"mzbuild-async"}
    names = {s.name for s in spans}
    assert {"fingerprint", "lookup", "cargo", "build demo-hello", "push demo-app"} <= names
    import json

    images = json.loads(result.stdout)["images"]
    for name in ("demo-hello", "demo-app"):
        (build,) = [s for s in spans if s.name == f"build {name}"]
        assert build.attributes["mzbuild.image"] == name
        assert build.attributes["mzbuild.engine"] == "local"
        assert build.attributes["mzbuild.fingerprint"] == images[name]["spec"].rsplit("-", 1)[1]
        (image,) = [s for s in spans if s.name == f"image {name}"]
        assert build.parent_id == image.span_id
        assert image.start_ns <= build.start_ns <= build.end_ns <= image.end_ns
        # BuildKit's steps are spans inside the build, each within it.
        inner = [s for s in spans if s.parent_id == build.span_id]
        assert any(re.match(r"\[(\S+ )?\d+/\d+\] COPY ", s.name) for s in inner), [
            s.name for s in inner
        ]
        for step in inner:
            assert step.attributes["mzbuild.phase"] == "build step"
            assert step.attributes["mzbuild.image"] == name
            assert build.start_ns <= step.start_ns <= step.end_ns <= build.end_ns
    heads = [s for s in spans if s.attributes.get("http.request.method") == "HEAD"]
    assert heads
    # The semantic conventions: a client span, the host and its port apart, an int status.
    host, port = registry.host.rsplit(":", 1)
    assert all(s.attributes["server.address"] == host for s in heads)
    assert all(s.attributes["server.port"] == int(port) for s in heads)
    assert all(s.kind == 3 for s in heads)  # SPAN_KIND_CLIENT
    assert {s.attributes.get("http.response.status_code") for s in heads} >= {404}
    assert root.kind == 1  # SPAN_KIND_INTERNAL
    # No credential anywhere in what was sent.
    for span in spans:
        for value in span.attributes.values():
            assert PASSWORD not in str(value)
    assert root.start_ns <= min(s.start_ns for s in spans)


@pytest.mark.real
def test_an_unreachable_endpoint_costs_one_warning(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    from tests.support.demo import make_demo
    from tests.support.engine import remove_images

    prefix = f"{registries['none'].host}/oteldead{tmp_path.name[-6:]}"
    cli = Cli(make_demo(tmp_path / "demo"), prefix, tmp_path / "cache")
    dead = f"http://127.0.0.1:{free_port()}"
    cli.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = dead
    try:
        result = cli.run("ensure", "demo-base", "--log-format", "console")
    finally:
        remove_images(prefix)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "OpenTelemetry" in line]
    assert len(warnings) == 1, result.stderr
    assert f"{dead}/v1/traces" in warnings[0]
    assert "the run itself is unaffected" in warnings[0]
    assert "Traceback" not in result.stderr


def test_the_trace_page_groups_a_pipeline_by_step() -> None:
    import json

    from mzbuild_async.report.traceview import page, read_otlp_json

    def span(sid: str, parent: str, name: str, start: int, end: int, **attrs: str) -> object:
        return {
            "traceId": "ab" * 16,
            "spanId": sid,
            "parentSpanId": parent,
            "name": name,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(end),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
        }

    spans = [
        span("01" * 8, "", "mzbuild-async pipeline", 0, 0),
        span(
            "02" * 8,
            "01" * 8,
            "mzbuild-async ensure",
            10**9,
            5 * 10**9,
            **{"mzbuild.step": "build-1"},
        ),
        span("03" * 8, "02" * 8, "image a", 2 * 10**9, 4 * 10**9, **{"mzbuild.image": "a"}),
        span(
            "04" * 8,
            "03" * 8,
            "build a",
            2 * 10**9,
            3 * 10**9,
            **{"mzbuild.image": "a", "mzbuild.phase": "build"},
        ),
        span(
            "05" * 8,
            "01" * 8,
            "mzbuild-async ensure",
            6 * 10**9,
            9 * 10**9,
            **{"mzbuild.step": "build-2"},
        ),
    ]
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
    drawn = page(read_otlp_json([line, ""]))
    assert 'data-engine="build-1">step build-1</div>' in drawn
    assert 'data-engine="build-2">step build-2</div>' in drawn
    assert drawn.count('data-phase="build"') == 1
    assert "left:22.2222%;width:11.1111%" in drawn  # 2 s into 9 s, 1 s long


@pytest.mark.real
def test_check_sends_each_tiers_lookups(tmp_path: Path, registries: dict[str, Registry]) -> None:
    from tests.support.demo import make_demo

    registry = registries["none"]
    cli = Cli(make_demo(tmp_path / "demo"), f"{registry.host}/chk", tmp_path / "cache")
    with receiver() as otlp:
        result = cli.run(
            "check", "demo-base", "demo-lib", "--otlp", otlp.url, "--tiers", "disk,registry"
        )
        assert result.returncode == 0, result.stderr
    (root,) = [s for s in otlp.spans if s.name == "mzbuild-async check"]
    lookups = [s for s in otlp.spans if s.parent_id == root.span_id]
    assert {(s.attributes["mzbuild.tier"], s.attributes["mzbuild.image"]) for s in lookups} == {
        (tier, image) for tier in ("disk", "registry") for image in ("demo-base", "demo-lib")
    }
    heads = [s for s in lookups if s.attributes["mzbuild.tier"] == "registry"]
    assert {s.attributes["http.response.status_code"] for s in heads} == {404}
    host, port = registry.host.rsplit(":", 1)
    assert all(s.attributes["server.address"] == host for s in heads)
    assert all(s.attributes["server.port"] == int(port) for s in heads)
    assert all(s.kind == 3 for s in heads)


def _check_argv(cli: Cli) -> list[str]:
    return cli.args("check", "--all", "--tiers", "registry", "--log-format", "console")


@pytest.mark.real
def test_a_trickling_endpoint_costs_the_export_deadline_and_not_the_exit_status(
    tmp_path: Path, registries: dict[str, Registry]
) -> None:
    """An endpoint that answers 200 and then sends a byte every half second (a
    per-read timeout never fires) is cut off by the export's total deadline: one
    warning, and the exit status is the run's own."""
    from tests.support.demo import make_demo
    from tests.support.otlp import trickler

    cli = Cli(make_demo(tmp_path / "demo"), f"{registries['none'].host}/trk", tmp_path / "cache")
    argv = _check_argv(cli)
    own = subprocess.run(
        argv, env=cli.environ(), capture_output=True, text=True, timeout=120, check=False
    )
    with trickler() as slow:
        result = subprocess.run(
            [*argv, "--otlp", slow.url],
            env=cli.environ(),
            capture_output=True,
            text=True,
            timeout=120,  # (a hang fails here: the trickle would take days)
            check=False,
        )
        assert slow.asked.is_set()
    assert result.returncode == own.returncode, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "OpenTelemetry" in line]
    assert len(warnings) == 1, result.stderr
    assert "no complete answer within 3 s" in warnings[0]
    assert "the run itself is unaffected" in warnings[0]


@pytest.mark.real
@pytest.mark.parametrize(
    ("signum", "status", "said"),
    [
        pytest.param(15, 143, "terminated (SIGTERM)", id="SIGTERM"),
        pytest.param(2, 130, "interrupted", id="SIGINT"),
    ],
)
def test_a_signal_stops_an_export_at_once(
    tmp_path: Path, registries: dict[str, Registry], signum: int, status: int, said: str
) -> None:
    """With a ten-minute export deadline, SIGTERM or SIGINT while the endpoint
    trickles ends the process at once, with the signal's exit status."""
    import signal

    from tests.support.demo import make_demo
    from tests.support.otlp import trickler

    cli = Cli(make_demo(tmp_path / "demo"), f"{registries['none'].host}/trk", tmp_path / "cache")
    cli.env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "600000"
    with trickler() as slow:
        proc = subprocess.Popen(
            [*_check_argv(cli), "--otlp", slow.url],
            env=cli.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            # (a background shell's child inherits SIGINT ignored)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # noqa: PLW1509
        )
        try:
            assert slow.asked.wait(60), "the export never started"
            os.kill(proc.pid, signum)
            _out, err = proc.communicate(timeout=20)  # a hang fails here
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
    assert proc.returncode == status, err
    assert said in err
    assert "Traceback" not in err
